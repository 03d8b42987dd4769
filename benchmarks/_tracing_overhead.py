"""The tracing part of ``http_overhead.py --tracing``: what a traced request costs.

In-process, CPU µs per request, median of interleaved rounds, Starlette and FastAPI (1 route),
every tracer with a ``BatchSpanProcessor`` and an exporter that drops what it gets:

* ``bare`` and ``surefoot`` (tracing off: the request path exactly as without tracing);
* ``surefoot+tracing``: ``surefoot.tracing.setup_tracing`` (sample ratio 1.0, tail keep on,
  parent-based) and ``install_http``: surefoot's own server span;
* ``contrib``: the bare app with ``opentelemetry-instrumentation-asgi`` (Starlette) /
  ``-fastapi`` (FastAPI) on an SDK provider;
* FastAPI only: ``fastapi-telemetry`` (``FastAPI(telemetry=...)``, tracing only) and
  ``surefoot+fastapi-telemetry`` (surefoot adds its ids to FastAPI's span).

Then the cost of one outbox delivery through a handler, tracing off and on (the
``outbox.dispatch`` span continuing the stored trace context).
"""

from __future__ import annotations

import statistics
from typing import Any

from prometheus_client import CollectorRegistry

from _bench import amedian_rounds, fmt, table

STACKS = ("bare", "surefoot", "surefoot+tracing", "contrib")
FASTAPI_ONLY = ("fastapi-telemetry", "surefoot+fastapi-telemetry")


def _sdk_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return provider, Drop


