from __future__ import annotations

import io
import logging

import pytest
import structlog

from surefoot import context
from surefoot.logging import configure_logging, current_config, get_logger
from surefoot.testing import capture_logs


def test_capture_without_configuration_configures_then_resets() -> None:
    assert current_config() is None
    with capture_logs() as logs, context.bound(correlation_id="c-9"):
        structlog.get_logger("svc").info("hello", email="alice@example.com")
        logging.getLogger("lib").warning("from stdlib")
    assert current_config() is None
    assert logs.events() == ["hello", "from stdlib"]
    hello = logs.one(event="hello")
    assert hello["email"] == "***.com" and hello["correlation_id"] == "c-9"
    assert hello["module"] == "svc"


def test_capture_replaces_output_and_restores_it() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", level="INFO")
    log = get_logger("svc").bind()  # created before: capture must still see it
    with capture_logs() as logs:
        log.debug("debug_visible_in_capture")
        log.info("captured")
    log.info("written")
    log.debug("not_written")
    assert logs.events() == ["debug_visible_in_capture", "captured"]
    assert buf.getvalue().count("\n") == 1 and "written" in buf.getvalue()


def test_one_reports_what_it_saw() -> None:
    with capture_logs() as logs:
        structlog.get_logger("x").info("a")
    with pytest.raises(AssertionError, match="found 0"):
        logs.one(event="b")
    assert logs.filter(event="a")[0]["level"] == "info"
