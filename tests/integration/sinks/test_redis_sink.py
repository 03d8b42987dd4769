"""RedisStreamSink against the local Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from surefoot.errors import ConfigurationError
from surefoot.outbox import Event, SinkError
from surefoot.outbox.sinks import RedisStreamSink

from tests.integration.sinks._helpers import assert_event_headers, make_event

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]


@pytest.fixture
async def redis(redis_url: str, unique: str) -> AsyncIterator[object]:
    """A client for checking what the sink wrote; deletes every key of this test after it."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"*{unique}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_events_are_appended_with_envelope_and_headers(redis_url, redis, unique):
    events = [make_event("CallDetected"), make_event("SmsSent", payload={"n": 2}), make_event("CallDetected")]
    async with RedisStreamSink(redis_url, stream=f"sf:{unique}:{{event_name}}") as sink:
        assert await sink.send_many(events) == [None, None, None]
    calls = await redis.xrange(f"sf:{unique}:CallDetected")
    sms = await redis.xrange(f"sf:{unique}:SmsSent")
    assert len(calls) == 2 and len(sms) == 1
    for (_, fields), event in zip(calls + sms, [events[0], events[2], events[1]], strict=True):
        assert fields["envelope"] == event.to_json().decode()
        assert Event.from_envelope(fields["envelope"]).event_id == event.event_id
        assert_event_headers(fields, event)


async def test_one_stream_for_all_events_keeps_batch_order(redis_url, redis, unique):
    events = [make_event(f"E{i % 4}", key=f"k{i % 3}", payload={"i": i}) for i in range(50)]
    async with RedisStreamSink(redis_url, stream=f"sf:{unique}:all") as sink:
        assert await sink.send_many(events) == [None] * 50
    entries = await redis.xrange(f"sf:{unique}:all")
    assert [Event.from_envelope(f["envelope"]).payload["i"] for _, f in entries] == list(range(50))


async def test_maxlen_trims_the_stream(redis_url, redis, unique):
    async with RedisStreamSink(redis_url, stream=f"sf:{unique}", maxlen=5, approximate=False) as sink:
        assert await sink.send_many([make_event(payload={"i": i}) for i in range(20)]) == [None] * 20
    assert await redis.xlen(f"sf:{unique}") == 5


async def test_without_dedupe_a_redelivery_appends_again(redis_url, redis, unique):
    event = make_event()
    async with RedisStreamSink(redis_url, stream=f"sf:{unique}") as sink:
        assert await sink.send_many([event]) == [None]
        assert await sink.send_many([event]) == [None]
    assert await redis.xlen(f"sf:{unique}") == 2


async def test_dedupe_stores_an_event_once_per_stream(redis_url, redis, unique):
    first, second = make_event("A"), make_event("B")
    prefix = f"sfdd:{unique}:"
    sink = RedisStreamSink(
        redis_url, stream=f"sf:{unique}:{{event_name}}", dedupe=True, dedupe_ttl=60, dedupe_prefix=prefix, maxlen=100
    )
    async with sink:
        assert await sink.send_many([first, second]) == [None, None]
        assert await sink.send_many([first, first, second]) == [None, None, None]
    assert await redis.xlen(f"sf:{unique}:A") == 1
    assert await redis.xlen(f"sf:{unique}:B") == 1
    marker = f"{prefix}sf:{unique}:A:{first.event_id}"
    [(entry_id, _)] = await redis.xrange(f"sf:{unique}:A")
    assert await redis.get(marker) == entry_id
    assert 0 < await redis.pttl(marker) <= 60_000
    # another sink writing the same event to another stream is not deduplicated against it
    async with RedisStreamSink(redis_url, stream=f"sf:{unique}:copy", dedupe=True, dedupe_prefix=prefix) as other:
        assert await other.send_many([first]) == [None]
    assert await redis.xlen(f"sf:{unique}:copy") == 1


