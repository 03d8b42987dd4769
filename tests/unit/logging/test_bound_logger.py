"""SurefootBoundLogger: structlog's filtering logger methods, with a minimum level that follows
every configure_logging call, also for loggers cached before it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
import structlog

import surefoot
from surefoot.logging import configure_logging, get_logger
from surefoot.logging._setup import SurefootBoundLogger
from surefoot.testing import capture_logs

# Created at import time, as a module-level ``log = surefoot.get_logger()`` is, before any
# configure_logging call of the tests below.
log = surefoot.get_logger("early.module")

# method -> the level name its line carries (structlog's filtering logger aliases)
SYNC_METHODS = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "warning": "warning",
    "warn": "warning",
    "error": "error",
    "exception": "error",
    "critical": "critical",
    "fatal": "critical",
}
LEVEL_NUMBERS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
MINIMUM_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def _reconfigure(level: str) -> io.StringIO:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", level=level)
    return buf


def test_has_every_method_of_structlogs_filtering_logger() -> None:
    reference = structlog.make_filtering_bound_logger(logging.INFO)
    public = {name for name in vars(reference) if not name.startswith("_")}
    missing = {name for name in public if not callable(getattr(SurefootBoundLogger, name, None))}
    assert missing == set()
    assert issubclass(SurefootBoundLogger, structlog.BoundLoggerBase)


@pytest.mark.parametrize("method", sorted(SYNC_METHODS))
@pytest.mark.parametrize("minimum", MINIMUM_LEVELS)
def test_a_cached_logger_follows_each_new_minimum_level(method: str, minimum: str) -> None:
    _reconfigure("CRITICAL" if minimum != "CRITICAL" else "DEBUG")
    cached = get_logger("svc").bind(order_id=7)
    module_level = log
    cached.info("warm-up")  # the logger is cached on first use
    buf = _reconfigure(minimum)
    level_name = SYNC_METHODS[method]
    getattr(cached, method)("from_cached", n=1)
    getattr(module_level, method)("from_module")
    expected = LEVEL_NUMBERS[level_name] >= logging.getLevelName(minimum)
    lines = _lines(buf)
    if expected:
        assert [(line["event"], line["level"]) for line in lines] == [
            ("from_cached", level_name),
            ("from_module", level_name),
        ]
        assert lines[0]["order_id"] == 7 and lines[0]["n"] == 1 and lines[0]["module"] == "svc"
        assert lines[1]["module"] == "early.module"
    else:
        assert lines == []


@pytest.mark.parametrize("minimum", MINIMUM_LEVELS)
def test_log_filters_by_its_level_argument(minimum: str) -> None:
    _reconfigure("INFO")
    cached = get_logger("svc").bind()
    buf = _reconfigure(minimum)
    for number in LEVEL_NUMBERS.values():
        cached.log(number, "at %d", number)
    wanted = [n for n in LEVEL_NUMBERS.values() if n >= logging.getLevelName(minimum)]
    assert [line["event"] for line in _lines(buf)] == [f"at {n}" for n in wanted]


def test_is_enabled_for_and_effective_level_follow_the_configuration() -> None:
    _reconfigure("INFO")
    cached = get_logger("svc").bind()
    _reconfigure("WARNING")
    assert cached.get_effective_level() == logging.WARNING
    assert not cached.is_enabled_for(logging.INFO) and cached.is_enabled_for(logging.ERROR)
    _reconfigure("DEBUG")
    assert cached.get_effective_level() == logging.DEBUG
    assert cached.is_enabled_for(logging.DEBUG)


def test_exception_adds_the_exception_being_handled() -> None:
    buf = _reconfigure("INFO")
    try:
        raise ValueError("bad input")
    except ValueError:
        log.exception("failed", step=2)
        log.exception("quiet", exc_info=False)
    first, second = _lines(buf)
    assert first["level"] == "error" and "ValueError: bad input" in first["exception"]
    assert "exception" not in second


def test_positional_arguments_are_interpolated_like_structlog() -> None:
    buf = _reconfigure("DEBUG")
    log.info("user %s paid %d", "u1", 3)
    log.info("%(who)s left", {"who": "u2"})
    log.info("100% sure")
    assert [line["event"] for line in _lines(buf)] == ["user u1 paid 3", "u2 left", "100% sure"]


def test_bind_new_unbind_try_unbind_keep_the_class() -> None:
    buf = _reconfigure("INFO")
    bound = log.bind(a=1, b=2)
    assert isinstance(bound, SurefootBoundLogger)
    bound.unbind("a").try_unbind("missing").info("one")
    bound.new(c=3).info("two")
    one, two = _lines(buf)
    assert "a" not in one and one["b"] == 2
    assert two["c"] == 3 and "b" not in two
    with pytest.raises(KeyError):
        bound.unbind("missing")


def test_a_disabled_call_builds_nothing() -> None:
    buf = _reconfigure("INFO")

    class Exploding:
        def __repr__(self) -> str:
            raise AssertionError("rendered")

    assert log.debug("nothing %s", Exploding(), payload=Exploding()) is None
    assert log.log(logging.DEBUG, "nothing", payload=Exploding()) is None
    assert buf.getvalue() == ""


def test_capture_logs_level_reaches_cached_loggers() -> None:
    _reconfigure("INFO")
    with capture_logs(level="DEBUG") as logs:
        log.debug("visible")
    log.debug("hidden again")
    assert [entry["event"] for entry in logs] == ["visible"]


ASYNC_METHODS = {f"a{name}": level for name, level in SYNC_METHODS.items()}


@pytest.mark.parametrize("method", sorted(ASYNC_METHODS))
@pytest.mark.parametrize("minimum", MINIMUM_LEVELS)
async def test_async_methods_follow_the_minimum_level(method: str, minimum: str) -> None:
    _reconfigure("INFO")
    cached = get_logger("svc").bind(order_id=7)
    buf = _reconfigure(minimum)
    surefoot.context.bind(correlation_id="c-async")
    try:
        raise RuntimeError("in flight")
    except RuntimeError:
        await getattr(cached, method)("async %s", "event", n=1)
    level_name = ASYNC_METHODS[method]
    lines = _lines(buf)
    if LEVEL_NUMBERS[level_name] >= logging.getLevelName(minimum):
        (line,) = lines
        assert (line["event"], line["level"], line["order_id"], line["n"]) == ("async event", level_name, 7, 1)
        # run in a worker thread, with the caller's context variables
        assert line["correlation_id"] == "c-async"
        assert ("exception" in line) == (method == "aexception")
        if method == "aexception":
            assert "RuntimeError: in flight" in line["exception"]
    else:
        assert lines == []


@pytest.mark.parametrize("minimum", MINIMUM_LEVELS)
async def test_alog_filters_by_its_level_argument(minimum: str) -> None:
    buf = _reconfigure(minimum)
    for number in LEVEL_NUMBERS.values():
        await log.alog(number, "at %d", number)
    wanted = [n for n in LEVEL_NUMBERS.values() if n >= logging.getLevelName(minimum)]
    assert [line["event"] for line in _lines(buf)] == [f"at {n}" for n in wanted]


async def test_a_disabled_async_call_returns_an_awaitable_doing_nothing() -> None:
    buf = _reconfigure("ERROR")
    pending = log.ainfo("nothing")
    assert asyncio.iscoroutine(pending)
    assert await pending is None
    assert buf.getvalue() == ""


def _log_with_stack() -> None:
    log.info("structlog stack", stack_info=True)
    logging.getLogger("stdlib.caller").warning("stdlib stack", stack_info=True)


def test_stack_info_ends_at_the_callers_line() -> None:
    buf = _reconfigure("INFO")
    _log_with_stack()
    for line in _lines(buf):
        last_frame = line["stack"].rstrip().splitlines()[-2:]
        assert "in _log_with_stack" in last_frame[0], line["stack"]
        assert "stack_info=True" in last_frame[1]
        assert "stack_info" not in line


def test_callsite_parameters_name_the_caller_with_surefoot_frames_ignored() -> None:
    from structlog.processors import CallsiteParameter, CallsiteParameterAdder

    buf = io.StringIO()
    adder = CallsiteParameterAdder([CallsiteParameter.FUNC_NAME], additional_ignores=["surefoot.logging"])
    configure_logging(stream=buf, fmt="json", level="INFO", processors=[adder])

    def place_order() -> None:
        log.info("order_placed")

    place_order()
    assert _lines(buf)[0]["func_name"] == "place_order"
