"""Dispatcher behaviour on real SQLite and PostgreSQL, in virtual time (FakeClock)."""

from __future__ import annotations

import random
import time

import pytest
import sqlalchemy as sa

from surefoot import context, outbox
from surefoot.outbox import (
    Dispatcher,
    RetryLater,
    SinkDisabled,
    _store,
    dead_letters_table,
    events_table,
)
from surefoot.testing import FakeClock


@pytest.fixture
def clock():
    # a little ahead of the real clock: rows written during the test are due at once
    return FakeClock(start=time.time() + 5)


def _add(engine, *specs):
    with engine.begin() as conn:
        return [outbox.add(conn, name, payload, **kw) for name, payload, kw in specs]


def _count(engine, table, where=None):
    with engine.connect() as conn:
        q = sa.select(sa.func.count()).select_from(table)
        if where is not None:
            q = q.where(where)
        return conn.execute(q).scalar_one()


def _dispatcher(engine, clock, registry, **kw):
    kw.setdefault("listen", False)
    return Dispatcher(engine, clock=clock, rng=random.Random(7), registry=registry, **kw)


async def test_delivers_with_context_and_metrics(engine, clock, registry):
    seen = []

    async def on_call(event):
        seen.append((event.payload["n"], context.get_correlation_id(), context.get_causation_id(), event.attempts))

    with context.bound(correlation_id="corr-9"):
        events = _add(engine, *[("CallDetected", {"n": i}, {}) for i in range(5)])
    d = _dispatcher(engine, clock, registry, handlers={"CallDetected": on_call})
    assert await d.drain() == 5
    assert seen == [(i, "corr-9", events[i].event_id, 0) for i in range(5)]
    assert _count(engine, events_table, events_table.c.dispatched_at.is_(None)) == 0
    assert registry.get_sample_value("outbox_dispatch_attempts_total", {"event_name": "CallDetected"}) == 5
    assert registry.get_sample_value(
        "outbox_dispatch_duration_seconds_count", {"event_name": "CallDetected", "sink": "handler:test_delivers_with_context_and_metrics.<locals>.on_call"}
    ) == 5
    stats = await d.refresh_stats()
    assert stats.pending == 0
    assert registry.get_sample_value("outbox_pending_events") == 0


async def test_sync_handler_runs_in_a_thread(engine, clock, registry):
    import threading

    threads = []
    _add(engine, ("A", {}, {}))
    d = _dispatcher(engine, clock, registry, handlers={"A": lambda e: threads.append(threading.get_ident())})
    assert await d.drain() == 1
    assert threads and threads[0] != threading.get_ident()


async def test_failure_backs_off_then_dead_letters_then_requeue(engine, clock, registry):
    calls = {"poison": 0, "good": 0}

    async def handle(event):
        calls[event.payload["kind"]] += 1
        if event.payload["kind"] == "poison":
            raise ValueError("boom")

    _add(engine, ("A", {"kind": "poison"}, {}), *[("A", {"kind": "good"}, {}) for _ in range(3)])
    d = _dispatcher(engine, clock, registry, handlers={"A": handle}, max_attempts=3)
    assert await d.drain() == 4
    assert calls == {"poison": 1, "good": 3}
    with engine.connect() as conn:
        row = conn.execute(sa.select(events_table).where(events_table.c.dispatched_at.is_(None))).mappings().one()
    assert row["attempts"] == 1 and row["last_error"] == "ValueError: boom"
    # not due yet: drain does nothing until the backoff delay has passed
    assert await d.drain() == 0
    clock.advance(10)  # FullJitter(base=1) after one failure waits at most 1 s
    assert await d.drain() == 1
    clock.advance(10)
    assert await d.drain() == 1
    assert calls["poison"] == 3
    assert _count(engine, events_table, events_table.c.dispatched_at.is_(None)) == 0
    with engine.connect() as conn:
        dl = conn.execute(sa.select(dead_letters_table)).mappings().one()
    assert dl["attempts"] == 3 and dl["payload"] == {"kind": "poison"} and "boom" in dl["last_error"]
    assert registry.get_sample_value("outbox_dead_letters_total", {"event_name": "A"}) == 1
    assert registry.get_sample_value("outbox_dispatch_failures_total", {"event_name": "A"}) == 3
    with engine.begin() as conn:
        assert _store.requeue_dead(conn, now=d._now()) == 1
    assert _count(engine, dead_letters_table) == 0
    calls["poison"] = 0
    assert await d.drain() == 1 and calls["poison"] == 1


