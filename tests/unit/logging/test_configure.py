from __future__ import annotations

import io
import json
import logging
import re

import pytest
import structlog

from surefoot import Settings, context
from surefoot.errors import ConfigurationError
from surefoot.logging import configure_logging, get_logger


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_line_has_the_required_fields_in_order() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    with context.bound(correlation_id="c-1", causation_id="e-0", tenant_id="acme"):
        get_logger("billing").info("invoice_sent", amount=3)
    (line,) = _lines(buf)
    assert list(line)[:7] == [
        "timestamp", "level", "event", "module", "correlation_id", "causation_id", "tenant_id",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["timestamp"])
    assert line["level"] == "info"
    assert line["event"] == "invoice_sent"
    assert line["module"] == "billing"
    assert (line["correlation_id"], line["causation_id"], line["tenant_id"]) == ("c-1", "e-0", "acme")
    assert line["amount"] == 3


def test_json_keeps_missing_ids_as_null_and_module_can_be_bound() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    get_logger("x").bind(module="telephony").warning("call_missed")
    (line,) = _lines(buf)
    assert line["module"] == "telephony"
    assert line["correlation_id"] is None and line["tenant_id"] is None
    assert line["level"] == "warning"


def test_default_logger_name_is_the_calling_module() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    get_logger().info("hello")
    structlog.get_logger().info("hello2")
    lines = _lines(buf)
    assert [line["module"] for line in lines] == [__name__, __name__]


def test_stdlib_and_uvicorn_loggers_share_the_format() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    with context.bound(correlation_id="c-2"):
        logging.getLogger("some.library").warning("disk %s full", "/var", extra={"free_mb": 3})
        logging.getLogger("uvicorn.error").info("Started server process")
    lib, uv = _lines(buf)
    assert lib["module"] == "some.library" and lib["event"] == "disk /var full"
    assert lib["free_mb"] == 3 and lib["correlation_id"] == "c-2" and lib["level"] == "warning"
    assert uv["module"] == "uvicorn.error" and uv["event"] == "Started server process"


def test_uvicorn_access_log_is_silenced_by_default_and_can_be_kept() -> None:
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.StreamHandler(io.StringIO()))
    configure_logging(stream=io.StringIO(), fmt="json")
    # uvicorn checks hasHandlers() and skips building its access line altogether.
    assert not access.hasHandlers()
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", uvicorn_access_log=True)
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/", "1.1", 200)
    assert _lines(buf)[0]["module"] == "uvicorn.access"


def test_configuring_twice_does_not_duplicate_handlers_or_lines() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    configure_logging(stream=io.StringIO(), fmt="json")
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    assert len(root.handlers) == before + 1
    logging.getLogger("a").warning("once")
    get_logger("b").info("once")
    assert len(_lines(buf)) == 2


def test_basic_config_console_handler_is_replaced() -> None:
    import sys

    root = logging.getLogger()
    plain = logging.StreamHandler(sys.stderr)
    root.addHandler(plain)
    try:
        configure_logging(stream=io.StringIO(), fmt="json")
        assert plain not in root.handlers
    finally:
        root.removeHandler(plain)


def test_loggers_created_before_a_reconfigure_follow_it() -> None:
    first = io.StringIO()
    configure_logging(stream=first, fmt="json", level="WARNING")
    log = get_logger("early").bind()
    log.info("dropped")
    second = io.StringIO()
    configure_logging(stream=second, fmt="json", level="DEBUG")
    log.debug("kept")
    assert first.getvalue() == ""
    assert [line["event"] for line in _lines(second)] == ["kept"]


def test_disabled_levels_are_no_ops() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", level="INFO")
    log = get_logger("x").bind()
    assert type(log).debug is not type(log).info
    assert log.debug("nothing", payload=object()) is None
    assert buf.getvalue() == ""
    assert logging.getLogger().level == logging.INFO


def test_console_format_and_auto_detection() -> None:
    tty = _Tty()
    config = configure_logging(stream=tty, fmt="auto")
    assert config.format == "console"
    get_logger("svc").info("ready", port=8000)
    text = re.sub(r"\x1b\[[0-9;]*m", "", tty.getvalue())
    assert "ready" in text and "port=8000" in text and "module=svc" in text
    assert "correlation_id" not in text  # unset ids are left out of console lines
    assert configure_logging(stream=io.StringIO(), fmt="auto").format == "json"
    assert configure_logging(Settings(env="production"), stream=_Tty(), fmt="auto").format == "json"
    assert configure_logging(Settings(log_format="console"), stream=io.StringIO()).format == "console"


