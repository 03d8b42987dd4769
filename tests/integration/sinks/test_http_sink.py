"""HttpSink against a real HTTP server on a loopback port that verifies signatures itself."""

from __future__ import annotations

import base64
import email.utils
import os
from collections.abc import Iterator

import orjson
import pytest

from surefoot.errors import ConfigurationError
from surefoot.outbox import Event, RetryLater, SinkDisabled, SinkError
from surefoot.outbox.sinks import HttpSink
from surefoot.testing import FakeClock

from tests.integration.sinks._helpers import TRACEPARENT, make_event
from tests.integration.sinks._receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def new_secret() -> str:
    # no padding on purpose: receivers and senders must tolerate it
    return "whsec_" + base64.b64encode(os.urandom(24)).decode().rstrip("=")


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(secret: str) -> Iterator[Receiver]:
    with Receiver([secret]) as r:
        yield r


async def test_delivery_is_signed_and_carries_correlation_headers(receiver, secret):
    clock = FakeClock(start=1_750_000_000.5)
    events = [make_event("CallDetected"), make_event("SmsSent", key="k-2", tenant_id=None)]
    async with HttpSink(receiver.url("/ok"), secrets=secret, clock=clock, headers={"Authorization": "Bearer t"}) as sink:
        assert await sink.send_many(events) == [None, None]
    assert receiver.rejected == 0
    by_id = {r.headers["webhook-id"]: r for r in receiver.requests}
    for event in events:
        got = by_id[event.event_id]
        assert got.body == event.to_json()
        assert Event.from_envelope(got.body).payload == event.payload
        assert got.headers["webhook-timestamp"] == "1750000000"
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-event-name"] == event.event_name
        assert got.headers["x-event-schema-version"] == "1"
        assert got.headers["x-correlation-id"] == "corr-1"
        assert got.headers["x-causation-id"] == "cause-1"
        assert got.headers["traceparent"] == TRACEPARENT
        assert got.headers["tracestate"] == "v=1"
        assert got.headers["authorization"] == "Bearer t"
    assert by_id[events[0].event_id].headers["x-tenant-id"] == "t-42"
    assert "x-tenant-id" not in by_id[events[1].event_id].headers


async def test_rotation_signs_with_every_secret(secret):
    old, new = secret, new_secret()
    event = make_event()
    for knows in ([old], [new]):
        with Receiver(knows) as receiver:
            async with HttpSink(receiver.url("/ok"), secrets=[old, new]) as sink:
                assert await sink.send_many([event]) == [None]
            [got] = receiver.requests
            assert len(got.headers["webhook-signature"].split(" ")) == 2
    with Receiver([new_secret()]) as stranger:
        async with HttpSink(stranger.url("/ok"), secrets=[old, new]) as sink:
            [result] = await sink.send_many([event])
        assert isinstance(result, SinkError) and result.status_code == 401
        assert stranger.rejected == 1


async def test_gone_disables_the_endpoint_until_enabled(receiver, secret):
    seen = []
    sink = HttpSink(
        {"CallDetected": receiver.url("/gone"), "*": receiver.url("/ok")}, secrets=secret, on_disabled=seen.append
    )
    async with sink:
        [first, other] = await sink.send_many([make_event("CallDetected"), make_event("SmsSent", key="k-2")])
        assert isinstance(first, SinkDisabled) and first.status_code == 410
        assert other is None
        assert sink.is_disabled(receiver.url("/gone"))
        assert list(sink.disabled_endpoints) == [receiver.url("/gone")]
        assert seen[0].status_code == 410 and seen[0].url == receiver.url("/gone")
        # later events for it fail at once, without a request
        results = await sink.send_many([make_event("CallDetected"), make_event("CallDetected")])
        assert all(isinstance(r, SinkDisabled) and "enable()" in str(r) for r in results)
        assert receiver.paths().count("/gone") == 1
        assert sink.enable() == [receiver.url("/gone")]
        assert not sink.is_disabled(receiver.url("/gone"))
        [again] = await sink.send_many([make_event("CallDetected")])
        assert isinstance(again, SinkDisabled)
        assert receiver.paths().count("/gone") == 2
        assert sink.enable("https://unknown.example/") == []


