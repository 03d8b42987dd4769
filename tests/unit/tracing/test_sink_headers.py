"""An outbound HTTP webhook sink forwards the writer's trace context with each event."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from surefoot import outbox, tracing
from surefoot.testing import InMemoryOutbox, adrain

pytest.importorskip("surefoot.outbox.sinks")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_http_sink_requests_carry_the_writers_traceparent_and_tracestate(exporter: Any) -> None:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace

    from surefoot.outbox.sinks import HttpSink

    received: list[httpx.Request] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    fake = InMemoryOutbox()
    caller = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
              "tracestate": "congo=t61rcWkgMzE"}
    token = otel_context.attach(propagate.extract(caller))  # a request from a traced caller
    try:
        with tracing.span("order.place") as writer:
            outbox.add(fake, "OrderPlaced", {"order": 1})
    finally:
        otel_context.detach(token)
    client = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    sink = HttpSink("https://hooks.example.com/{event_name}", secrets=SECRET, client=client)
    try:
        await adrain(fake, sinks={"*": sink})
    finally:
        await sink.close()
        await client.aclose()
    (request,) = received
    ctx = writer.get_span_context()
    _, trace_id, span_id, flags = request.headers["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 1
    assert request.headers["tracestate"] == "congo=t61rcWkgMzE"
    # the receiver continues the same trace with OpenTelemetry's propagator
    carried = propagate.extract(dict(request.headers))
    assert trace.get_current_span(carried).get_span_context().trace_id == ctx.trace_id