async def test_retry_later_and_sink_disabled(engine, clock, registry):
    async def handle(event):
        if event.payload["x"] == "later":
            raise RetryLater("429", retry_after=120)
        raise SinkDisabled("410 Gone")

    _add(engine, ("A", {"x": "later"}, {}), ("A", {"x": "gone"}, {}))
    d = _dispatcher(engine, clock, registry, handlers={"A": handle}, max_attempts=5)
    assert await d.drain() == 2
    assert _count(engine, dead_letters_table) == 1  # 410: at once
    clock.advance(119)
    assert await d.drain() == 0
    clock.advance(2)
    assert await d.drain() == 1


async def test_ordering_per_key(engine, clock, registry):
    order = []

    async def handle(event):
        order.append((event.key, event.payload["n"]))
        if event.key == "k1" and event.payload["n"] == 1 and event.attempts == 0:
            raise ValueError("first attempt fails")

    _add(engine, *[("A", {"n": i}, {"key": f"k{i % 2}"}) for i in range(6)], ("A", {"n": 99}, {}))
    d = _dispatcher(engine, clock, registry, handlers={"A": handle}, batch_size=100)
    # one claim takes only the head of each key (plus unkeyed events)
    assert await d.run_once() == 3
    assert sorted(order, key=str) == sorted([("k0", 0), ("k1", 1), (None, 99)], key=str)
    await d.drain()
    k0 = [n for k, n in order if k == "k0"]
    k1 = [n for k, n in order if k == "k1"]
    assert k0 == [0, 2, 4]
    # k1's head failed: k1 waits for it (strict order), k0 went on
    assert k1 == [1]
    clock.advance(5)
    await d.drain()
    k1 = [n for k, n in order if k == "k1"]
    assert k1 == [1, 1, 3, 5]


async def test_kill_switch_and_routes_filter_claims(engine, clock, registry):
    got = []
    _add(engine, ("SendSms", {}, {}), ("Other", {}, {}), ("Unrouted", {}, {}))
    d = _dispatcher(
        engine, clock, registry,
        handlers={"SendSms": lambda e: got.append(e.event_name), "Other": lambda e: got.append(e.event_name)},
        paused=["Send*"],
    )
    assert await d.drain() == 1 and got == ["Other"]
    d.resume("Send*")
    assert await d.drain() == 1 and got == ["Other", "SendSms"]
    d.pause("SendSms")
    _add(engine, ("SendSms", {}, {}))
    assert await d.drain() == 0
    # the unrouted event stays pending (visible in lag), never silently dropped
    assert _count(engine, events_table, events_table.c.dispatched_at.is_(None)) == 2


async def test_expired_lease_is_reclaimed_and_stale_ack_refused(engine, clock, registry):
    _add(engine, ("A", {}, {}))
    d = _dispatcher(engine, clock, registry, handlers={"A": lambda e: None}, lease_seconds=2)
    store = d._store
    with engine.begin() as conn:
        first = store.claim(conn, now=d._now(), lease_seconds=2, limit=10, token="t1")
    assert len(first) == 1
    with engine.begin() as conn:
        assert store.claim(conn, now=d._now(), lease_seconds=2, limit=10, token="t2") == []
    clock.advance(2.5)
    with engine.begin() as conn:
        second = store.claim(conn, now=d._now(), lease_seconds=2, limit=10, token="t2")
        assert [c.event.attempts for c in second] == [1]
    with engine.begin() as conn:
        assert store.ack(conn, [first[0].event.outbox_id], token="t1", now=d._now()) == 0
        assert store.ack(conn, [second[0].event.outbox_id], token="t2", now=d._now()) == 1


