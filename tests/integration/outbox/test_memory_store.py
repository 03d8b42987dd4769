"""The real dispatcher on the in-memory store behaves like it does on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from surefoot import outbox
from surefoot.outbox import Dispatcher, MemoryStore, OutboxSettings
from surefoot.testing import FakeClock, InMemoryOutbox, adrain


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request, tmp_path):
    """A store and a way to write into it, for each kind of store."""
    if request.param == "memory":
        store = MemoryStore()
        yield store, lambda name, payload, **kw: outbox.add(store, name, payload, **kw)
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_outbox_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        outbox.create_tables(conn)

    def add(name, payload, **kw):
        with engine.begin() as conn:
            return outbox.add(conn, name, payload, **kw)

    yield engine, add
    engine.dispose()


async def test_same_scenario_on_every_store(backend, registry):
    store, add = backend
    clock = FakeClock(start=time.time() + 5)
    delivered, calls = [], []

    async def handle(event):
        calls.append(event.payload["n"])
        if event.payload["n"] == 0 and event.attempts == 0:
            raise ValueError("first attempt fails")
        delivered.append(event.payload["n"])

    add("A", {"n": 0}, key="k")
    add("A", {"n": 1}, key="k")
    add("B", {"n": 2})
    add("Paused", {"n": 3})
    add("Doomed", {"n": 4})

    async def doomed(event):
        raise RuntimeError("always")

    d = Dispatcher(store, clock=clock, rng=random.Random(3), registry=registry, listen=False, max_attempts=2,
                   paused=["Paused"], handlers={"A": handle, "B": handle, "Paused": handle, "Doomed": doomed})
    assert await d.drain() == 3  # A0 (fails), B, Doomed (fails); A1 waits behind its key
    assert delivered == [2]
    clock.advance(10)
    assert await d.drain() == 3  # A0 again, Doomed again (dead), then A1
    assert delivered == [2, 0, 1] and calls == [0, 2, 0, 1]
    stats = await d.refresh_stats()
    assert (stats.pending, stats.dead_letters) == (1, 1)  # the paused event; Doomed
    assert registry.get_sample_value("outbox_dead_letters_total", {"event_name": "Doomed"}) == 1
    d.resume()
    assert await d.drain() == 1 and delivered == [2, 0, 1, 3]
    await d.aclose()


async def test_a_running_dispatcher_on_a_memory_store_is_woken_by_add(registry):
    store = MemoryStore()
    got = asyncio.Event()

    async def handle(event):
        got.set()

    d = Dispatcher(store, registry=registry, poll_interval=30, handlers={"A": handle})
    async with d.running():
        await asyncio.sleep(0.05)
        began = time.monotonic()
        outbox.add(store, "A", {})
        await asyncio.wait_for(got.wait(), 5)
        assert time.monotonic() - began < 1  # not the 30 s poll
    assert store.rows[1].dispatched_at is not None


async def test_in_memory_outbox_runs_the_real_dispatcher():
    import anyio

    fake = InMemoryOutbox(max_attempts=3)
    order = []

    async def handle(event):
        with anyio.move_on_after(0.01):
            await anyio.sleep(1)
        async with asyncio.timeout(1):
            await asyncio.sleep(0)
        if event.payload["n"] == 0 and event.attempts < 2:
            raise ValueError("flaky")
        order.append(event.payload["n"])

    outbox.add(fake, "A", {"n": 0}, key="call-1")
    outbox.add(fake, "A", {"n": 1}, key="call-1")  # must wait for n=0, as in production
    result = await adrain(fake, handlers={"A": handle}, raise_errors=False)
    assert order == [0, 1]
    assert [e.payload["n"] for e in result.delivered] == [0, 1]
    assert [type(exc).__name__ for _, exc in result.failed] == ["ValueError", "ValueError"]
    assert fake.pending == [] and fake.dead_letters == []


def test_add_writes_into_any_event_store():
    class Recorder:  # the public protocol outbox.add() writes through
        def __init__(self):
            self.events = []

        def add_event(self, event, *, available_at=None):
            self.events.append((event, available_at))
            return event

    rec = Recorder()
    event = outbox.add(rec, "A", {"n": 1}, key="k", available_at=1_900_000_000)
    assert rec.events[0][0] is event and event.key == "k"
    assert rec.events[0][1].timestamp() == 1_900_000_000


def test_memory_store_settings_are_the_dispatchers():
    store = MemoryStore()
    d = Dispatcher(store, settings=OutboxSettings(batch_size=2), handlers={"A": lambda e: None}, listen=False)
    for i in range(5):
        outbox.add(store, "A", {"n": i})
    assert asyncio.run(d.drain(max_batches=1)) == 2
    assert [e.payload["n"] for e in store.pending] == [2, 3, 4]


def test_drain_raises_a_handler_timeout_like_any_failure():
    from surefoot.testing import drain

    fake = InMemoryOutbox(max_attempts=1)

    async def hangs(event):
        await asyncio.sleep(3600)

    outbox.add(fake, "A", {})
    with pytest.raises(TimeoutError, match="handler_timeout"):
        drain(fake, handlers={"A": hangs}, handler_timeout=0.1)
    assert [e.event_name for e, _ in fake.dead_letters] == ["A"]


def _scenario(events, failures, rounds, store_factory):
    """Drain ``events`` over ``rounds`` (clock advanced between them); returns what happened."""
    clock = FakeClock(start=time.time() + 5)
    store, add, cleanup = store_factory()
    seen: dict[int, int] = {}
    order: list[int] = []

    async def handle(event):
        n = event.payload["n"]
        seen[n] = seen.get(n, 0) + 1
        if seen[n] <= failures.get(n, 0):
            raise ValueError(f"fail {n}")
        order.append(n)

    for n, (name, key) in enumerate(events):
        add(name, {"n": n}, key=key)

    async def run():
        d = Dispatcher(store, clock=clock, rng=random.Random(1), registry=CollectorRegistry(), listen=False,
                       max_attempts=3, batch_size=4, paused=["P"], handlers={"A": handle, "B": handle, "P": handle})
        counts = []
        for _ in range(rounds):
            counts.append(await d.drain())
            clock.advance(3600)
        stats = await d.refresh_stats()
        await d.aclose()
        return counts, stats.pending, stats.dead_letters

    try:
        counts, pending, dead = asyncio.run(run())
    finally:
        cleanup()
    return order, counts, pending, dead



@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(st.tuples(st.sampled_from(["A", "B", "P"]), st.sampled_from([None, "k1", "k2"])),
                    min_size=1, max_size=12),
    failures=st.dictionaries(st.integers(0, 11), st.integers(1, 4), max_size=5),
    rounds=st.integers(1, 4),
)
def test_memory_store_matches_sqlite(tmp_path_factory, events, failures, rounds):
    def memory():
        store = MemoryStore()
        return store, lambda name, payload, **kw: outbox.add(store, name, payload, **kw), lambda: None

    def sqlite():
        url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.sqlite3'}"
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            outbox.create_tables(conn)

        def add(name, payload, **kw):
            with engine.begin() as conn:
                outbox.add(conn, name, payload, **kw)

        return engine, add, engine.dispose

    assert _scenario(events, failures, rounds, memory) == _scenario(events, failures, rounds, sqlite)


async def test_lag_and_pending_gauges_follow_the_oldest_pending_event(registry):
    """``outbox_dispatch_lag_seconds`` is the age of the oldest pending event on the store's clock;
    ``outbox_pending_events`` counts them and ``worker_queue_depth`` mirrors it."""
    clock = FakeClock(start=1_800_000_000)
    store = MemoryStore(clock=clock)
    d = Dispatcher(store, registry=registry, clock=clock, handlers={"A": lambda e: None}, listen=False)

    def gauges():
        return tuple(
            registry.get_sample_value(name)
            for name in ("outbox_dispatch_lag_seconds", "outbox_pending_events", "worker_queue_depth")
        )

    try:
        await d.refresh_stats()
        assert gauges() == (0.0, 0.0, 0.0)
        outbox.add(store, "A", {"n": 1})
        clock.advance(40)
        outbox.add(store, "Unrouted", {"n": 2})
        clock.advance(2)
        await d.refresh_stats()
        assert gauges() == (42.0, 2.0, 2.0)
        assert await d.drain() == 1  # "A" delivered; the unrouted event stays pending and ages
        clock.advance(8)
        await d.refresh_stats()
        assert gauges() == (10.0, 1.0, 1.0)
    finally:
        await d.aclose()
