"""surefoot.testing.InMemoryOutbox and drain()."""

from __future__ import annotations

import pytest

from surefoot import context, outbox
from surefoot.outbox import EventSchemaError, Router, SinkDisabled
from surefoot.testing import InMemoryOutbox, adrain, drain


def test_add_through_outbox_add_and_drain_sync():
    fake = InMemoryOutbox()
    seen = []

    @outbox.handler("CallDetected")
    def first_sms(event):
        seen.append((event.payload["sid"], context.get_correlation_id(), context.get_causation_id()))
        outbox.add(fake, "SmsQueued", {"to": "+1555"})

    @outbox.handler("SmsQueued")
    async def queued(event):
        seen.append(("sms", context.get_correlation_id(), context.get_causation_id()))

    with context.bound(correlation_id="c-1"):
        ev = outbox.add(fake, "CallDetected", {"sid": "CA1"}, key="CA1")
    assert fake.names() == ["CallDetected"]
    result = drain(fake)
    assert [e.event_name for e in result.delivered] == ["CallDetected", "SmsQueued"]
    sms = fake.of("SmsQueued")[0]
    assert seen == [("CA1", "c-1", ev.event_id), ("sms", "c-1", sms.event_id)]
    assert sms.causation_id == ev.event_id and sms.correlation_id == "c-1"
    assert fake.pending == []


def test_validation_is_the_same_as_the_real_add():
    outbox.register_event("A", {"type": "object", "required": ["n"]})
    fake = InMemoryOutbox()
    with pytest.raises(EventSchemaError):
        fake.add("A", {})


async def test_failures_are_retried_then_dead_lettered_and_raised():
    fake = InMemoryOutbox(max_attempts=2)
    router = Router()
    calls = []

    async def boom(event):
        calls.append(event.attempts)
        raise ValueError("nope")

    router.add_handler("A", boom)
    router.add_handler("Gone", lambda e: (_ for _ in ()).throw(SinkDisabled("410")))
    fake.add("A", {})
    fake.add("Gone", {})
    result = await adrain(fake, router=router, raise_errors=False)
    assert calls == [0, 1]
    assert [e.event_name for e in result.dead_lettered] == ["Gone", "A"]
    fake.add("A", {})
    with pytest.raises(ValueError, match="nope"):
        await adrain(fake, router=router)


def test_drain_inside_a_loop_says_what_to_do():
    import asyncio

    async def inner():
        drain(InMemoryOutbox())

    with pytest.raises(RuntimeError, match="adrain"):
        asyncio.run(inner())


def test_emit_writes_into_the_in_memory_outbox_and_a_memory_store(registry):
    """Code under test that emits best-effort events can be given the fake as its connection."""
    outbox.register_event("Strict", {"type": "object", "required": ["id"]})
    fake = InMemoryOutbox()
    store = outbox.MemoryStore()
    seen = []

    @outbox.handler("Strict")
    def handle(event):
        seen.append(event.payload["id"])

    for target in (fake, store):
        event = outbox.emit(target, "Strict", {"id": 1}, registry=registry)
        assert event is not None and event.event_name == "Strict"
        assert outbox.emit(target, "Strict", {}, registry=registry) is None  # refused, counted, never raised
    assert fake.names() == ["Strict"] and len(store.pending) == 1
    assert registry.get_sample_value("events_emit_failures_total", {"event_name": "Strict"}) == 2
    assert [e.payload for e in drain(fake).delivered] == [{"id": 1}]
    assert drain(store) == 1 and seen == [1, 1]
