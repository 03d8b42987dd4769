"""Every touch of another library's internals, checked against the installed versions.

An upgrade that changes what surefoot._compat relies on fails here (and production falls
back to the public API instead of breaking).
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, Gauge, Histogram
from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.routing import Mount, Route

from surefoot._compat import fastapi as compat_fastapi
from surefoot._compat import prometheus as compat_prometheus
from surefoot._compat import starlette as compat_starlette


def test_prometheus_internals_are_there_and_used():
    assert compat_prometheus.internals_available()
    registry = CollectorRegistry()
    histogram = Histogram("t_seconds", "t", ["k"], registry=registry, buckets=(0.1, 1.0))
    observe = compat_prometheus.observer(histogram.labels("a"))
    assert isinstance(histogram.labels("a")._buckets[0], compat_prometheus.CountValue)
    for value in (0.05, 0.5, 5.0):
        observe(value)
    assert registry.get_sample_value("t_seconds_count", {"k": "a"}) == 3
    assert registry.get_sample_value("t_seconds_bucket", {"k": "a", "le": "0.1"}) == 1
    assert registry.get_sample_value("t_seconds_sum", {"k": "a"}) == pytest.approx(5.55)


def test_prometheus_falls_back_to_public_methods():
    class Child:  # something without the internals: the public methods are used
        def __init__(self):
            self.seen = []

        def observe(self, value):
            self.seen.append(value)

        def inc(self, amount=1):
            self.seen.append(amount)

    child = Child()
    compat_prometheus.observer(child)(0.25)
    compat_prometheus.adder(child)(2)
    assert child.seen == [0.25, 2]
    gauge = Gauge("g", "g", registry=CollectorRegistry())
    started, finished = compat_prometheus.active_pair(gauge)
    started(), started(), finished()
    assert gauge._value.get() == 1 or gauge.collect()[0].samples[0].value == 1


async def test_fastapi_effective_route_carries_router_prefixes():
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/items/{item_id}")
    async def item(item_id: int, request_scope=None):
        return {"id": item_id}

    app.include_router(router, prefix="/api")
    seen = {}

    async def spy(scope, receive, send):
        async def capture(message):
            if message["type"] == "http.response.start":
                seen["found"] = compat_fastapi.effective_route(scope)
            await send(message)

        await app(scope, receive, capture)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=spy), base_url="http://t") as client:
        assert (await client.get("/api/v1/items/3")).status_code == 200
    found = seen["found"]
    assert found is not None, "FastAPI no longer records the effective route"
    effective, original = found
    assert effective.path_format == "/api/v1/items/{item_id}"
    assert original is not None


def test_fastapi_effective_route_tolerates_other_shapes():
    assert compat_fastapi.effective_route({}) is None
    assert compat_fastapi.effective_route({"fastapi": object()}) is None
    assert compat_fastapi.effective_route({"fastapi": {}}) is None


def test_starlette_stack_has_server_error_middleware_outermost():
    for app in (Starlette(), FastAPI()):
        stack = app.build_middleware_stack()
        assert isinstance(stack, ServerErrorMiddleware) and hasattr(stack, "app")


async def test_starlette_wrap_outermost_and_fallback():
    calls = []

    def wrap(inner):
        async def layer(scope, receive, send):
            calls.append(scope["type"])
            await inner(scope, receive, send)

        return layer

    async def ok(request):
        from starlette.responses import PlainTextResponse

        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", ok)])
    compat_starlette.wrap_outermost(app, wrap)
    stack = app.build_middleware_stack()
    assert isinstance(stack, ServerErrorMiddleware)  # our layer went inside it
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/")).text == "ok"
    assert calls == ["http"]

    class Custom(Starlette):  # a stack without ServerErrorMiddleware outside: wrap it all
        def build_middleware_stack(self):
            return self.router

    custom = Custom(routes=[Route("/", ok)])
    compat_starlette.wrap_outermost(custom, wrap)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=custom), base_url="http://t") as client:
        assert (await client.get("/")).text == "ok"
    assert calls == ["http", "http"]


def test_starlette_mounted_apps_found_at_any_depth():
    inner = FastAPI()
    middle = Starlette(routes=[Mount("/inner", app=inner)])
    app = Starlette(routes=[Mount("/m", app=middle), Mount("/plain", routes=[Mount("/deep", app=inner)])])
    found = compat_starlette.mounted_apps(app.router.routes)
    assert middle in found and inner in found
    assert compat_starlette.let_errors_propagate(inner)
    assert not isinstance(inner.build_middleware_stack(), ServerErrorMiddleware)


def test_structlog_is_imported_without_rich(subprocess_env):
    code = ("import sys; import surefoot, surefoot.logging; import structlog;"
            "print('rich' in sys.modules or 'greenlet' in sys.modules, structlog.dev.plain_traceback is not None);"
            "import rich, greenlet; print(rich.__name__)")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "rich"]


def test_structlog_with_rich_on_request(subprocess_env):
    code = "import sys; import surefoot; print('rich' in sys.modules)"
    env = dict(subprocess_env, SUREFOOT_STRUCTLOG_RICH="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True"
    code = "import structlog, sys; import surefoot; print('rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "True"  # structlog imported first: left as it was


def test_prometheus_value_class_switch(tmp_path, subprocess_env):
    code = (
        "import os, prometheus_client\n"
        "from surefoot._compat.prometheus import multiprocess_values_active, use_multiprocess_values\n"
        "assert not multiprocess_values_active()\n"
        f"os.environ['PROMETHEUS_MULTIPROC_DIR'] = {str(tmp_path)!r}\n"
        "assert use_multiprocess_values() and multiprocess_values_active()\n"
        "c = prometheus_client.Counter('x_total', 'x', registry=None); c.inc()\n"
        "print(sorted(p.split('_')[0] for p in os.listdir(os.environ['PROMETHEUS_MULTIPROC_DIR'])))\n"
    )
    env = dict(subprocess_env)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['counter']"


def test_opentelemetry_context_is_read_in_one_call_and_ids_come_from_the_public_api():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from surefoot._compat import opentelemetry as compat_otel

    assert compat_otel.fast_context_available()
    getter = compat_otel.context_getter()
    assert getter is not None
    tracer = TracerProvider().get_tracer("compat")
    assert compat_otel.current_trace_ids() is None
    with tracer.start_as_current_span("s") as span:
        assert getter()  # a span is current: the context is not empty
        ids = compat_otel.current_trace_ids()
        context = span.get_span_context()
        assert ids == (format(context.trace_id, "032x"), format(context.span_id, "016x"))
    assert not getter() or trace.get_current_span() is trace.INVALID_SPAN


def test_structlog_state_reads_find_the_configuration_and_the_context_variables():
    import structlog

    from surefoot._compat import structlog as compat_structlog

    config = compat_structlog.structlog_config()
    assert config is not None and isinstance(config.default_processors, list)
    structlog.contextvars.bind_contextvars(compat_probe=1)
    try:
        table = compat_structlog.structlog_context_vars()
        assert table is not None
        assert any(var.get() == 1 for key, var in table.items() if key.endswith("compat_probe"))
    finally:
        structlog.contextvars.unbind_contextvars("compat_probe")


def test_prometheus_registry_names_table_finds_a_registered_family():
    registry = CollectorRegistry()
    gauge = Gauge("compat_names_total", "t", registry=registry)
    assert compat_prometheus.collector_names(registry)["compat_names_total"] is gauge
    assert compat_prometheus.collector_names(object()) == {}


def test_sqlalchemy_pool_max_overflow_is_read():
    import sqlalchemy as sa

    from surefoot._compat import sqlalchemy as compat_sqlalchemy

    engine = sa.create_engine("sqlite://", poolclass=sa.pool.QueuePool, pool_size=3, max_overflow=7)
    try:
        assert compat_sqlalchemy.max_overflow(engine.pool) == 7
        assert compat_sqlalchemy.max_overflow(object()) is None
    finally:
        engine.dispose()


async def test_asyncio_running_loop_and_current_task_in_one_call():
    import asyncio

    from surefoot._compat import asyncio as compat_asyncio

    assert compat_asyncio.fast_paths_available()
    loop = asyncio.get_running_loop()
    assert compat_asyncio.running_loop_or_none() is loop
    assert compat_asyncio.current_task_getter()(loop) is asyncio.current_task()


def test_asyncio_running_loop_is_none_outside_a_loop():
    from surefoot._compat import asyncio as compat_asyncio

    assert compat_asyncio.running_loop_or_none() is None
