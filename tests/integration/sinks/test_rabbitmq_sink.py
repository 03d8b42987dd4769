"""RabbitMQSink against the local RabbitMQ."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from surefoot.errors import ConfigurationError
from surefoot.outbox import Event, SinkError
from surefoot.outbox.sinks import RabbitMQSink

from tests.integration.sinks._helpers import assert_event_headers, make_event

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(60)]


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[object]:
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


@pytest.fixture
async def exchange(channel, unique: str) -> AsyncIterator[str]:
    """An exchange name for this test; deleted afterwards (the sink declares it)."""
    name = f"sf.{unique}"
    try:
        yield name
    finally:
        await channel.exchange_delete(name)


async def bound_queue(channel, exchange: str, binding: str = "#"):
    import aio_pika

    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue("", exclusive=True)
    await queue.bind(ex, binding)
    return queue


async def drain(queue, count: int) -> list:
    messages = []
    for _ in range(count):
        message = await queue.get(timeout=5)
        await message.ack()
        messages.append(message)
    assert await queue.get(fail=False) is None
    return messages


async def test_events_are_published_persistent_with_properties_and_headers(amqp_url, channel, exchange):
    queue = await bound_queue(channel, exchange)
    events = [make_event("call.detected"), make_event("sms.sent", correlation_id=None, payload={"n": 2})]
    async with RabbitMQSink(amqp_url, exchange=exchange) as sink:
        assert await sink.send_many(events) == [None, None]
    messages = await drain(queue, 2)
    for message, event in zip(messages, events, strict=True):
        assert message.body == event.to_json()
        assert Event.from_envelope(message.body).event_id == event.event_id
        assert message.routing_key == event.event_name
        assert message.message_id == event.event_id
        assert message.type == event.event_name
        assert message.correlation_id == event.correlation_id
        assert message.content_type == "application/json"
        assert message.delivery_mode.value == 2
        stamp = message.timestamp if message.timestamp.tzinfo else message.timestamp.replace(tzinfo=dt.UTC)
        assert int(stamp.timestamp()) == int(event.occurred_at.timestamp())
        headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in message.headers.items()}
        if event.correlation_id is None:
            assert "correlation_id" not in headers
            headers["correlation_id"] = None
        assert_event_headers(headers, event, content_type=False)


async def test_unroutable_event_fails_alone(amqp_url, channel, exchange):
    queue = await bound_queue(channel, exchange, "bound.#")
    events = [make_event("bound.a"), make_event("nobody.listens"), make_event("bound.b")]
    async with RabbitMQSink(amqp_url, exchange=exchange) as sink:
        results = await sink.send_many(events)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], SinkError)
    assert "could not route" in str(results[1]) and "NO_ROUTE" in str(results[1])
    assert [m.message_id for m in await drain(queue, 2)] == [events[0].event_id, events[2].event_id]


async def test_batch_keeps_order_and_routing_key_template(amqp_url, channel, exchange):
    queue = await bound_queue(channel, exchange, "t-42.#")
    events = [make_event(f"E{i % 3}", payload={"i": i}) for i in range(40)]
    async with RabbitMQSink(amqp_url, exchange=exchange, routing_key="{tenant_id}.{event_name}") as sink:
        assert await sink.send_many(events) == [None] * 40
    messages = await drain(queue, 40)
    assert [Event.from_envelope(m.body).payload["i"] for m in messages] == list(range(40))
    assert messages[1].routing_key == "t-42.E1"


async def test_default_exchange_routes_to_a_queue_by_name(amqp_url, channel, unique):
    queue = await channel.declare_queue(f"sfq.{unique}", exclusive=True)
    async with RabbitMQSink(amqp_url, exchange="", routing_key=f"sfq.{unique}") as sink:
        event = make_event()
        assert await sink.send_many([event]) == [None]
    [message] = await drain(queue, 1)
    assert message.message_id == event.event_id


async def test_missing_exchange_without_declare_fails_open(amqp_url, unique):
    sink = RabbitMQSink(amqp_url, exchange=f"sf.missing.{unique}", declare_exchange=False, connect_timeout=3)
    with pytest.raises(SinkError, match="cannot set up exchange"):
        await sink.open()
    results = await sink.send_many([make_event(), make_event()])
    assert all(isinstance(r, SinkError) for r in results)
    await sink.close()


async def test_broker_down_gives_an_error_per_event(closed_port):
    sink = RabbitMQSink(f"amqp://guest:guest@127.0.0.1:{closed_port}/", connect_timeout=1)
    results = await sink.send_many([make_event(), make_event()])
    assert all(isinstance(r, SinkError) and "cannot reach RabbitMQ" in str(r) for r in results)
    await sink.close()
    await sink.close()


async def test_close_is_idempotent_and_a_closed_sink_refuses(amqp_url, channel, exchange):
    queue = await bound_queue(channel, exchange)
    sink = RabbitMQSink(amqp_url, exchange=exchange)
    assert await sink.send_many([make_event()]) == [None]
    await sink.close()
    await sink.close()
    [result] = await sink.send_many([make_event()])
    assert isinstance(result, SinkError) and "closed" in str(result)
    await drain(queue, 1)


def test_configuration_errors():
    with pytest.raises(ConfigurationError, match="amqp://"):
        RabbitMQSink("http://localhost")
    with pytest.raises(ConfigurationError, match="exchange_type"):
        RabbitMQSink(exchange_type="x-delayed")
    with pytest.raises(ConfigurationError, match="routing key"):
        RabbitMQSink(routing_key="x" * 300)


async def test_broker_nack_fails_the_event(amqp_url, channel, exchange):
    import aio_pika

    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    # a full queue with reject-publish makes the broker nack further messages
    queue = await channel.declare_queue(
        "", exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    await queue.bind(ex, "#")
    async with RabbitMQSink(amqp_url, exchange=exchange) as sink:
        assert await sink.send_many([make_event("first")]) == [None]
        [refused] = await sink.send_many([make_event("second")])
    assert isinstance(refused, SinkError) and "nack" in str(refused)
    await drain(queue, 1)
