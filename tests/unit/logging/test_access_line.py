"""The access line's direct path writes exactly what the structlog chain writes."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot import context
from surefoot.logging import _setup, configure_logging
from surefoot.logging._setup import AccessLogger
from surefoot.testing import capture_logs

NOW = 1_764_000_000.123456


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    configure_logging(stream=out, fmt="json", level="INFO")
    return out


def both(stream: io.StringIO, *args: Any, **ids: str | None) -> tuple[str, str]:
    """Write the same access line through the direct path and the structlog chain."""
    access = AccessLogger()
    original = _setup._time
    _setup._time = lambda: NOW
    with context.bound(**ids):
        assert _setup._access_fast.cached is not None
        start = stream.tell()
        access.write(*args)
        fast = stream.getvalue()[start:]
        redactor = _setup._access_fast.redactor
        _setup._access_fast.enable(None)
        try:
            start = stream.tell()
            access.write(*args)
            slow = stream.getvalue()[start:]
        finally:
            _setup._access_fast.enable(redactor)
            _setup._time = original
    return fast, slow


def test_the_direct_path_renders_like_the_chain(stream):
    fast, slow = both(stream, "GET", "/items/{item_id}", 200, 1.234, 17,
                      correlation_id="c-1", tenant_id="acme")
    assert fast == slow
    line = json.loads(fast)
    assert list(line) == ["timestamp", "level", "event", "module", "correlation_id", "causation_id",
                          "tenant_id", "method", "route", "status", "latency_ms", "bytes"]
    assert line["timestamp"] == "2025-11-24T16:00:00.123456Z"
    assert line["level"] == "info" and line["module"] == "surefoot.access"
    assert line["causation_id"] is None


def test_5xx_at_error(stream):
    fast, slow = both(stream, "POST", "/x", 503, 0.5, 0)
    assert fast == slow and json.loads(fast)["level"] == "error"


@pytest.mark.parametrize(
    ("ids", "field"),
    [
        ({"tenant_id": "4155552671"}, "tenant_id"),  # a digit-only tenant from a header
        ({"tenant_id": "alice@example.com"}, "tenant_id"),  # bound by application code
        ({"correlation_id": "req:4155552671"}, "correlation_id"),
        ({"causation_id": "+14155552671"}, "causation_id"),
        ({"correlation_id": "12345678901234"}, "correlation_id"),  # a numeric request id
    ],
)
def test_ids_are_never_masked_on_both_paths(stream, ids, field):
    # An id echoed to the client must be findable in the logs: ids are logged as given.
    fast, slow = both(stream, "GET", "/x", 200, 0.1, 2, **ids)
    assert fast == slow
    assert json.loads(fast)[field] == ids[field]


def test_pii_in_method_and_route_is_masked_on_both_paths(stream):
    fast, slow = both(stream, "4155552671", "/legacy/4155552671/{x}", 200, 0.1, 2)
    assert fast == slow
    line = json.loads(fast)
    assert line["method"] == "***2671" and line["route"] == "/legacy/***2671/{x}"


@pytest.mark.parametrize("route", ['/é/"quoted"/{x}', "/back\\slash", "/tab\there", "/\u2028", "", "/ünï/\x7f"])
def test_strings_needing_escapes_render_like_orjson(stream, route):
    fast, slow = both(stream, "GET", route, 200, 0.1, 2, tenant_id=None)
    assert fast == slow
    assert json.loads(fast)["route"] == route


def test_a_generated_correlation_id_is_trusted_only_when_it_is_the_bound_one(stream):
    access = AccessLogger()
    generated = "0b1d5e0c-9d7e-4f0e-8a31-3f6f3c1a2b4c"
    with context.bound(correlation_id="4155552671\n"):
        # The bound id is not the generated one (application code re-bound it): it is
        # rendered (escaped) rather than trusted, and never masked.
        access.write("GET", "/x", 200, 0.1, 2, generated)
    assert json.loads(stream.getvalue().splitlines()[-1])["correlation_id"] == "4155552671\n"


@settings(max_examples=300, deadline=None)
@given(
    method=st.text(min_size=1, max_size=12),
    route=st.text(max_size=40),
    ident=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
    status=st.integers(min_value=100, max_value=599),
    latency=st.floats(min_value=0, max_value=1e9, allow_nan=False).map(lambda v: round(v, 3)),
    nbytes=st.integers(min_value=0, max_value=1 << 40),
)
def test_any_line_is_identical_on_both_paths(method, route, ident, status, latency, nbytes):
    out = io.StringIO()
    configure_logging(stream=out, fmt="json", level="INFO")
    fast, slow = both(out, method, route, status, latency, nbytes, tenant_id=ident, causation_id=ident)
    assert fast == slow


@settings(max_examples=100, deadline=None)
@given(local=st.from_regex(r"[a-z0-9._]{1,20}", fullmatch=True),
       domain=st.from_regex(r"[a-z]{1,10}\.(com|org|io)", fullmatch=True))
def test_a_tenant_id_is_logged_as_given_whatever_it_looks_like(local, domain):
    # Ids are never masked (a client's id must be findable in the logs), on both paths.
    out = io.StringIO()
    configure_logging(stream=out, fmt="json", level="INFO")
    email = f"{local}@{domain}"
    fast, slow = both(out, "GET", "/x", 200, 0.1, 2, tenant_id=email)
    assert fast == slow
    assert json.loads(fast)["tenant_id"] == email


def test_level_filtering(monkeypatch):
    out = io.StringIO()
    configure_logging(stream=out, fmt="json", level="WARNING")
    access = AccessLogger()
    access.write("GET", "/x", 200, 0.1, 2)
    assert out.getvalue() == ""
    access.write("GET", "/x", 500, 0.1, 2)
    assert json.loads(out.getvalue())["level"] == "error"
    configure_logging(stream=out, fmt="json", level="CRITICAL")
    access.write("GET", "/x", 500, 0.1, 2)
    assert len(out.getvalue().splitlines()) == 1


def test_capture_logs_sees_access_lines(stream):
    with capture_logs() as logs:
        AccessLogger().write("GET", "/x", 200, 0.1, 2)
    assert logs.one(event="http_request")["route"] == "/x"
    assert stream.getvalue() == ""
    # and the direct path is back afterwards
    AccessLogger().write("GET", "/y", 200, 0.1, 2)
    assert json.loads(stream.getvalue())["route"] == "/y"


def test_user_processors_see_the_line():
    seen: list[dict[str, Any]] = []

    def processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(event_dict))
        event_dict["extra"] = 1
        return event_dict

    out = io.StringIO()
    configure_logging(stream=out, fmt="json", level="INFO", processors=[processor])
    AccessLogger().write("GET", "/x", 200, 0.1, 2)
    assert seen and seen[0]["event"] == "http_request"
    assert json.loads(out.getvalue())["extra"] == 1


def test_bound_structlog_contextvars_are_merged(stream):
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        AccessLogger().write("GET", "/x", 200, 0.1, 2)
    finally:
        structlog.contextvars.clear_contextvars()
    assert json.loads(stream.getvalue())["request_id"] == "r-1"


def test_console_format_uses_the_chain():
    out = io.StringIO()
    configure_logging(stream=out, fmt="console", level="INFO")
    assert _setup._access_fast.cached is None
    AccessLogger().write("GET", "/x", 200, 0.1, 2)
    assert "http_request" in out.getvalue()


def test_a_body_key_named_like_an_access_field_disables_the_direct_path():
    configure_logging(stream=io.StringIO(), fmt="json", level="INFO", body_keys={"route"})
    assert _setup._access_fast.cached is None


def test_structlog_reconfigured_by_someone_else_uses_their_chain(stream):
    captured: list[dict[str, Any]] = []
    structlog.configure(processors=[lambda _l, _n, d: captured.append(d) or "x"],
                        logger_factory=structlog.ReturnLoggerFactory(), cache_logger_on_first_use=False)
    AccessLogger().write("GET", "/x", 200, 0.1, 2)
    assert captured and captured[0]["route"] == "/x"
    assert stream.getvalue() == ""


def test_active_span_ids_on_both_paths(stream):
    trace = pytest.importorskip("opentelemetry.trace")
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    tracer = sdk.TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s"):
        fast, slow = both(stream, "GET", "/x", 200, 0.1, 2)
        ids = trace.get_current_span().get_span_context()
    assert fast == slow
    line = json.loads(fast)
    assert line["trace_id"] == format(ids.trace_id, "032x")
    assert list(line)[7:9] == ["trace_id", "span_id"]
    fast, slow = both(stream, "GET", "/x", 200, 0.1, 2)
    assert fast == slow and "trace_id" not in fast


def test_int_enum_status_and_odd_logger_names(stream):
    from http import HTTPStatus

    fast, slow = both(stream, "GET", "/x", HTTPStatus.OK, 0.1, 2)
    assert fast == slow and json.loads(fast)["status"] == 200
    access = AccessLogger('100% "odd" 4155552671')
    start = stream.tell()
    access.write("GET", "/x", 200, 0.1, 2)
    fast_line = json.loads(stream.getvalue()[start:])
    redactor = _setup._access_fast.redactor
    _setup._access_fast.enable(None)
    try:
        start = stream.tell()
        access.write("GET", "/x", 200, 0.1, 2)
        slow_line = json.loads(stream.getvalue()[start:])
    finally:
        _setup._access_fast.enable(redactor)
    assert fast_line["module"] == slow_line["module"] == '100% "odd" ***2671'


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 128) - 1),
       st.sampled_from(["0123456789", "0123456789abcdef"]))
def test_masking_never_changes_a_uuid4(bits, digits):
    # Why the middleware may skip masking the correlation ids it generates.
    import uuid

    from surefoot.logging import mask_pii

    raw = "".join(digits[(bits >> (4 * i)) % len(digits)] for i in range(32))
    text = str(uuid.UUID(hex=raw, version=4))
    assert mask_pii(text) == text


class Piped(io.StringIO):
    """A stream with a descriptor, as a pipe or file has: its lines are buffered."""

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return False


def buffered_and_chain(*args: Any, **ids: str | None) -> tuple[str, str, int]:
    """One access line through the direct path and the same line through the chain, both to a
    buffered stream (the inline buffer path of the direct line).

    Returns the two texts and the size the buffer counted for the direct line.
    """
    out = Piped()
    configure_logging(stream=out, fmt="json", level="INFO", buffer_ms=100)
    access = AccessLogger()
    original = _setup._time
    _setup._time = lambda: NOW
    try:
        with context.bound(**ids):
            access.write(*args)
            counted = _setup._SINK.size
            assert out.getvalue() == "" or args[2] >= 500
            _setup._SINK.flush()
            fast = out.getvalue()
            redactor = _setup._access_fast.redactor
            _setup._access_fast.enable(None)
            try:
                _setup._time = lambda: NOW
                access.write(*args)
                _setup._SINK.flush()
            finally:
                _setup._access_fast.enable(redactor)
    finally:
        _setup._time = original
    return fast, out.getvalue()[len(fast):], counted


def test_a_buffered_line_waits_for_the_flush_and_is_counted_exactly():
    fast, slow, counted = buffered_and_chain("GET", "/items/{item_id}", 200, 1.234, 17, correlation_id="c-1")
    assert fast == slow
    assert json.loads(fast)["timestamp"] == "2025-11-24T16:00:00.123456Z"
    assert len(fast) == counted


@settings(max_examples=300, deadline=None)
@given(
    method=st.text(min_size=1, max_size=12),
    route=st.text(max_size=40),
    ident=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
    status=st.integers(min_value=100, max_value=499),
    latency=st.floats(min_value=0, max_value=1e9, allow_nan=False).map(lambda v: round(v, 3)),
    nbytes=st.integers(min_value=0, max_value=(1 << 63) - 1),
)
def test_a_buffered_line_renders_like_the_chain_and_is_counted_exactly(
    method, route, ident, status, latency, nbytes
):
    # The size bound of the buffer (a write within a pipe's atomic size, a bounded loss on a
    # crash) counts what the inline path appends.
    fast, slow, counted = buffered_and_chain(
        method, route, status, latency, nbytes, correlation_id=ident, tenant_id=ident
    )
    assert fast == slow
    assert len(fast) == counted


@settings(max_examples=300, deadline=None)
@given(latency=st.floats(allow_nan=False, allow_infinity=False),
       nbytes=st.integers(min_value=0, max_value=(1 << 63) - 1))
def test_any_latency_or_size_is_counted_exactly_when_buffered(latency, nbytes):
    fast, _slow, counted = buffered_and_chain("GET", "/x", 200, latency, nbytes)
    assert len(fast) == counted


def test_buffered_access_lines_and_other_lines_keep_their_order():
    out = Piped()
    configure_logging(stream=out, fmt="json", level="INFO", buffer_ms=100)
    access = AccessLogger()
    for i in range(200):  # several buffers' worth: size flushes happen between them
        access.write("GET", f"/r{i}", 200, 0.5, i)
        if i % 7 == 0:
            _setup.get_logger("app").info("between", i=i)
    _setup._SINK.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    order = [(line["event"], line.get("bytes", line.get("i"))) for line in lines]
    expected = []
    for i in range(200):
        expected.append(("http_request", i))
        if i % 7 == 0:
            expected.append(("between", i))
    assert order == expected
