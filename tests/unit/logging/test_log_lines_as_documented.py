"""Log lines as the README and the redaction guide describe them, from a user's service."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import surefoot
from surefoot.errors import ConfigurationError
from surefoot.logging import configure_logging, flush_logs, get_logger, mask_pii

EVERY_LINE = ("timestamp", "level", "event", "module", "correlation_id", "causation_id", "tenant_id")


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    # One line per "\n" (U+0085, U+2028 and the like are text inside a JSON string).
    return [json.loads(line) for line in stream.getvalue().split("\n")[:-1]]


def _service() -> tuple[FastAPI, io.StringIO]:
    app = FastAPI()
    surefoot.install(app)
    out = io.StringIO()
    # The service's own output, as install configured it, into a stream the test reads.
    configure_logging(stream=out)
    return app, out


async def _get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        return await client.get(path, headers=headers)


async def test_ids_given_with_a_line_are_logged_as_given_even_zero_or_empty() -> None:
    app, out = _service()

    @app.get("/orders")
    async def orders() -> dict[str, str]:
        get_logger("billing").info("order_listed", tenant_id=0, causation_id="")
        return {}

    await _get(app, "/orders", **{"X-Correlation-ID": "req-1", "X-Tenant-ID": "acme"})
    line = next(line for line in _lines(out) if line["event"] == "order_listed")
    assert (line["correlation_id"], line["causation_id"], line["tenant_id"]) == ("req-1", "", 0)


async def test_message_bodies_follow_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    body = "Hi Ada, reply to ada@example.com or call +1 415 555 2671 " + "x" * 60
    masked = "Hi Ada, reply to ***.com or call ***2671 " + "x" * 60
    for raw, expected in (("false", f"[omitted: {len(body)} chars]"), ("true", masked[:50] + "…")):
        monkeypatch.setenv("SUREFOOT_LOG_MESSAGE_BODIES", raw)
        surefoot.configure()
        app, out = _service()

        @app.post("/sms")
        async def sms() -> dict[str, str]:
            get_logger("sms").info("sms_sent", sms_body=body, meta={"Message-Body": body})
            return {}

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
            await client.post("/sms")
        line = next(line for line in _lines(out) if line["event"] == "sms_sent")
        assert line["sms_body"] == expected and line["meta"]["Message-Body"] == expected


def test_unmasked_pii_is_for_debug_lines_only_and_never_for_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUREFOOT_LOG_LEVEL", "debug")
    monkeypatch.setenv("SUREFOOT_LOG_UNMASKED_PII", "true")
    _, out = _service()
    log = get_logger("signup")
    log.debug("signup_checked", email="ada@example.com", password="hunter2")
    log.info("signup_done", email="ada@example.com")
    logging.getLogger("mailer").debug("sending to ada@example.com with token=abc123")
    debug, info, stdlib = (line for line in _lines(out) if line["module"] in ("signup", "mailer"))
    assert debug["email"] == "ada@example.com" and debug["password"] == "[REDACTED]"
    assert info["email"] == "***.com"
    assert stdlib["event"] == "sending to ada@example.com with token=[REDACTED]"


@pytest.mark.parametrize("value", [4155552671, 4155552671.0, "4155552671", "+1 415 555 2671"])
def test_pii_fields_are_masked_whatever_the_type_of_number(value: Any) -> None:
    _, out = _service()
    get_logger("crm").info("contact_saved", phone=value, contact={"Phone-Number": value})
    (line,) = (line for line in _lines(out) if line["event"] == "contact_saved")
    assert line["phone"] == "***2671" and line["contact"]["Phone-Number"] == "***2671"


class _BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr failed")


def _looped_list() -> list[Any]:
    looped: list[Any] = ["ada@example.com"]
    looped.append(looped)
    return looped


def _looped_dict() -> dict[str, Any]:
    looped: dict[str, Any] = {"password": "hunter2"}
    looped["again"] = looped
    looped["twice"] = looped
    return looped


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["next"] = {}
        node = node["next"]
    node["email"] = "ada@example.com"
    return root


@pytest.mark.parametrize("via", ["structlog", "stdlib"])
def test_a_log_call_never_raises_because_of_what_it_logs(via: str) -> None:
    _, out = _service()
    fields = {"looped_list": _looped_list(), "looped_dict": _looped_dict(), "deep": _deep(5000),
              "broken": _BrokenRepr(), "broken_in_a_list": [1, _BrokenRepr()], "order_ids": _looped_list()}
    if via == "structlog":
        get_logger("jobs").info("job_state", **fields)
        get_logger("jobs").info(_BrokenRepr())
    else:
        logging.getLogger("jobs").info("job_state", extra=fields)
    line = _lines(out)[-2 if via == "structlog" else -1]
    assert line["event"] == "job_state" and line["module"] == "jobs"
    assert line["looped_list"] == ["***.com", "[circular]"]
    assert line["looped_dict"] == {"password": "[REDACTED]", "again": "[circular]", "twice": "[circular]"}
    depth, node = 0, line["deep"]
    while isinstance(node, dict):
        node, depth = node["next"], depth + 1
    assert node == "[too deep]" and depth == 64
    assert line["broken"] == "[unloggable _BrokenRepr: RuntimeError]"
    assert line["broken_in_a_list"] == [1, "[unloggable _BrokenRepr: RuntimeError]"]
    assert line["order_ids"] == "[unloggable list]"  # ids are written as given: this one cannot be
    if via == "structlog":
        assert _lines(out)[-1]["event"] == "[unloggable _BrokenRepr: RuntimeError]"


# Values a service may log: JSON-like leaves, PII and secrets, objects, nested any way.
_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
    st.sampled_from(["ada@example.com", "+1 415 555 2671", "password=hunter2", "Bearer abcdefghijkl"]),
    st.builds(_BrokenRepr), st.binary(max_size=10),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.sampled_from(["a", "body", "phone", "token", "Set-Cookie", "x"]), children, max_size=4),
        st.frozensets(st.text(max_size=5), max_size=3),
    ),
    max_leaves=20,
)


@given(fields=st.dictionaries(st.sampled_from(["data", "payload", "email", "body", "user_id", "extra"]), _VALUES))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_any_value_gives_one_json_line_without_pii_or_secrets(fields: dict[str, Any]) -> None:
    out = io.StringIO()
    configure_logging(stream=out, fmt="json", buffer_ms=0)
    get_logger("fuzz").info("fuzzed", **fields)
    logging.getLogger("fuzz").warning("fuzzed", extra=fields)
    lines = out.getvalue().split("\n")[:-1]  # lines end with "\n" (U+0085 and the like are text)
    assert len(lines) == 2
    for text in lines:
        line = json.loads(text)
        assert set(EVERY_LINE) <= line.keys()
        for needle in ("ada@example.com", "555 2671", "hunter2", "abcdefghijkl"):
            # ``user_id`` is an id: logged as given, by design
            assert needle not in json.dumps({k: v for k, v in line.items() if k != "user_id"})


def test_the_log_file_has_every_id_when_the_console_is_not_json(tmp_path: Any) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    console = Terminal()
    configure_logging(stream=console, fmt="console", log_file=str(tmp_path / "service.log"))
    get_logger("billing").info("invoice_sent")
    logging.getLogger("lib").warning("retrying")
    with surefoot.context.bound(correlation_id="req-7"):
        get_logger("billing").info("invoice_paid")
    flush_logs()
    lines = [json.loads(line) for line in (tmp_path / "service.log").read_text().splitlines()]
    assert [line["event"] for line in lines] == ["invoice_sent", "retrying", "invoice_paid"]
    for line in lines:
        assert list(line)[: len(EVERY_LINE)] == list(EVERY_LINE)
    assert lines[0]["correlation_id"] is None and lines[2]["correlation_id"] == "req-7"
    assert "correlation_id" not in console.getvalue().splitlines()[0]  # the console leaves empty ids out


def test_a_bad_level_names_the_value_given() -> None:
    with pytest.raises(ConfigurationError, match="got 'loud'"):
        configure_logging(stream=io.StringIO(), level="loud")
    with pytest.raises(ConfigurationError, match="got -5"):
        configure_logging(stream=io.StringIO(), buffer_ms=-5)


@given(address=st.emails(), cut=st.integers(min_value=1, max_value=80), mark=st.sampled_from(["...", "…"]))
@settings(max_examples=300)
def test_an_address_cut_short_reveals_neither_its_user_nor_its_at_sign(address: str, cut: int, mark: str) -> None:
    local, _, domain = address.rpartition("@")
    assume(len(local) >= 5 and local not in domain)
    shortened = address[: min(len(local) + cut, len(address) - 1)] + mark  # cut after the "@"
    masked = mask_pii("agent " + shortened)
    assert "@" not in masked and local not in masked, masked
    assert masked.startswith("agent ***")


async def test_a_user_agent_and_an_unmatched_path_cut_to_the_limit_leak_no_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUREFOOT_ACCESS_LOG_USER_AGENT", "true")
    monkeypatch.setenv("SUREFOOT_ACCESS_LOG_MAX_PATH", "28")  # both cut a few characters past the "@"
    surefoot.configure()
    app, out = _service()
    await _get(app, "/unknown/grace.hopper@example.com/x", **{"User-Agent": "crawler grace.hopper@example.com"})
    (line,) = (line for line in _lines(out) if line["event"] == "http_request")
    assert "grace" not in json.dumps(line) and "@" not in json.dumps(line)
    # masked before the cut: what is left fits the limit
    assert len(line["user_agent"]) <= 28 and len(line["path"]) <= 28
    assert line["user_agent"].startswith("crawler ***") and line["path"].endswith(".com/x")


def test_timestamp_and_level_are_always_the_lines_own() -> None:
    _, out = _service()
    get_logger("fleet").warning("battery_low", level=8, timestamp="ada@example.com")
    logging.getLogger("fleet").error("battery_empty", extra={"level": "ada@example.com"})
    warning, error = (line for line in _lines(out) if line["module"] == "fleet")
    assert (warning["level"], error["level"]) == ("warning", "error")
    assert warning["timestamp"].endswith("Z") and "ada" not in warning["timestamp"]
    assert list(warning)[:4] == ["timestamp", "level", "event", "module"]


_HEADER_VALUES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"ada@example.com", b"4155552671", b"req-1", b"x" * 5000, b"a\r\nb", b"\x00", b""]),
)


@given(correlation=_HEADER_VALUES, tenant=_HEADER_VALUES, agent=_HEADER_VALUES,
       path=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_headers_and_paths_give_one_valid_access_line_with_the_echoed_id(
    correlation: bytes, tenant: bytes, agent: bytes, path: str,
) -> None:
    app = FastAPI()
    surefoot.install(app, settings=surefoot.Settings(access_log_user_agent=True))
    out = io.StringIO()
    configure_logging(stream=out)

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"item": item}

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/items/" + path, "raw_path": ("/items/" + path).encode("utf-8", "replace"),
        "query_string": b"", "root_path": "", "server": ("svc", 80), "client": ("10.0.0.9", 5000),
        "headers": [(b"x-correlation-id", correlation), (b"x-tenant-id", tenant), (b"user-agent", agent)],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    assert start["type"] == "http.response.start" and start["status"] < 500
    echoed = dict(start["headers"])[b"x-correlation-id"].decode()
    (line,) = (line for line in _lines(out) if line["event"] == "http_request")
    assert line["correlation_id"] == echoed
    assert line["tenant_id"] in (None, tenant.decode("latin-1"))
    assert list(line)[: len(EVERY_LINE)] == list(EVERY_LINE)


async def test_an_output_that_cannot_be_written_costs_log_lines_never_requests(capfd: pytest.CaptureFixture[str]) -> None:
    app, out = _service()

    @app.get("/pay")
    async def pay() -> dict[str, bool]:
        get_logger("billing").info("payment_started")
        logging.getLogger("billing").error("payment_provider_slow")
        return {"paid": True}

    out.close()  # a pipe whose reader went away
    response = await _get(app, "/pay")
    assert response.status_code == 200 and response.json() == {"paid": True}
    get_logger("billing").critical("still_running")
    errors = capfd.readouterr().err
    assert errors.count("surefoot: log lines were lost: ValueError") == 1