async def test_throttling_statuses_ask_to_retry_later(receiver, secret):
    clock = FakeClock(start=email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:27:00 GMT").timestamp())
    sink = HttpSink(lambda e: receiver.url(e.event_name), secrets=secret, clock=clock)
    async with sink:
        throttled, unavailable, bad_gateway = await sink.send_many(
            [make_event("/throttle"), make_event("/unavailable", key="2"), make_event("/bad-gateway", key="3")]
        )
    assert isinstance(throttled, RetryLater) and throttled.retry_after == 7 and throttled.status_code == 429
    assert isinstance(unavailable, RetryLater) and unavailable.retry_after == 60 and unavailable.status_code == 503
    assert isinstance(bad_gateway, RetryLater) and bad_gateway.retry_after is None


async def test_retry_after_is_capped(receiver, secret):
    receiver.retry_after_date = "Fri, 31 Dec 9999 23:59:59 GMT"
    async with HttpSink(receiver.url("/unavailable"), secrets=secret, max_retry_after=120) as sink:
        [result] = await sink.send_many([make_event()])
    assert isinstance(result, RetryLater) and result.retry_after == 120


async def test_redirects_and_errors_fail_with_the_status(receiver, secret):
    sink = HttpSink(lambda e: receiver.url(e.event_name), secrets=secret)
    async with sink:
        moved, bad, error, missing = await sink.send_many(
            [make_event("/moved", key="1"), make_event("/bad", key="2"), make_event("/error", key="3"),
             make_event("/missing", key="4")]
        )
    assert type(moved) is SinkError and moved.status_code == 301 and "not followed" in str(moved)
    assert receiver.paths().count("/ok") == 0  # the redirect was not followed
    assert type(bad) is SinkError and bad.status_code == 400 and "payload.call_id is required" in str(bad)
    assert type(error) is SinkError and error.status_code == 500
    assert type(missing) is SinkError and missing.status_code == 404


async def test_slow_endpoint_times_out(receiver, secret):
    async with HttpSink(receiver.url("/slow"), secrets=secret, timeout=0.3) as sink:
        results = await sink.send_many([make_event(), make_event(key="other")])
    assert all(type(r) is SinkError and "timed out after 0.3 s" in str(r) for r in results)


async def test_same_key_events_go_in_order_and_stop_at_a_failure(receiver, secret):
    events = [
        make_event("E", key="a", payload={"i": 0}),
        make_event("E", key="a", payload={"i": 1, "fail": True}),
        make_event("E", key="a", payload={"i": 2}),
        make_event("E", key="b", payload={"i": 3}),
    ]
    async with HttpSink(receiver.url("/flaky"), secrets=secret) as sink:
        results = await sink.send_many(events)
    assert results[0] is None and results[3] is None
    assert type(results[1]) is SinkError and results[1].status_code == 500
    assert type(results[2]) is SinkError and "not sent" in str(results[2])
    sent = [orjson.loads(r.body)["payload"]["i"] for r in receiver.requests]
    assert sorted(sent) == [0, 1, 3]
    assert sent.index(0) < sent.index(1)


async def test_concurrency_is_capped_per_endpoint(receiver, secret):
    events = [make_event(key=str(i)) for i in range(8)]
    async with HttpSink(receiver.url("/hold"), secrets=secret, max_concurrency=2) as sink:
        assert await sink.send_many(events) == [None] * 8
    assert receiver.max_in_flight <= 2
    assert len(receiver.requests) == 8


async def test_endpoint_template_and_mapping_errors(receiver, secret):
    async with HttpSink(receiver.url("/ok/{tenant_id}/{event_name}"), secrets=secret) as sink:
        assert await sink.send_many([make_event("CallDetected")]) == [None]
    assert receiver.paths() == ["/ok/t-42/CallDetected"]
    async with HttpSink({"Known": receiver.url("/ok")}, secrets=secret) as sink:
        [result] = await sink.send_many([make_event("Unknown")])
    assert type(result) is SinkError and "no webhook endpoint" in str(result)


async def test_unreachable_endpoint_gives_an_error_per_event(closed_port, secret):
    sink = HttpSink(f"http://127.0.0.1:{closed_port}/hook", secrets=secret, timeout=2)
    results = await sink.send_many([make_event(), make_event(key="x")])
    assert all(type(r) is SinkError and "failed for event" in str(r) for r in results)
    await sink.close()
    await sink.close()
    [closed] = await sink.send_many([make_event()])
    assert "closed" in str(closed)


async def test_injected_client_is_not_closed(receiver, secret):
    import httpx

    async with httpx.AsyncClient() as client:
        async with HttpSink(receiver.url("/ok"), secrets=secret, client=client) as sink:
            assert await sink.send_many([make_event()]) == [None]
        assert not client.is_closed


def test_configuration_errors():
    with pytest.raises(ConfigurationError, match="secret"):
        HttpSink("https://example.com/hook", secrets=[])
    with pytest.raises(ConfigurationError, match="whsec_"):
        HttpSink("https://example.com/hook", secrets="whsec_!!!not base64")
    with pytest.raises(ConfigurationError, match="http"):
        HttpSink("ftp://example.com/hook", secrets=new_secret())
    with pytest.raises(ConfigurationError, match="http"):
        HttpSink({"A": "example.com/hook"}, secrets=new_secret())
    with pytest.raises(ConfigurationError, match="timeout"):
        HttpSink("https://example.com/hook", secrets=new_secret(), timeout=0)
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        HttpSink("https://example.com/hook", secrets=new_secret(), max_concurrency=0)


async def test_requests_are_counted_per_endpoint_and_status(receiver, secret, registry):
    sink = HttpSink(lambda e: receiver.url(e.event_name), secrets=secret, registry=registry, timeout=0.3)
    async with sink:
        await sink.send_many([make_event("/ok", key="1"), make_event("/throttle", key="2"), make_event("/slow", key="3")])
    host = f"127.0.0.1:{receiver.port}"
    for status in ("204", "429", "timeout"):
        labels = {"provider": "http", "endpoint": host, "status": status}
        assert registry.get_sample_value("integration_http_requests_total", labels) == 1
    assert registry.get_sample_value(
        "integration_http_latency_seconds_count", {"provider": "http", "endpoint": host}
    ) == 3
