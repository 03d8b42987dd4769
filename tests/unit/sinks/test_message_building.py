"""How each broker sink turns an event into a message, without a broker."""

from __future__ import annotations

import pytest

from surefoot.errors import ConfigurationError
from surefoot.outbox import Event, SinkError
from surefoot.outbox.sinks import RabbitMQSink
from surefoot.outbox.sinks._nats import _default_stream_subject, _nats_headers


def test_nats_headers_add_the_message_id_for_dedupe():
    event = Event("E", {}, correlation_id="c", headers={"traceparent": "00-a-b-01"})
    headers = _nats_headers(event)
    assert headers["Nats-Msg-Id"] == event.event_id
    assert headers["event_id"] == event.event_id
    assert headers["traceparent"] == "00-a-b-01"


@pytest.mark.parametrize(
    "bad", [{"x-note": "line\r\nInjected: yes"}, {"bad name": "v"}, {"a:b": "v"}, {"": "v"}]
)
def test_nats_headers_refuse_what_would_corrupt_the_frame(bad):
    with pytest.raises(SinkError):
        _nats_headers(Event("E", {}, headers=bad))


def test_default_stream_subjects():
    assert _default_stream_subject("events.{event_name}") == "events.>"
    assert _default_stream_subject("app.events.{tenant_id}.{event_name}") == "app.events.>"
    assert _default_stream_subject("fixed.subject") == "fixed.subject"
    with pytest.raises(ConfigurationError, match="stream_subjects"):
        _default_stream_subject("{event_name}")
    with pytest.raises(ConfigurationError, match="stream_subjects"):
        _default_stream_subject(lambda e: "x")


def test_rabbitmq_message_properties():
    sink = RabbitMQSink(routing_key="{tenant_id}.{event_name}")
    event = Event("CallDetected", {"a": 1}, tenant_id="t1", correlation_id="c1", headers={"traceparent": "tp"})
    routing_key, message = sink._message(event)
    assert routing_key == "t1.CallDetected"
    assert message.body == event.to_json()
    assert message.message_id == event.event_id
    assert message.correlation_id == "c1"
    assert message.type == "CallDetected"
    assert message.content_type == "application/json"
    assert message.delivery_mode.value == 2
    assert message.headers["traceparent"] == "tp"
    assert "content-type" not in message.headers  # it is the content_type property
