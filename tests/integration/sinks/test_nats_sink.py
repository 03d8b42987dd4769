"""NatsSink against the local NATS JetStream server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest

from surefoot.errors import ConfigurationError
from surefoot.outbox import Event, SinkError
from surefoot.outbox.sinks import NatsSink

from tests.integration.sinks._helpers import assert_event_headers, make_event

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[object]:
    import nats

    nc = await nats.connect(nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


@pytest.fixture
async def stream(js, unique: str) -> AsyncIterator[tuple[str, str]]:
    """A JetStream stream of its own: (stream name, subject prefix)."""
    name, prefix = f"SF_{unique}", f"sf_{unique}"
    await js.add_stream(name=name, subjects=[f"{prefix}.>"], duplicate_window=120)
    try:
        yield name, prefix
    finally:
        await js.delete_stream(name)


async def stored(js, stream_name: str) -> list:
    info = await js.stream_info(stream_name)
    return [await js.get_msg(stream_name, seq) for seq in range(info.state.first_seq, info.state.last_seq + 1)] if info.state.messages else []


async def test_events_are_stored_with_body_and_headers(nats_url, js, stream):
    name, prefix = stream
    events = [make_event("CallDetected"), make_event("SmsSent", key="k-2", payload={"n": 2})]
    async with NatsSink(nats_url, subject=f"{prefix}.{{event_name}}", stream=name) as sink:
        assert await sink.send_many(events) == [None, None]
    msgs = await stored(js, name)
    assert [m.subject for m in msgs] == [f"{prefix}.CallDetected", f"{prefix}.SmsSent"]
    for msg, event in zip(msgs, events, strict=True):
        assert msg.data == event.to_json()
        assert Event.from_envelope(msg.data).event_id == event.event_id
        assert_event_headers(msg.headers, event)
        assert msg.headers["Nats-Msg-Id"] == event.event_id


async def test_redelivery_is_stored_once(nats_url, js, stream):
    name, prefix = stream
    first, second = make_event("A"), make_event("B")
    async with NatsSink(nats_url, subject=f"{prefix}.{{event_name}}", stream=name) as sink:
        assert await sink.send_many([first, second]) == [None, None]
        # the dispatcher redelivers after a lost ack: same event ids, also twice in one batch
        assert await sink.send_many([first, first, second]) == [None, None, None]
    msgs = await stored(js, name)
    assert sorted(m.headers["Nats-Msg-Id"] for m in msgs) == sorted([first.event_id, second.event_id])


async def test_batch_keeps_order_per_key(nats_url, js, stream):
    name, prefix = stream
    events = [make_event("E", key=f"k{i % 3}", payload={"i": i}) for i in range(60)]
    async with NatsSink(nats_url, subject=f"{prefix}.{{key}}", stream=name) as sink:
        assert await sink.send_many(events) == [None] * 60
    msgs = await stored(js, name)
    assert [orjson.loads(m.data)["payload"]["i"] for m in msgs] == list(range(60))


async def test_one_bad_event_does_not_sink_the_batch(nats_url, js, stream, unique):
    name, prefix = stream

    def subject(event: Event) -> str:
        # "elsewhere" is captured by no stream; "bad name" is not a valid subject
        return f"elsewhere_{unique}.x" if event.event_name == "Lost" else f"{prefix}.{event.event_name}"

    events = [make_event("Ok1"), make_event("Lost"), make_event("bad name"), make_event("Ok2")]
    async with NatsSink(nats_url, subject=subject) as sink:
        results = await sink.send_many(events)
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], SinkError) and "no JetStream stream" in str(results[1])
    assert isinstance(results[2], SinkError) and "invalid NATS subject" in str(results[2])
    assert [m.headers["Nats-Msg-Id"] for m in await stored(js, name)] == [events[0].event_id, events[3].event_id]


async def test_expected_stream_refuses_other_streams(nats_url, js, stream, unique):
    name, prefix = stream
    other = f"SF_OTHER_{unique}"
    await js.add_stream(name=other, subjects=[f"other_{unique}.>"])
    try:
        sink = NatsSink(nats_url, subject=f"other_{unique}.{{event_name}}", stream=name)
        async with sink:
            [result] = await sink.send_many([make_event("X")])
        assert isinstance(result, SinkError) and "refused" in str(result)
        assert (await js.stream_info(other)).state.messages == 0
    finally:
        await js.delete_stream(other)


async def test_ensure_stream_creates_it_with_a_duplicate_window(nats_url, js, unique):
    name = f"SF_ENS_{unique}"
    sink = NatsSink(
        nats_url, subject=f"ens_{unique}.{{event_name}}", stream=name, ensure_stream=True, duplicate_window=30
    )
    try:
        async with sink:
            event = make_event("Created")
            assert await sink.send_many([event, event]) == [None, None]
        info = await js.stream_info(name)
        assert info.config.subjects == [f"ens_{unique}.>"]
        assert info.config.duplicate_window == 30
        assert info.state.messages == 1
        # a second sink finds the stream and leaves it as it is
        async with NatsSink(nats_url, subject=f"ens_{unique}.{{event_name}}", stream=name, ensure_stream=True):
            pass
    finally:
        await js.delete_stream(name)


async def test_oversized_event_fails_alone(nats_url, js, stream):
    name, prefix = stream
    big = make_event("Big", payload={"blob": "x" * 2_000_000})
    async with NatsSink(nats_url, subject=f"{prefix}.{{event_name}}", stream=name) as sink:
        results = await sink.send_many([big, make_event("Small")])
    assert isinstance(results[0], SinkError) and "at most" in str(results[0])
    assert results[1] is None


async def test_server_down_gives_an_error_per_event(closed_port):
    sink = NatsSink(f"nats://127.0.0.1:{closed_port}", connect_timeout=0.3)
    started = time.monotonic()
    results = await sink.send_many([make_event(), make_event()])
    assert time.monotonic() - started < 5
    assert all(isinstance(r, SinkError) and "cannot connect to NATS" in str(r) for r in results)
    assert isinstance(results[0].__cause__, BaseException)
    with pytest.raises(SinkError):
        await sink.open()
    await sink.close()
    await sink.close()


async def test_close_is_idempotent_and_a_closed_sink_refuses(nats_url, stream):
    name, prefix = stream
    sink = NatsSink(nats_url, subject=f"{prefix}.{{event_name}}", stream=name)
    assert await sink.send_many([make_event()]) == [None]  # opens lazily
    assert sink.is_open
    await sink.close()
    await sink.close()
    [result] = await sink.send_many([make_event()])
    assert isinstance(result, SinkError) and "closed" in str(result)
    await sink.open()  # may be reopened
    assert await sink.send_many([make_event()]) == [None]
    await sink.close()


def test_configuration_errors():
    with pytest.raises(ConfigurationError, match="stream="):
        NatsSink(ensure_stream=True)
    with pytest.raises(ConfigurationError, match="unknown field"):
        NatsSink(subject="events.{nope}")
    with pytest.raises(ConfigurationError, match="stream_subjects"):
        NatsSink(subject=lambda e: "x", stream="S", ensure_stream=True)
    with pytest.raises(ConfigurationError, match="invalid NATS subject"):
        NatsSink(subject="events.*")
    with pytest.raises(ConfigurationError, match="ack_timeout"):
        NatsSink(ack_timeout=0)


async def test_a_connection_that_ended_closed_is_reopened(nats_url, js, stream):
    name, prefix = stream
    async with NatsSink(nats_url, subject=f"{prefix}.{{event_name}}", stream=name) as sink:
        assert await sink.send_many([make_event()]) == [None]
        await sink._nc.close()  # as after max_reconnect_attempts ran out
        assert await sink.send_many([make_event()]) == [None]
    assert (await js.stream_info(name)).state.messages == 2


async def test_a_missing_ack_fails_the_event_after_ack_timeout(nats_url, unique):
    import nats

    # a plain subscriber (not JetStream) takes the message and never answers
    listener = await nats.connect(nats_url)
    sub = await listener.subscribe(f"silent_{unique}.>")
    try:
        async with NatsSink(nats_url, subject=f"silent_{unique}.{{event_name}}", ack_timeout=0.3, max_pending=1) as sink:
            first, second = await sink.send_many([make_event(), make_event()])
            assert isinstance(first, SinkError) and "no JetStream ack" in str(first)
            assert isinstance(second, SinkError) and "max_pending" in str(second)
            assert not sink._acks  # nothing left waiting
            assert not sink._slots.locked()  # the in-flight slot was given back
        assert (await sub.next_msg(timeout=2)).headers["Nats-Msg-Id"]
    finally:
        await listener.close()
