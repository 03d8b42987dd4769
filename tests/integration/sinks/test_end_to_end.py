"""outbox.add on SQLite → dispatcher → broker sink → consumed back from the real broker."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import orjson
import pytest
import sqlalchemy as sa

from surefoot import context, outbox
from surefoot.outbox import Dispatcher, dead_letters_table, events_table
from surefoot.testing import FakeClock

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(sqlite_url)
    with eng.begin() as conn:
        outbox.create_tables(conn)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def _fresh_catalogue() -> Iterator[None]:
    outbox.default_catalogue.clear()
    yield
    outbox.default_catalogue.clear()


def write_events(engine: sa.Engine, names: list[str]) -> list[outbox.Event]:
    """Commit one event per name in one business transaction; also roll one back."""
    with context.bound(correlation_id="corr-e2e", tenant_id="t-e2e"):
        with engine.begin() as conn:
            events = [outbox.add(conn, name, {"n": i}, key=f"k{i % 2}") for i, name in enumerate(names)]
        with pytest.raises(RuntimeError), engine.begin() as conn:
            outbox.add(conn, names[0], {"rolled": "back"})
            raise RuntimeError("business failure")
    return events


def dispatcher(engine: sa.Engine, sink, registry) -> Dispatcher:
    # the clock runs a little ahead so that rows written just now are due
    return Dispatcher(
        engine, sinks={"*": sink}, clock=FakeClock(start=time.time() + 5), rng=random.Random(3),
        registry=registry, listen=False,
    )


def pending(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(events_table).where(events_table.c.dispatched_at.is_(None))
        ).scalar_one()


def check_delivered(bodies: list[bytes], events: list[outbox.Event]) -> None:
    got = [orjson.loads(b) for b in bodies]
    assert sorted(e["event_id"] for e in got) == sorted(e.event_id for e in events)
    assert all(e["correlation_id"] == "corr-e2e" and e["tenant_id"] == "t-e2e" for e in got)
    assert not any(e["payload"].get("rolled") for e in got)


@pytest.mark.nats
async def test_outbox_to_nats_jetstream(engine, nats_url, unique, registry):
    import nats

    from surefoot.outbox.sinks import NatsSink

    stream = f"SF_E2E_{unique}"
    sink = NatsSink(nats_url, subject=f"e2e_{unique}.{{event_name}}", stream=stream, ensure_stream=True)
    events = write_events(engine, ["CallDetected", "SmsSent", "CallDetected"])
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        assert await dispatcher(engine, sink, registry).drain() == 3
        await sink.close()
        info = await js.stream_info(stream)
        msgs = [await js.get_msg(stream, seq) for seq in range(1, info.state.last_seq + 1)]
        check_delivered([m.data for m in msgs], events)
        assert {m.headers["Nats-Msg-Id"] for m in msgs} == {e.event_id for e in events}
        assert pending(engine) == 0
        assert registry.get_sample_value(
            "outbox_dispatch_duration_seconds_count", {"event_name": "CallDetected", "sink": "nats"}
        ) == 2
    finally:
        await js.delete_stream(stream)
        await nc.close()


@pytest.mark.redis
async def test_outbox_to_redis_streams(engine, redis_url, unique, registry):
    import redis.asyncio as aioredis

    from surefoot.outbox.sinks import RedisStreamSink

    sink = RedisStreamSink(redis_url, stream=f"sf:e2e:{unique}", dedupe=True, dedupe_prefix=f"sf:e2e:dd:{unique}:")
    events = write_events(engine, ["CallDetected", "SmsSent", "CallDetected"])
    client = aioredis.from_url(redis_url)
    try:
        assert await dispatcher(engine, sink, registry).drain() == 3
        await sink.close()
        entries = await client.xrange(f"sf:e2e:{unique}")
        check_delivered([fields[b"envelope"] for _, fields in entries], events)
        assert pending(engine) == 0
    finally:
        keys = [k async for k in client.scan_iter(match=f"sf:e2e:*{unique}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.mark.rabbitmq
async def test_outbox_to_rabbitmq_unroutable_event_stays_pending(engine, amqp_url, unique, registry):
    import aio_pika

    from surefoot.outbox.sinks import RabbitMQSink

    exchange = f"sf.e2e.{unique}"
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue("", exclusive=True)
    await queue.bind(ex, "Call.#")
    sink = RabbitMQSink(amqp_url, exchange=exchange)
    events = write_events(engine, ["Call.Detected", "Call.Ended", "Nobody.Listens"])
    try:
        d = dispatcher(engine, sink, registry)
        assert await d.drain() == 3  # claimed and attempted; one could not be routed
        await sink.close()
        bodies = []
        for _ in range(2):
            message = await queue.get(timeout=5)
            await message.ack()
            bodies.append(message.body)
        check_delivered(bodies, events[:2])
        # the unroutable event was not lost: it waits for a retry with the reason recorded
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(events_table.c.attempts, events_table.c.last_error).where(
                    events_table.c.dispatched_at.is_(None)
                )
            ).one()
        assert row.attempts == 1 and "could not route" in row.last_error
    finally:
        await channel.exchange_delete(exchange)
        await connection.close()


@pytest.mark.slow
async def test_outbox_to_webhook_gone_is_dead_lettered(engine, registry):
    import base64
    import os

    from surefoot.outbox.sinks import HttpSink

    from tests.integration.sinks._receiver import Receiver

    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    with Receiver([secret]) as receiver:
        sink = HttpSink({"Gone": receiver.url("/gone"), "*": receiver.url("/ok")}, secrets=secret)
        events = write_events(engine, ["CallDetected", "Gone", "SmsSent"])
        assert await dispatcher(engine, sink, registry).drain() == 3
        await sink.close()
        check_delivered([r.body for r in receiver.requests if r.path == "/ok"], [events[0], events[2]])
        assert receiver.rejected == 0
    with engine.connect() as conn:
        dead = conn.execute(sa.select(dead_letters_table)).mappings().all()
    assert len(dead) == 1 and dead[0]["event_id"] == events[1].event_id
    assert pending(engine) == 0
