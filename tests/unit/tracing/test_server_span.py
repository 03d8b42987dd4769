from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import surefoot
from surefoot import tracing

PARENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN = "b7ad6b7169203331"


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5000)), base_url="http://testserver"
    )


def _starlette() -> Starlette:
    async def item(request: Any) -> Any:
        with tracing.span("inventory.lookup"):
            return JSONResponse({"id": request.path_params["item_id"]})

    async def boom(request: Any) -> Any:
        raise RuntimeError("deep failure")

    async def teapot(request: Any) -> Any:
        return PlainTextResponse("no", status_code=418)

    return Starlette(routes=[Route("/items/{item_id:int}", item), Route("/boom", boom), Route("/teapot", teapot)])


def _server_spans(exporter: Any) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]


async def test_own_server_span_follows_http_semantic_conventions(exporter: Any, registry: Any) -> None:
    app = _starlette()
    surefoot.install(app, registry=registry, logging=False)
    async with client(app) as c:
        r = await c.get(
            "/items/42?token=secret&page=2",
            headers={"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01", "user-agent": "probe/1.0",
                     "x-correlation-id": "corr-77", "x-tenant-id": "acme"},
        )
    assert r.status_code == 200
    (server,) = _server_spans(exporter)
    assert server.name == "GET /items/{item_id}"
    attrs = dict(server.attributes)
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.route"] == "/items/{item_id}"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/items/42"
    assert attrs["url.query"] == "token=REDACTED&page=REDACTED"
    assert "secret" not in repr(attrs)
    assert attrs["client.address"] == "203.0.113.7"
    assert attrs["user_agent.original"] == "probe/1.0"
    assert attrs["correlation_id"] == "corr-77" and attrs["tenant_id"] == "acme"
    assert "error.type" not in attrs
    assert format(server.context.trace_id, "032x") == PARENT_TRACE
    assert format(server.parent.span_id, "016x") == PARENT_SPAN and server.parent.is_remote
    (inner,) = [s for s in exporter.get_finished_spans() if s.name == "inventory.lookup"]
    assert inner.parent.span_id == server.context.span_id
    assert inner.attributes["correlation_id"] == "corr-77"


async def test_unhandled_exception_marks_the_server_span(exporter: Any, registry: Any) -> None:
    app = _starlette()
    surefoot.install(app, registry=registry, logging=False)
    async with client(app) as c:
        r = await c.get("/boom")
        teapot = await c.get("/teapot")
    assert r.status_code == 500 and teapot.status_code == 418
    boom, tea = _server_spans(exporter)
    assert boom.name == "GET /boom"
    assert boom.attributes["http.response.status_code"] == 500
    assert boom.attributes["error.type"] == "RuntimeError"
    assert boom.status.status_code.name == "ERROR"
    assert "exception" in [e.name for e in boom.events]
    # a 4xx is the client's problem, not a failed span (semantic conventions for servers)
    assert tea.status.status_code.name == "UNSET" and "error.type" not in tea.attributes


async def test_unmatched_request_is_named_by_method_only(exporter: Any, registry: Any) -> None:
    app = _starlette()
    surefoot.install(app, registry=registry, logging=False)
    async with client(app) as c:
        assert (await c.get("/nowhere")).status_code == 404
    (server,) = _server_spans(exporter)
    assert server.name == "GET" and "http.route" not in server.attributes


async def test_tracing_off_leaves_the_app_unwrapped(registry: Any) -> None:
    app = _starlette()
    installation = surefoot.install(app, registry=registry, logging=False)
    async with client(app) as c:
        assert (await c.get("/items/1")).status_code == 200
    assert type(installation.middleware.app).__name__ != "ServerSpanLayer"


async def test_fastapi_own_telemetry_keeps_one_server_span(exporter: Any, registry: Any) -> None:
    fastapi = pytest.importorskip("fastapi")
    provider = tracing.active_tracer()  # noqa: F841 - tracing is on
    from surefoot.tracing._api import STATE

    app = fastapi.FastAPI(telemetry={"tracer_provider": STATE.provider})

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        with tracing.span("orders.load"):
            return {"id": order_id}

    installation = surefoot.install(app, registry=registry, logging=False)
    async with client(app) as c:
        r = await c.get("/orders/5", headers={"x-correlation-id": "corr-fa", "x-tenant-id": "t1"})
    assert r.status_code == 200
    assert type(installation.middleware.app).__name__ == "ExistingSpanLayer"
    (server,) = _server_spans(exporter)
    assert server.instrumentation_scope.name == "fastapi"
    assert server.name == "GET /orders/{order_id}"
    assert server.attributes["correlation_id"] == "corr-fa" and server.attributes["tenant_id"] == "t1"
    load = [s for s in exporter.get_finished_spans() if s.name == "orders.load"]
    assert load and load[0].context.trace_id == server.context.trace_id


async def test_fastapi_with_its_telemetry_off_gets_surefoots_span(exporter: Any, registry: Any) -> None:
    fastapi = pytest.importorskip("fastapi")
    app = fastapi.FastAPI(telemetry={"tracing": False})

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    surefoot.install(app, registry=registry, logging=False)
    async with client(app) as c:
        assert (await c.get("/ping")).status_code == 200
    (server,) = _server_spans(exporter)
    assert server.instrumentation_scope.name == "surefoot" and server.name == "GET /ping"


async def test_contrib_instrumentation_keeps_one_server_span(exporter: Any, registry: Any) -> None:
    fastapi = pytest.importorskip("fastapi")
    contrib = pytest.importorskip("opentelemetry.instrumentation.fastapi")
    from surefoot.tracing._api import STATE

    app = fastapi.FastAPI(telemetry={"tracing": False})

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    surefoot.install(app, registry=registry, logging=False)
    contrib.FastAPIInstrumentor.instrument_app(app, tracer_provider=STATE.provider)
    try:
        async with client(app) as c:
            assert (await c.get("/ping", headers={"x-correlation-id": "corr-c"})).status_code == 200
    finally:
        contrib.FastAPIInstrumentor.uninstrument_app(app)
    (server,) = _server_spans(exporter)
    assert server.instrumentation_scope.name.startswith("opentelemetry.instrumentation")
    assert server.attributes["correlation_id"] == "corr-c"


async def test_exemplars_link_latency_buckets_to_sampled_traces(exporter: Any, registry: Any) -> None:
    app = _starlette()
    surefoot.install(app, registry=registry, logging=False)
    async with client(app) as c:
        assert (await c.get("/items/3")).status_code == 200
        scrape = await c.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    server = _server_spans(exporter)[0]
    assert server.name == "GET /items/{item_id}"
    trace_id = format(server.context.trace_id, "032x")
    lines = [line for line in scrape.text.splitlines()
             if line.startswith("http_server_request_duration_seconds_bucket") and 'http_route="/items/{item_id}"' in line]
    assert any(f'trace_id="{trace_id}"' in line for line in lines), lines
