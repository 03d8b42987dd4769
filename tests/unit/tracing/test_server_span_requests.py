"""The server span under requests people really send: odd trace headers, mounted apps,
background tasks, and the head decision a caller made."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import surefoot
from surefoot import tracing

fastapi = pytest.importorskip("fastapi")

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def _memory(registry: Any, ratio: float) -> Any:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    tracing.setup_tracing(exporter=mem, set_global=False, sample_ratio=ratio, registry=registry)
    return mem


def _app() -> Any:
    app = fastapi.FastAPI(telemetry={"tracing": False})
    billing = fastapi.FastAPI()

    @billing.get("/invoices/{invoice_id}")
    async def invoice(invoice_id: int) -> dict[str, int]:
        with tracing.span("invoice.load", invoice_id=invoice_id):
            return {"id": invoice_id}

    app.mount("/billing", billing)

    def send_receipt() -> None:
        raise RuntimeError("mail server down")

    @app.post("/orders")
    async def order(tasks: fastapi.BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(send_receipt)
        return {"accepted": True}

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        with tracing.span("ping.inner"):
            return {"ok": True}

    return app


def _client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _servers(mem: Any) -> list[Any]:
    return [s for s in mem.get_finished_spans() if s.kind.name == "SERVER"]


async def test_a_mounted_app_names_the_span_by_its_full_route(registry: Any) -> None:
    mem = _memory(registry, 1.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        assert (await c.get("/billing/invoices/7")).status_code == 200
    (server,) = _servers(mem)
    assert server.name == "GET /billing/invoices/{invoice_id}"
    assert server.attributes["http.route"] == "/billing/invoices/{invoice_id}"
    (inner,) = [s for s in mem.get_finished_spans() if s.name == "invoice.load"]
    assert inner.parent.span_id == server.context.span_id


async def test_an_unknown_method_never_names_a_span(registry: Any) -> None:
    mem = _memory(registry, 1.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        await c.request("X" * 5000, "/ping")
        await c.request("PROPFIND", "/ping")
        assert (await c.get("/ping")).status_code == 200
    odd, webdav, get = _servers(mem)
    assert odd.name == webdav.name == "HTTP /ping" and get.name == "GET /ping"
    assert odd.attributes["http.request.method"] == "_OTHER" == webdav.attributes["http.request.method"]
    assert odd.attributes["http.request.method_original"] == "X" * 64  # cut
    assert webdav.attributes["http.request.method_original"] == "PROPFIND"
    assert get.attributes["http.request.method"] == "GET" and "http.request.method_original" not in get.attributes


async def test_a_failing_background_task_marks_the_request_and_keeps_its_trace(registry: Any) -> None:
    # Nothing is head-sampled: only the tail keep can export this trace, and only if the
    # failure after the 200 answer marks the server span.
    mem = _memory(registry, 0.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        r = await c.post("/orders")
        assert r.status_code == 200 and r.json() == {"accepted": True}
        assert (await c.get("/ping")).status_code == 200
    (server,) = _servers(mem)
    assert server.name == "POST /orders"
    assert server.attributes["http.response.status_code"] == 200  # what the client got
    assert server.attributes["error.type"] == "RuntimeError"
    assert server.status.status_code.name == "ERROR"
    assert "exception" in [e.name for e in server.events]
    assert server.attributes["surefoot.tail_kept"] is True


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "garbage"},
        {"traceparent": f"00-{TRACE}-{PARENT}-01-trailing"},
        {"traceparent": f"00-{'0' * 32}-{PARENT}-01"},
        {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},
        {"traceparent": f"ff-{TRACE}-{PARENT}-01"},
        {"traceparent": "00-" + "a" * 5000},
        {"traceparent": f"00-{TRACE.upper()}-{PARENT}-01"},
    ],
    ids=["garbage", "trailing-data", "zero-trace", "zero-span", "version-ff", "oversized", "upper-case"],
)
async def test_a_malformed_traceparent_starts_a_new_trace(registry: Any, headers: dict[str, str]) -> None:
    mem = _memory(registry, 1.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        assert (await c.get("/ping", headers=headers)).status_code == 200
    (server,) = _servers(mem)
    assert server.parent is None
    assert format(server.context.trace_id, "032x") != TRACE
    (inner,) = [s for s in mem.get_finished_spans() if s.name == "ping.inner"]
    assert inner.context.trace_id == server.context.trace_id


async def test_an_oversized_tracestate_does_not_lose_the_parent(registry: Any) -> None:
    mem = _memory(registry, 1.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "vendor=" + "x" * 10_000}
    async with _client(app) as c:
        assert (await c.get("/ping", headers=headers)).status_code == 200
    (server,) = _servers(mem)
    assert format(server.context.trace_id, "032x") == TRACE
    assert format(server.parent.span_id, "016x") == PARENT


async def test_the_callers_head_decision_is_followed(registry: Any) -> None:
    # ratio 0 for new traces, yet a sampled caller is traced; ratio 1, yet an unsampled
    # caller is not (and nothing inside its request is exported either).
    mem = _memory(registry, 0.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        await c.get("/ping", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        await c.get("/ping")
    assert {format(s.context.trace_id, "032x") for s in mem.get_finished_spans()} == {TRACE}
    assert {s.name for s in mem.get_finished_spans()} == {"GET /ping", "ping.inner"}

    mem = _memory(registry, 1.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        await c.get("/ping", headers={"traceparent": f"00-{TRACE}-{PARENT}-00"})
    assert mem.get_finished_spans() == ()


async def test_a_failure_under_an_unsampled_caller_is_still_kept(registry: Any) -> None:
    mem = _memory(registry, 1.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        await c.post("/orders", headers={"traceparent": f"00-{TRACE}-{PARENT}-00"})
    (server,) = _servers(mem)
    assert format(server.context.trace_id, "032x") == TRACE
    assert server.attributes["surefoot.tail_kept"] is True
    assert format(server.parent.span_id, "016x") == PARENT


async def test_tracestate_over_several_header_lines_is_one_list(registry: Any) -> None:
    mem = _memory(registry, 1.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    headers = [
        ("traceparent", f"00-{TRACE}-{PARENT}-01"),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("tracestate", "rojo=00f067aa0ba902b7"),
    ]
    async with _client(app) as c:
        assert (await c.get("/ping", headers=headers)).status_code == 200
    (server,) = _servers(mem)
    assert format(server.context.trace_id, "032x") == TRACE
    assert dict(server.context.trace_state) == {"congo": "t61rcWkgMzE", "rojo": "00f067aa0ba902b7"}


async def test_a_second_traceparent_line_does_not_replace_the_first(registry: Any) -> None:
    mem = _memory(registry, 1.0)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    other = "0af7651916cd43dd8448eb211c80319c"
    headers = [("traceparent", f"00-{TRACE}-{PARENT}-01"), ("traceparent", f"00-{other}-b7ad6b7169203331-01")]
    async with _client(app) as c:
        assert (await c.get("/ping", headers=headers)).status_code == 200
    (server,) = _servers(mem)
    assert format(server.context.trace_id, "032x") == TRACE
