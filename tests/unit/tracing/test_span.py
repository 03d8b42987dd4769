from __future__ import annotations

import asyncio
from typing import Any

import pytest

from surefoot import context, tracing


def test_span_is_a_shared_noop_when_tracing_is_off() -> None:
    first = tracing.span("a", event_id="e1")
    assert first is tracing.span("b") is tracing.NOOP_SPAN
    with first as s:
        s.set_attribute("k", "v")
        s.add_event("x")
        assert not s.is_recording()


async def test_noop_span_works_with_async_with() -> None:
    async with tracing.span("a") as s:
        assert not s.is_recording()


def test_span_names_attributes_parentage_and_ids(exporter: Any) -> None:
    with (
        context.bound(correlation_id="corr-1", causation_id="cause-1", tenant_id="acme"),
        tracing.span("conversation.first_reply", event_id="ev-1", skipped=None) as outer,
    ):
        assert outer.is_recording()
        with tracing.span("scheduling.book", slots=[1, 2]):
            pass
    inner, outer_span = exporter.get_finished_spans()
    assert (outer_span.name, inner.name) == ("conversation.first_reply", "scheduling.book")
    assert inner.parent.span_id == outer_span.context.span_id
    assert inner.context.trace_id == outer_span.context.trace_id
    assert outer_span.parent is None
    assert dict(outer_span.attributes) == {
        "event_id": "ev-1", "correlation_id": "corr-1", "causation_id": "cause-1", "tenant_id": "acme",
    }
    assert inner.attributes["slots"] == (1, 2)  # OpenTelemetry holds a list of ints as it is


def test_span_attributes_opentelemetry_cannot_hold_become_text(exporter: Any) -> None:
    import uuid

    booking = uuid.UUID("12345678-1234-5678-1234-567812345678")
    with tracing.span("s", booking=booking, ids=(booking,), mixed=[1, "a"], flags=[True, False],
                      ratios=(0.5, 1.5), names=["a", "b"]):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.attributes["booking"] == str(booking)
    assert span.attributes["ids"] == (str(booking),)
    assert span.attributes["mixed"] == ("1", "a")
    assert span.attributes["flags"] == (True, False)
    assert span.attributes["ratios"] == (0.5, 1.5)
    assert span.attributes["names"] == ("a", "b")


async def test_async_span_records_the_exception_and_reraises(exporter: Any) -> None:
    with pytest.raises(KeyError):
        async with tracing.span("work"):
            await asyncio.sleep(0)
            raise KeyError("boom")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "KeyError"
    assert [e.name for e in span.events] == ["exception"]


async def test_span_context_follows_into_tasks(exporter: Any) -> None:
    async def child() -> None:
        with tracing.span("child"):
            await asyncio.sleep(0)

    async with tracing.span("parent") as parent:
        await asyncio.gather(asyncio.create_task(child()), asyncio.create_task(child()))
    spans = exporter.get_finished_spans()
    children = [s for s in spans if s.name == "child"]
    assert len(children) == 2
    assert all(c.parent.span_id == parent.get_span_context().span_id for c in children)


def test_current_trace_ids_inside_a_span(exporter: Any) -> None:
    with tracing.span("x") as s:
        trace_id, span_id = tracing.current_trace_ids()
        assert trace_id == format(s.get_span_context().trace_id, "032x")
        assert span_id == format(s.get_span_context().span_id, "016x")


def test_inject_headers_carries_the_current_span(exporter: Any) -> None:
    assert tracing.inject_headers({}) == {}
    with tracing.span("x") as s:
        headers = tracing.inject_headers({})
    ctx = s.get_span_context()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 1  # sampled


def test_shutdown_turns_spans_off_again(exporter: Any) -> None:
    # (unit tests never install a global provider: there is nothing to fall back on)
    tracing.shutdown_tracing()
    assert tracing.active_tracer() is None
    assert tracing.span("x") is tracing.NOOP_SPAN
    assert exporter.get_finished_spans() == ()


def test_trace_exemplar_only_inside_a_sampled_span(exporter: Any) -> None:
    assert tracing.trace_exemplar() is None
    with tracing.span("x") as s:
        ex = tracing.trace_exemplar()
    assert ex == {"trace_id": format(s.get_span_context().trace_id, "032x"),
                  "span_id": format(s.get_span_context().span_id, "016x")}


INSTALL_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
import surefoot

async def ping(request):
    return PlainTextResponse("pong")

app = Starlette(routes=[Route("/ping", ping)])
surefoot.install(app, logging=False)
with TestClient(app) as client:  # the lifespan's end flushes the batch queue
    assert client.get("/ping").status_code == 200
print("after shutdown")
"""


def test_one_setting_turns_tracing_on_and_shutdown_flushes(subprocess_env: dict[str, str]) -> None:
    import json
    import subprocess
    import sys

    env = dict(subprocess_env, SUREFOOT_TRACING="true", SUREFOOT_TRACING_EXPORTER="console",
               OTEL_BSP_SCHEDULE_DELAY="60000")  # nothing leaves before shutdown but the flush
    out = subprocess.run([sys.executable, "-c", INSTALL_APP], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    before, _, _ = out.stdout.partition("after shutdown")
    spans, current = [], None  # the console exporter's pretty JSON, between log lines
    for line in before.splitlines():
        if line == "{":
            current = [line]
        elif current is not None:
            current.append(line)
            if line == "}":
                spans.append(json.loads("\n".join(current)))
                current = None
    (server,) = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert server["name"] == "GET /ping" and server["attributes"]["http.response.status_code"] == 200