def _app(framework: str, telemetry: Any = None) -> tuple[Any, str]:
    if framework == "starlette":
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def endpoint(request: Any) -> Any:
            return JSONResponse({"id": request.path_params["item_id"]})

        return Starlette(routes=[Route("/items/{item_id:int}", endpoint)]), "/items/42"
    from fastapi import FastAPI

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None,
                  telemetry=telemetry if telemetry is not None else {"tracing": False, "metrics": False,
                                                                     "logs": False})

    @app.get("/items/{item_id}")
    async def endpoint(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app, "/items/42"


def _surefoot(app: Any) -> None:
    from surefoot._core.settings import Settings
    from surefoot.http import install_http

    install_http(app, registry=CollectorRegistry(auto_describe=True), settings=Settings(env="production"))


async def run(rounds: int, n: int, driver: Any) -> None:
    from surefoot import tracing

    contrib_provider, drop = _sdk_provider()
    built: dict[str, Any] = {}
    # Tracing off first: these apps are built (and decide) before tracing is on.
    for framework in ("starlette", "fastapi"):
        app, path = _app(framework)
        built[f"{framework}/bare"] = (app, path)
        app, path = _app(framework)
        _surefoot(app)
        built[f"{framework}/surefoot"] = (app, path)
        app, path = _app(framework)
        if framework == "starlette":
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

            app.add_middleware(OpenTelemetryMiddleware, tracer_provider=contrib_provider)
        else:
            from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

            FastAPIInstrumentor.instrument_app(app, tracer_provider=contrib_provider)
        built[f"{framework}/contrib"] = (app, path)
    app, path = _app("fastapi", {"tracer_provider": contrib_provider, "metrics": False, "logs": False,
                                 "operation_spans": False})
    built["fastapi/fastapi-telemetry"] = (app, path)

    runs = {}
    for name, (app, path) in built.items():
        fn = driver(app, path)
        await fn(200)  # warm-up; builds the middleware stack, which decides about tracing
        runs[name] = fn

    tracing.setup_tracing(exporter=drop(), batch=True, sample_ratio=1.0, set_global=False)
    from surefoot.tracing._api import STATE

    for framework in ("starlette", "fastapi"):
        app, path = _app(framework)
        _surefoot(app)
        built[f"{framework}/surefoot+tracing"] = (app, path)
    app, path = _app("fastapi", {"tracer_provider": STATE.provider, "metrics": False, "logs": False,
                                 "operation_spans": False})
    _surefoot(app)
    built["fastapi/surefoot+fastapi-telemetry"] = (app, path)

    for name, (app, path) in built.items():
        if name not in runs:
            fn = driver(app, path)
            await fn(200)
            runs[name] = fn
    samples = await amedian_rounds(runs, rounds=rounds, n=n)

    def med(name: str) -> float:
        return statistics.median(samples[name])

    def over(name: str, base: str) -> float:
        return statistics.median([v - b for v, b in zip(samples[name], samples[base], strict=False)])

    rows = []
    verdicts = []
    for framework in ("starlette", "fastapi"):
        tracing_cost = over(f"{framework}/surefoot+tracing", f"{framework}/surefoot")
        contrib_cost = over(f"{framework}/contrib", f"{framework}/bare")
        row = [
            framework, fmt(med(f"{framework}/bare")),
            "+" + fmt(over(f"{framework}/surefoot", f"{framework}/bare")),
            "+" + fmt(over(f"{framework}/surefoot+tracing", f"{framework}/bare")),
            "+" + fmt(tracing_cost), "+" + fmt(contrib_cost),
            fmt(tracing_cost / contrib_cost, 2) + "x" if contrib_cost > 0 else "n/a",
        ]
        if framework == "fastapi":
            row += ["+" + fmt(over("fastapi/fastapi-telemetry", "fastapi/bare")),
                    "+" + fmt(over("fastapi/surefoot+fastapi-telemetry", "fastapi/surefoot"))]
        else:
            row += ["-", "-"]
        rows.append(row)
        verdicts.append(
            f"{framework}: tracing adds +{fmt(tracing_cost)} µs (target <= 50: "
            f"{'met' if tracing_cost <= 50 else 'NOT met'}); {fmt(tracing_cost / contrib_cost * 100 if contrib_cost else 0)} % "
            f"of contrib's +{fmt(contrib_cost)} µs (target <= 33 %: "
            f"{'met' if contrib_cost and tracing_cost <= contrib_cost / 3 else 'NOT met'})"
        )
    print(table(
        ["framework", "bare µs/req", "surefoot (tracing off) +µs", "surefoot+tracing +µs",
         "tracing's own +µs", "contrib +µs", "tracing / contrib", "FastAPI telemetry +µs",
         "surefoot ids on FastAPI's span +µs (vs surefoot)"],
        rows,
    ))
    print("\n" + "\n".join(verdicts))
    print("tracing's own = surefoot+tracing - surefoot (tracing off), same round; contrib = contrib - bare.")
    print("With tracing off no tracing layer is built: the request path is the same objects and calls "
          "as without this feature.")
    await outbox_delivery(rounds, n)
    tracing.reset_tracing()


async def outbox_delivery(rounds: int, n: int) -> None:
    """µs per outbox delivery through a HandlerSink (the dispatcher's handler path)."""
    from surefoot import tracing
    from surefoot.outbox import HandlerSink, build_event

    async def handler(event: Any) -> None:
        return None

    sink = HandlerSink(handler)
    with tracing.span("writer"):  # the events carry a traceparent, as add() stores it
        events = [build_event("Bench", {"i": i}) for i in range(100)]

    async def deliver(count: int) -> None:
        for _ in range(count // 100):
            await sink.send_many(events)

    from surefoot.tracing._api import STATE

    saved = STATE.tracer, STATE.provider

    async def off(count: int) -> None:
        STATE.tracer, STATE.provider = None, None
        try:
            await deliver(count)
        finally:
            STATE.tracer, STATE.provider = saved

    async def on(count: int) -> None:
        await deliver(count)

    await off(200)
    await on(200)
    samples = await amedian_rounds({"off": off, "on": on}, rounds=rounds, n=max(n, 100) // 100 * 100)
    o, t = statistics.median(samples["off"]), statistics.median(samples["on"])
    print()
    print(table(["outbox delivery (async handler, batch 100)", "tracing off µs", "tracing on µs", "added µs"],
                [["HandlerSink.send_many", fmt(o), fmt(t), "+" + fmt(t - o)]]))