async def test_a_hash_tagged_stream_is_written_with_single_braces(redis_url, redis, unique):
    """``{{...}}`` is a literal brace in a fixed stream name too, as the Redis Cluster advice needs."""
    event = make_event("A")
    prefix = f"sfdd:{unique}:"
    async with RedisStreamSink(redis_url, stream=f"{{{{sf{unique}}}}}.all", dedupe=True, dedupe_prefix=prefix) as sink:
        assert await sink.send_many([event, event]) == [None, None]
    assert await redis.xlen(f"{{sf{unique}}}.all") == 1
    assert await redis.exists(f"{{{{sf{unique}}}}}.all") == 0
    assert await redis.get(f"{prefix}{{sf{unique}}}.all:{event.event_id}") is not None


async def test_one_bad_event_does_not_sink_the_batch(redis_url, redis, unique):
    await redis.set(f"sf:{unique}:Clash", "not a stream")

    def stream(event: Event) -> str:
        if event.event_name == "Broken":
            raise ValueError("no stream for this one")
        return f"sf:{unique}:{event.event_name}"

    events = [make_event("Ok"), make_event("Clash"), make_event("Broken"), make_event("Ok")]
    for dedupe in (False, True):
        async with RedisStreamSink(redis_url, stream=stream, dedupe=dedupe, dedupe_prefix=f"sfdd:{unique}:") as sink:
            results = await sink.send_many(events)
        assert results[0] is None and results[3] is None
        assert isinstance(results[1], SinkError) and "WRONGTYPE" in str(results[1])
        assert isinstance(results[2], SinkError) and "no stream for this one" in str(results[2])
    assert await redis.xlen(f"sf:{unique}:Ok") == 4


async def test_server_down_gives_an_error_per_event(closed_port):
    sink = RedisStreamSink(f"redis://127.0.0.1:{closed_port}/0", connect_timeout=0.5)
    results = await sink.send_many([make_event(), make_event()])
    assert all(isinstance(r, SinkError) and "cannot reach Redis" in str(r) for r in results)
    with pytest.raises(SinkError):
        await sink.open()
    await sink.close()
    await sink.close()


async def test_injected_client_stays_open_and_close_is_idempotent(redis_url, redis, unique):
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        sink = RedisStreamSink(client=client, stream=f"sf:{unique}")
        assert await sink.send_many([make_event()]) == [None]
        await sink.close()
        await sink.close()
        [result] = await sink.send_many([make_event()])
        assert isinstance(result, SinkError) and "closed" in str(result)
        assert await client.ping()
        await sink.open()
        assert await sink.send_many([make_event()]) == [None]
        await sink.close()
        assert await redis.xlen(f"sf:{unique}") == 2
    finally:
        await client.aclose()


def test_configuration_errors():
    with pytest.raises(ConfigurationError, match="maxlen"):
        RedisStreamSink(maxlen=0)
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisStreamSink("localhost:6379")
    with pytest.raises(ConfigurationError, match="envelope_field"):
        RedisStreamSink(envelope_field="event_id")
    with pytest.raises(ConfigurationError, match="dedupe_ttl"):
        RedisStreamSink(dedupe=True, dedupe_ttl=0)


async def test_killed_connections_are_replaced_on_the_next_batch(redis_url, redis, unique):
    async with RedisStreamSink(redis_url, stream=f"sf:{unique}") as sink:
        assert await sink.send_many([make_event()]) == [None]
        await sink._client.client_setname(f"sf-{unique}")
        killed = 0
        for info in await redis.client_list():
            if info.get("name") == f"sf-{unique}":
                killed += await redis.client_kill_filter(_id=info["id"])
        assert killed == 1
        results = await sink.send_many([make_event()])
        if results != [None]:  # a batch on the dead connection may fail; the next one must not
            assert isinstance(results[0], SinkError)
            assert await sink.send_many([make_event()]) == [None]
    assert await redis.xlen(f"sf:{unique}") >= 2