async def test_release_on_shutdown_gives_events_back_now(engine, clock, registry):
    import asyncio

    started = asyncio.Event()

    async def slow(event):
        started.set()
        await asyncio.sleep(3600)

    _add(engine, ("A", {}, {}))
    d = _dispatcher(engine, FakeClock(start=time.time()), registry, handlers={"A": slow}, poll_interval=0.01)
    await d.start()
    await asyncio.wait_for(started.wait(), 10)
    await d.stop(timeout=0)
    with engine.connect() as conn:
        row = conn.execute(sa.select(events_table)).mappings().one()
    assert row["claim_token"] is None and row["attempts"] == 0 and row["dispatched_at"] is None


async def test_retention_deletes_old_dispatched_in_batches(engine, clock, registry):
    _add(engine, *[("A", {}, {}) for _ in range(7)])
    d = _dispatcher(engine, clock, registry, handlers={"A": lambda e: None})
    d.settings = d.settings.model_copy(update={"retention_batch_size": 3})
    assert await d.drain() == 7
    _add(engine, ("A", {}, {}))  # pending: never deleted
    assert await d.apply_retention() == 0
    clock.advance(31 * 86400)
    assert await d.apply_retention() == 7
    assert _count(engine, events_table) == 1


async def test_unrouted_destination_and_handler_timeout(engine, clock, registry):
    import asyncio

    async def hang(event):
        await asyncio.sleep(3600)

    _add(engine, ("A", {}, {}))
    d = _dispatcher(engine, clock, registry, handlers={"A": hang}, handler_timeout=0.05)
    assert await d.drain() == 1
    with engine.connect() as conn:
        row = conn.execute(sa.select(events_table)).mappings().one()
    assert "handler_timeout" in row["last_error"]


def test_testing_drain_against_a_real_table(engine):
    from surefoot.testing import drain

    got = []
    _add(engine, ("A", {"n": 1}, {}), ("A", {"n": 2}, {}))
    assert drain(engine, handlers={"A": lambda e: got.append(e.payload["n"])}) == 2
    assert got == [1, 2]
    assert _count(engine, events_table, events_table.c.dispatched_at.is_(None)) == 0


class _RecordingSink:
    """A Sink with per-position outcomes, as broker sinks report them."""

    name = "recording"

    def __init__(self, outcomes):
        self.outcomes = outcomes
        self.batches = []
        self.opened = self.closed = 0

    async def open(self):
        self.opened += 1

    async def close(self):
        self.closed += 1

    async def send_many(self, events):
        self.batches.append([e.payload["n"] for e in events])
        return [self.outcomes.get(e.payload["n"]) for e in events]


async def test_sink_results_per_position_with_an_owned_async_engine(outbox_url, clock, registry):
    engine = sa.create_engine(outbox_url)
    _add(engine, *[("sms.sent", {"n": i}, {}) for i in range(4)], ("Other", {"n": 9}, {}))
    sink = _RecordingSink({1: ValueError("broker said no"), 2: RetryLater("slow down", retry_after=30),
                           3: SinkDisabled("410")})
    d = Dispatcher(outbox_url, sinks={"sms.*": sink}, handlers={"Other": lambda e: None}, clock=clock,
                   rng=random.Random(1), registry=registry, listen=False)
    assert await d.drain() == 5
    assert sink.batches == [[0, 1, 2, 3]] and sink.opened == 1
    with engine.connect() as conn:
        rows = {r["payload"]["n"]: r for r in conn.execute(sa.select(events_table)).mappings()}
        dead = conn.execute(sa.select(dead_letters_table)).mappings().all()
    assert rows[0]["dispatched_at"] is not None and rows[9]["dispatched_at"] is not None
    assert rows[1]["last_error"] == "ValueError: broker said no"
    assert [d_["payload"]["n"] for d_ in dead] == [3]
    assert registry.get_sample_value("outbox_dispatch_duration_seconds_count", {"event_name": "sms.sent", "sink": "recording"}) == 1
    clock.advance(29)
    sink.outcomes = {}
    assert await d.drain() == 1  # n=1 (backoff <= 1 s); n=2 waits for its Retry-After
    clock.advance(2)
    assert await d.drain() == 1
    assert sink.batches[1:] == [[1], [2]]
    await d.stop()
    assert sink.closed == 1
    engine.dispose()