def test_exception_traceback_is_logged_and_redacted() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    try:
        raise ValueError("no account for alice@example.com")
    except ValueError:
        get_logger("x").exception("lookup_failed")
        logging.getLogger("std").exception("std_failed")
    lines = _lines(buf)
    for line in lines:
        assert line["level"] == "error"
        assert "Traceback" in line["exception"] and "ValueError" in line["exception"]
        assert "alice@" not in line["exception"] and "***.com" in line["exception"]


def test_user_processors_run_before_redaction() -> None:
    def add_owner(logger, method, event_dict):
        event_dict["owner"] = "bob@example.com"
        return event_dict

    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", processors=[add_owner])
    get_logger("x").info("e")
    assert _lines(buf)[0]["owner"] == "***.com"


def test_structlog_contextvars_are_merged() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    structlog.contextvars.bind_contextvars(job="nightly")
    try:
        get_logger("x").info("e")
    finally:
        structlog.contextvars.clear_contextvars()
    assert _lines(buf)[0]["job"] == "nightly"


def test_structlog_contextvars_follow_bind_and_unbind() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    log = get_logger("x")
    log.info("before")
    with structlog.contextvars.bound_contextvars(job="nightly", step=2):
        log.info("inside")
        structlog.contextvars.unbind_contextvars("step")
        log.info("one_left")
    log.info("after")
    lines = {line["event"]: line for line in _lines(buf)}
    assert "job" not in lines["before"] and "job" not in lines["after"]
    assert (lines["inside"]["job"], lines["inside"]["step"]) == ("nightly", 2)
    assert lines["one_left"]["job"] == "nightly" and "step" not in lines["one_left"]


def test_structlog_contextvars_are_merged_without_the_variable_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from surefoot.logging import _setup

    monkeypatch.setattr(_setup, "_structlog_vars", None)  # a structlog release laid out otherwise
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    with structlog.contextvars.bound_contextvars(job="nightly"):
        get_logger("x").info("e")
    get_logger("x").info("f")
    first, second = _lines(buf)
    assert first["job"] == "nightly" and "job" not in second


def test_trace_ids_when_a_span_is_active() -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    get_logger("x").info("outside")
    with tracer.start_as_current_span("work") as span:
        get_logger("x").info("inside")
        expected = span.get_span_context()
    outside, inside = _lines(buf)
    assert "trace_id" not in outside
    assert inside["trace_id"] == format(expected.trace_id, "032x")
    assert inside["span_id"] == format(expected.span_id, "016x")


@pytest.mark.parametrize("kwargs", [{"fmt": "xml"}, {"level": "LOUD"}])
def test_bad_format_or_level_is_refused(kwargs) -> None:
    with pytest.raises(ConfigurationError, match="must be one of"):
        configure_logging(stream=io.StringIO(), **kwargs)


def test_message_bodies_are_omitted_or_truncated_by_settings() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    get_logger("x").info("sms_received", body="Hi, call me at +1 415 555 2671 " + "x" * 100)
    assert _lines(buf)[0]["body"] == "[omitted: 131 chars]"
    buf = io.StringIO()
    configure_logging(Settings(log_message_bodies=True), stream=buf, fmt="json")
    get_logger("x").info("sms_received", body="Hi, call me at +1 415 555 2671 " + "x" * 100)
    body = _lines(buf)[0]["body"]
    assert body.startswith("Hi, call me at ***2671 ") and body.endswith("…") and len(body) == 51


def test_full_pii_only_at_debug_and_only_when_allowed() -> None:
    buf = io.StringIO()
    configure_logging(Settings(log_unmasked_pii=True), stream=buf, fmt="json", level="DEBUG")
    log = get_logger("x")
    log.debug("d", email="alice@example.com")
    log.info("i", email="alice@example.com")
    buf2 = io.StringIO()
    configure_logging(stream=buf2, fmt="json", level="DEBUG")
    get_logger("x").debug("d", email="alice@example.com")
    debug, info = _lines(buf)
    assert debug["email"] == "alice@example.com"
    assert info["email"] == "***.com"
    assert _lines(buf2)[0]["email"] == "***.com"


def test_import_does_not_configure_anything(subprocess_env, python_exe) -> None:
    import subprocess

    code = (
        "import logging, structlog, surefoot, surefoot.logging, surefoot.testing;"
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers;"
        "assert not structlog.is_configured()"
    )
    subprocess.run([python_exe, "-c", code], env=subprocess_env, check=True)
