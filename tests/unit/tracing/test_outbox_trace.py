"""A trace through the outbox with the in-memory store: the writer's head decision, the
tail keep of a failed delivery, and a stored trace context that is not valid."""

from __future__ import annotations

from typing import Any

import pytest

from surefoot import outbox, tracing
from surefoot.testing import InMemoryOutbox, adrain

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _memory(registry: Any, ratio: float) -> Any:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    tracing.setup_tracing(exporter=mem, set_global=False, sample_ratio=ratio, registry=registry)
    return mem


def _sampled_flag(traceparent: str) -> bool:
    return bool(int(traceparent.rsplit("-", 1)[1], 16) & 1)


def _named(mem: Any, name: str) -> list[Any]:
    return [s for s in mem.get_finished_spans() if s.name == name]


async def test_a_sampled_writer_is_traced_by_a_worker_that_samples_nothing(registry: Any) -> None:
    fake = InMemoryOutbox()
    writer_spans = _memory(registry, 1.0)
    with tracing.span("checkout") as checkout:
        outbox.add(fake, "OrderPlaced", {"order": 1})
    (event,) = fake.events
    assert _sampled_flag(event.headers["traceparent"])
    assert format(checkout.get_span_context().trace_id, "032x") in event.headers["traceparent"]

    worker_spans = _memory(registry, 0.0)  # the dispatcher's process samples no new trace
    inside: list[tuple[str, str] | None] = []

    async def confirm(event: Any) -> None:
        with tracing.span("order.confirm"):
            inside.append(tracing.current_trace_ids())

    await adrain(fake, handlers={"OrderPlaced": confirm})
    (dispatch,) = _named(worker_spans, "outbox.dispatch")
    (step,) = _named(worker_spans, "order.confirm")
    assert dispatch.context.trace_id == checkout.get_span_context().trace_id
    assert dispatch.parent.span_id == checkout.get_span_context().span_id and dispatch.parent.is_remote
    assert step.parent.span_id == dispatch.context.span_id
    assert inside == [(f"{step.context.trace_id:032x}", f"{step.context.span_id:016x}")]
    assert _named(writer_spans, "checkout")


async def test_a_failed_delivery_of_an_unsampled_trace_is_kept(registry: Any) -> None:
    fake = InMemoryOutbox()
    mem = _memory(registry, 0.0)
    with tracing.span("checkout"):
        outbox.add(fake, "OrderPlaced", {"order": 2})
    (event,) = fake.events
    assert not _sampled_flag(event.headers["traceparent"])  # and says so downstream
    calls: list[int] = []

    async def flaky(event: Any) -> None:
        calls.append(event.event_id)
        if len(calls) == 1:
            raise ConnectionError("provider unreachable")

    await adrain(fake, handlers={"OrderPlaced": flaky}, raise_errors=False)
    assert len(calls) == 2
    # the failed attempt keeps its trace, so the retry that ends it is exported with it
    failed, retried = sorted(_named(mem, "outbox.dispatch"), key=lambda s: s.attributes["attempts"])
    assert (failed.attributes["attempts"], retried.attributes["attempts"]) == (1, 2)
    assert failed.attributes["error.type"] == "ConnectionError"
    assert failed.status.status_code.name == "ERROR" and retried.status.status_code.name == "UNSET"
    assert failed.attributes["surefoot.tail_kept"] is True and retried.attributes["surefoot.tail_kept"] is True
    assert failed.context.trace_id == retried.context.trace_id
    assert not _named(mem, "checkout")  # the writer's part ended healthy in its own process


@pytest.mark.parametrize(
    "traceparent",
    ["00-not-a-trace", f"00-{TRACE}-{'0' * 16}-01", "00-" + "f" * 4000, ""],
    ids=["garbage", "zero-span", "oversized", "empty"],
)
async def test_a_stored_traceparent_that_is_not_valid_starts_a_new_trace(registry: Any, traceparent: str) -> None:
    fake = InMemoryOutbox()
    mem = _memory(registry, 1.0)
    outbox.add(fake, "OrderPlaced", {"order": 3}, headers={"traceparent": traceparent})
    handled: list[str] = []

    async def confirm(event: Any) -> None:
        handled.append(event.event_id)

    result = await adrain(fake, handlers={"OrderPlaced": confirm})
    assert handled and len(result.delivered) == 1
    (dispatch,) = _named(mem, "outbox.dispatch")
    assert dispatch.parent is None
    assert format(dispatch.context.trace_id, "032x") != TRACE
