"""``SUREFOOT_TRACING_*`` variables as people set them, with ``surefoot.install(app)``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import surefoot
from surefoot import tracing

fastapi = pytest.importorskip("fastapi")


def _memory(registry: Any) -> Any:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    tracing.setup_tracing(exporter=mem, set_global=False, registry=registry)
    return mem


def _app() -> Any:
    app = fastapi.FastAPI(telemetry={"tracing": False})

    @app.get("/report")
    async def report() -> dict[str, bool]:
        for step in ("load", "render", "store"):
            with tracing.span(f"report.{step}"):
                pass
        raise RuntimeError("storage full")

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


def _client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_a_trace_cut_at_max_spans_keeps_its_server_span(monkeypatch: Any, registry: Any) -> None:
    monkeypatch.setenv("SUREFOOT_TRACING_SAMPLE_RATIO", "0")
    monkeypatch.setenv("SUREFOOT_TRACING_TAIL_MAX_SPANS", "2")
    mem = _memory(registry)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        assert (await c.get("/report")).status_code == 500
    names = [s.name for s in mem.get_finished_spans()]
    assert names == ["report.load", "report.render", "GET /report"]
    dropped = registry.get_sample_value("surefoot_tracing_tail_dropped_spans_total", {"reason": "max_spans"})
    assert dropped == 1


async def test_tail_keep_off_leaves_failed_traces_to_the_head_sampler(monkeypatch: Any, registry: Any) -> None:
    monkeypatch.setenv("SUREFOOT_TRACING_SAMPLE_RATIO", "0")
    monkeypatch.setenv("SUREFOOT_TRACING_TAIL_KEEP", "false")
    mem = _memory(registry)
    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        assert (await c.get("/report")).status_code == 500
    assert mem.get_finished_spans() == ()


async def test_server_span_existing_makes_no_span_of_its_own(monkeypatch: Any, registry: Any) -> None:
    monkeypatch.setenv("SUREFOOT_TRACING_SERVER_SPAN", "existing")
    mem = _memory(registry)
    app = _app()
    installation = surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        assert (await c.get("/ping", headers={"x-correlation-id": "corr-9"})).status_code == 200
    assert type(installation.middleware.app).__name__ == "ExistingSpanLayer"
    assert not [s for s in mem.get_finished_spans() if s.kind.name == "SERVER"]


async def test_server_span_own_adds_surefoots_span_beside_fastapis(monkeypatch: Any, registry: Any) -> None:
    monkeypatch.setenv("SUREFOOT_TRACING_SERVER_SPAN", "own")
    mem = _memory(registry)
    from surefoot.tracing._api import STATE

    app = fastapi.FastAPI(telemetry={"tracer_provider": STATE.provider})

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    installation = surefoot.install(app, registry=registry, logging=False)
    async with _client(app) as c:
        assert (await c.get("/ping")).status_code == 200
    assert type(installation.middleware.app).__name__ == "ServerSpanLayer"
    ours = [s for s in mem.get_finished_spans() if s.instrumentation_scope.name == "surefoot"]
    assert [(s.name, s.kind.name) for s in ours] == [("GET /ping", "SERVER")]


async def test_server_span_existing_for_an_instrumentation_wrapped_around_the_app(
    monkeypatch: Any, registry: Any
) -> None:
    asgi = pytest.importorskip("opentelemetry.instrumentation.asgi")
    monkeypatch.setenv("SUREFOOT_TRACING_SERVER_SPAN", "existing")
    mem = _memory(registry)
    from surefoot.tracing._api import STATE

    app = _app()
    surefoot.install(app, registry=registry, logging=False)
    served = asgi.OpenTelemetryMiddleware(app, tracer_provider=STATE.provider)
    async with _client(served) as c:
        assert (await c.get("/ping", headers={"x-correlation-id": "corr-w"})).status_code == 200
    (server,) = [s for s in mem.get_finished_spans() if s.kind.name == "SERVER"]
    assert server.instrumentation_scope.name == "opentelemetry.instrumentation.asgi"
    assert server.attributes["correlation_id"] == "corr-w"


async def test_a_failed_request_is_kept_while_max_traces_are_held(monkeypatch: Any, registry: Any) -> None:
    monkeypatch.setenv("SUREFOOT_TRACING_SAMPLE_RATIO", "0")
    monkeypatch.setenv("SUREFOOT_TRACING_TAIL_MAX_TRACES", "1")
    mem = _memory(registry)
    app = fastapi.FastAPI(telemetry={"tracing": False})

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("no stock")

    surefoot.install(app, registry=registry, logging=False)
    with tracing.span("nightly.import"):  # a long job: its trace holds the one place
        with tracing.span("nightly.batch"):
            pass
        async with _client(app) as c:
            assert (await c.get("/fail")).status_code == 500
    (server,) = [s for s in mem.get_finished_spans() if s.kind.name == "SERVER"]
    assert server.name == "GET /fail" and server.attributes["surefoot.tail_kept"] is True
    assert not registry.get_sample_value("surefoot_tracing_tail_dropped_spans_total", {"reason": "max_traces"})