async def test_sync_callable_returning_a_coroutine_is_awaited(engine, clock, registry):
    got = []

    async def real(event):
        got.append(event.event_name)

    _add(engine, ("A", {}, {}))
    d = _dispatcher(engine, clock, registry, handlers={"A": lambda e: real(e)})
    assert await d.drain() == 1 and got == ["A"]


async def test_graceful_stop_finishes_the_batch_in_flight(engine, registry):
    import asyncio

    started, release = asyncio.Event(), asyncio.Event()

    async def slow(event):
        started.set()
        await release.wait()

    _add(engine, ("A", {}, {}))
    d = _dispatcher(engine, FakeClock(start=time.time() + 5), registry, handlers={"A": slow}, poll_interval=0.01)
    await d.start()
    await asyncio.wait_for(started.wait(), 10)
    stopping = asyncio.ensure_future(d.stop(timeout=10))
    await asyncio.sleep(0)  # stop() has begun: no new claims from here on
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert d.delivered == 1
    assert _count(engine, events_table, events_table.c.dispatched_at.is_(None)) == 0


async def test_handler_runs_in_an_outbox_dispatch_span_continuing_the_trace(engine, clock, registry):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen = []

    async def handle(event):
        seen.append(trace.get_current_span().get_span_context().trace_id)
        if event.payload.get("fail"):
            raise ValueError("nope")

    with provider.get_tracer("t").start_as_current_span("webhook") as producer:
        _add(engine, ("A", {}, {}), ("A", {"fail": True}, {}))
    trace_id = producer.get_span_context().trace_id
    import unittest.mock

    with unittest.mock.patch.object(trace, "get_tracer", provider.get_tracer), \
            unittest.mock.patch.object(trace, "get_tracer_provider", lambda: provider):
        d = _dispatcher(engine, clock, registry, handlers={"A": handle})
        assert await d.drain() == 2
    spans = [s for s in exporter.get_finished_spans() if s.name == "outbox.dispatch"]
    assert len(spans) == 2 and seen == [trace_id, trace_id]
    assert all(s.context.trace_id == trace_id and s.parent.span_id == producer.get_span_context().span_id for s in spans)
    assert sorted(s.status.status_code.name for s in spans) == ["ERROR", "UNSET"]


class _DownAtStartSink(_RecordingSink):
    """A broker that refuses the first connection, then answers (sinks reconnect lazily)."""

    async def open(self):
        self.opened += 1
        if self.opened == 1:
            raise outbox.SinkError("connection refused")

    async def send_many(self, events):
        if self.opened == 1:
            return [outbox.SinkError("not connected") for _ in events]
        return await super().send_many(events)


async def test_a_sink_down_at_start_does_not_stop_the_dispatcher(engine, clock, registry):
    _add(engine, ("sms.sent", {"n": 1}, {}))
    sink = _DownAtStartSink({})
    d = _dispatcher(engine, clock, registry, sinks={"sms.*": sink})
    from surefoot.testing import capture_logs

    with capture_logs() as logs:
        assert await d.drain() == 1  # attempted, failed, kept for retry: nothing lost
    assert any(line["event"] == "outbox_sink_open_failed" for line in logs)
    assert _count(engine, events_table, events_table.c.dispatched_at.is_(None)) == 1
    await sink.open()  # the broker is back; the sink's next batch goes through
    clock.advance(60)
    assert await d.drain() == 1
    assert sink.batches == [[1]]
    assert _count(engine, events_table, events_table.c.dispatched_at.is_(None)) == 0
