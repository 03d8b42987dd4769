"""The trace context written with an event reaches a real broker's message headers."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

pytest.importorskip("opentelemetry.sdk.trace")

from surefoot import outbox, tracing  # noqa: E402
from surefoot.outbox import Dispatcher  # noqa: E402
from surefoot.testing import FakeClock  # noqa: E402

pytestmark = [pytest.mark.timeout(90), pytest.mark.redis]


@pytest.fixture
def traced() -> Iterator[Any]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    tracing.setup_tracing(exporter=mem, set_global=False, sample_ratio=1.0)
    yield mem
    tracing.reset_tracing()


async def test_redis_stream_entries_carry_the_writers_traceparent(
    sqlite_url: str, redis_url: str, unique: str, registry: Any, traced: Any
) -> None:
    import redis.asyncio as aioredis

    from surefoot.outbox.sinks import RedisStreamSink

    engine = sa.create_engine(sqlite_url)
    outbox.create_tables(engine)
    with tracing.span("webhook.twilio.sms_inbound") as writer, engine.begin() as conn:
        event = outbox.add(conn, "SmsReceived", {"n": 1})
    engine.dispose()
    stream = f"sf:trace:{unique}"
    sink = RedisStreamSink(redis_url, stream=stream)
    client = aioredis.from_url(redis_url)
    try:
        dispatcher = Dispatcher(sqlite_url, sinks={"*": sink}, clock=FakeClock(start=time.time() + 5),
                                rng=random.Random(3), registry=registry, listen=False)
        try:
            assert await dispatcher.drain() == 1
        finally:
            await dispatcher._close()
            await dispatcher._db.dispose()
        await sink.close()
        ((_, fields),) = await client.xrange(stream)
    finally:
        await client.delete(stream)
        await client.aclose()
    ctx = writer.get_span_context()
    _, trace_id, span_id, flags = fields[b"traceparent"].decode().split("-")
    assert (trace_id, span_id) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 1
    assert fields[b"event_id"].decode() == event.event_id
    # a consumer continues the trace with OpenTelemetry's propagator
    from opentelemetry import propagate, trace

    carried = propagate.extract({k.decode(): v.decode() for k, v in fields.items()})
    assert trace.get_current_span(carried).get_span_context().trace_id == ctx.trace_id
    (recorded,) = [s for s in traced.get_finished_spans() if s.name == "webhook.twilio.sms_inbound"]
    assert recorded.attributes["event_id"] == event.event_id


@pytest.mark.nats
async def test_nats_messages_carry_the_writers_traceparent(nats_url: str, unique: str, traced: Any) -> None:
    import nats

    from surefoot.outbox.sinks import NatsSink
    from surefoot.testing import InMemoryOutbox, adrain

    fake = InMemoryOutbox()
    with tracing.span("order.place") as writer:
        outbox.add(fake, "OrderPlaced", {"n": 1})
    subject = f"sftrace.{unique}"
    nc = await nats.connect(nats_url)
    sub = await nc.subscribe(subject)
    stream = f"SFTRACE_{unique}"
    sink = NatsSink(nats_url, subject=subject, stream=stream, ensure_stream=True)
    try:
        await adrain(fake, sinks={"*": sink})
        message = await sub.next_msg(timeout=10)
    finally:
        await sink.close()
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()
    ctx = writer.get_span_context()
    _, trace_id, span_id, _ = message.headers["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")


@pytest.mark.rabbitmq
async def test_rabbitmq_messages_carry_the_writers_traceparent(amqp_url: str, unique: str, traced: Any) -> None:
    import aio_pika

    from surefoot.outbox.sinks import RabbitMQSink
    from surefoot.testing import InMemoryOutbox, adrain

    fake = InMemoryOutbox()
    with tracing.span("order.place") as writer:
        outbox.add(fake, "OrderPlaced", {"n": 1})
    exchange = f"sftrace-{unique}"
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(declared, routing_key="#")
        sink = RabbitMQSink(amqp_url, exchange=exchange)
        try:
            await adrain(fake, sinks={"*": sink})
        finally:
            await sink.close()
        message = await queue.get(timeout=10)
        await message.ack()
        await declared.delete()
    finally:
        await connection.close()
    ctx = writer.get_span_context()
    traceparent = message.headers["traceparent"]
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode()
    _, trace_id, span_id, _ = traceparent.split("-")
    assert (trace_id, span_id) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
