"""Shared sink behaviour: headers, destination naming, lifecycle, positional results."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot.errors import ConfigurationError
from surefoot.outbox import Event, Sink, SinkError
from surefoot.outbox.sinks import event_headers
from surefoot.outbox.sinks._base import BaseSink, NameResolver, encode, gather_positional


def test_event_headers_carry_the_envelope_ids_and_trace_context():
    event = Event(
        "CallDetected",
        {"a": 1},
        schema_version=3,
        tenant_id="t",
        correlation_id="c",
        causation_id="k",
        headers={"traceparent": "00-abc-def-01", "baggage": "x=1"},
    )
    assert event_headers(event) == {
        "traceparent": "00-abc-def-01",
        "baggage": "x=1",
        "event_id": event.event_id,
        "event_name": "CallDetected",
        "schema_version": "3",
        "correlation_id": "c",
        "causation_id": "k",
        "tenant_id": "t",
        "content-type": "application/json",
    }


def test_event_headers_leave_out_unset_ids_and_cannot_be_spoofed():
    event = Event("E", {}, headers={"event_id": "forged", "content-type": "text/plain"})
    headers = event_headers(event)
    assert headers["event_id"] == event.event_id
    assert headers["content-type"] == "application/json"
    assert not {"correlation_id", "causation_id", "tenant_id"} & set(headers)


def test_name_resolver_templates_and_callables():
    event = Event("CallDetected", {}, tenant_id="t1", key="k9", schema_version=2)
    assert NameResolver("ev.{event_name}.v{schema_version}", what="x")(event) == "ev.CallDetected.v2"
    assert NameResolver("{tenant_id}:{key}", what="x")(Event("E", {})) == "_:_"
    assert NameResolver("{tenant_id}:{key}", what="x")(event) == "t1:k9"
    assert NameResolver(lambda e: e.event_name.lower(), what="x")(event) == "calldetected"
    static = NameResolver("one-stream", what="x")
    assert static.static == "one-stream" and static(event) == "one-stream"


def test_doubled_braces_are_literal_braces_with_or_without_fields():
    event = Event("CallDetected", {})
    assert NameResolver("{{events}}.{event_name}", what="x")(event) == "{events}.CallDetected"
    fixed = NameResolver("{{events}}.all", what="x")
    assert fixed.static == "{events}.all" and fixed(event) == "{events}.all"
    assert NameResolver("{{{{x}}}}", what="x")(event) == "{{x}}"
    with pytest.raises(ConfigurationError, match=r"invalid subject '\{a b\}'"):
        NameResolver("{{a b}}", what="subject", validate=lambda n: "spaces" if " " in n else None)


@pytest.mark.parametrize(
    ("template", "message"),
    [("{nope}", "unknown field"), ("{}", "named fields"), ("{0}", "named fields"), ("{event_name", "malformed")],
)
def test_name_resolver_refuses_bad_templates(template, message):
    with pytest.raises(ConfigurationError, match=message):
        NameResolver(template, what="subject")


def test_name_resolver_refuses_other_types():
    with pytest.raises(ConfigurationError, match="template string or a callable"):
        NameResolver(42, what="subject")  # type: ignore[arg-type]


def test_name_resolver_failures_are_per_event_sink_errors():
    def boom(event: Event) -> str:
        raise KeyError("no route")

    with pytest.raises(SinkError, match="no route") as info:
        NameResolver(boom, what="subject")(Event("E", {}))
    assert isinstance(info.value.__cause__, KeyError)
    with pytest.raises(SinkError, match="empty"):
        NameResolver(lambda e: "", what="subject")(Event("E", {}))
    checked = NameResolver("a.{event_name}", what="subject", validate=lambda n: "spaces" if " " in n else None)
    with pytest.raises(SinkError, match="invalid subject 'a.b c'.*spaces"):
        checked(Event("b c", {}))
    with pytest.raises(ConfigurationError, match="spaces"):
        NameResolver("a b", what="subject", validate=lambda n: "spaces" if " " in n else None)


def test_a_routing_key_that_cannot_be_encoded_fails_its_event_only():
    from surefoot.outbox.sinks._rabbitmq import _check_routing_key

    resolver = NameResolver(lambda e: "rk." + e.event_name, what="routing key", validate=_check_routing_key)
    assert resolver(Event("ok", {})) == "rk.ok"
    with pytest.raises(SinkError, match="invalid routing key"):
        resolver(Event("bad\udc80", {}))


def test_encode_turns_unserialisable_payloads_into_sink_errors():
    with pytest.raises(SinkError, match="cannot be serialised"):
        encode(Event("E", {"x": object()}))


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _JSONISH, max_size=5))
def test_encode_is_the_envelope_json_or_a_sink_error(payload):
    # orjson refuses integers beyond 64 bits: that event fails alone, with a clear error
    event = Event("E", payload)
    try:
        body = encode(event)
    except SinkError as exc:
        assert "cannot be serialised" in str(exc)
    else:
        assert body == event.to_json()


class FakeSink(BaseSink):
    """A sink that records what it was asked to do; ``fail_connect`` makes the broker 'down'."""

    def __init__(self, *, fail_connect: bool = False) -> None:
        super().__init__(name="fake")
        self.fail_connect = fail_connect
        self.connects = 0
        self.disconnects = 0
        self.sent: list[str] = []

    async def _connect(self) -> None:
        self.connects += 1
        if self.fail_connect:
            raise SinkError("broker down")

    async def _disconnect(self) -> None:
        self.disconnects += 1

    async def _send(self, events: Sequence[Event]) -> list[BaseException | None]:
        self.sent.extend(e.event_id for e in events)
        return [None] * len(events)


def test_base_sink_satisfies_the_protocol():
    assert isinstance(FakeSink(), Sink)


async def test_lifecycle_open_lazily_close_idempotent_reopen():
    sink = FakeSink()
    assert await sink.send_many([]) == []
    assert sink.connects == 0
    assert await sink.send_many([Event("E", {})]) == [None]
    assert sink.connects == 1 and sink.is_open
    await sink.open()
    assert sink.connects == 1
    await sink.close()
    await sink.close()
    assert sink.disconnects == 1 and not sink.is_open
    [refused] = await sink.send_many([Event("E", {})])
    assert isinstance(refused, SinkError) and "closed" in str(refused)
    async with sink:
        assert sink.connects == 2
    assert sink.disconnects == 2


async def test_unreachable_broker_fails_every_event_without_raising():
    sink = FakeSink(fail_connect=True)
    results = await sink.send_many([Event("E", {}), Event("F", {})])
    assert [str(r) for r in results] == ["broker down", "broker down"]
    with pytest.raises(SinkError):
        await sink.open()
    sink.fail_connect = False
    assert await sink.send_many([Event("E", {})]) == [None]
    await sink.close()


async def test_close_before_open_is_fine():
    sink = FakeSink()
    await sink.close()
    assert sink.disconnects == 0


async def test_send_many_refuses_non_events():
    with pytest.raises(TypeError, match="position 1"):
        await FakeSink().send_many([Event("E", {}), {"event_name": "E"}])  # type: ignore[list-item]


def test_sink_name_must_be_a_non_empty_string():
    with pytest.raises(ConfigurationError):
        BaseSink(name="")


async def test_gather_positional_wraps_surprises_and_keeps_positions():
    async def ok() -> None:
        return None

    async def refused() -> None:
        raise SinkError("refused")

    async def surprise() -> None:
        raise LookupError("library bug")

    results = await gather_positional([ok(), refused(), surprise(), ok()], sink="s")
    assert results[0] is None and results[3] is None
    assert str(results[1]) == "refused"
    assert isinstance(results[2], SinkError) and isinstance(results[2].__cause__, LookupError)


async def test_close_waits_for_batches_in_flight():
    import asyncio

    class SlowSink(FakeSink):
        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()
            self.started = asyncio.Event()

        async def _send(self, events):
            self.started.set()
            await self.release.wait()
            return await super()._send(events)

    sink = SlowSink()
    batch = asyncio.ensure_future(sink.send_many([Event("E", {})]))
    await sink.started.wait()
    closing = asyncio.ensure_future(sink.close())
    await asyncio.sleep(0)
    assert not closing.done() and sink.disconnects == 0
    [late] = await sink.send_many([Event("E", {})])  # new batches are refused meanwhile
    assert isinstance(late, SinkError) and "closed" in str(late)
    sink.release.set()
    assert await batch == [None]
    await closing
    assert sink.disconnects == 1


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(min_size=1, max_size=30),
    tenant=st.none() | st.text(max_size=10),
    key=st.none() | st.text(max_size=10),
)
def test_any_event_gets_a_valid_subject_or_a_sink_error(name, tenant, key):
    from surefoot.outbox.sinks._nats import _check_subject

    resolver = NameResolver("events.{tenant_id}.{event_name}.{key}", what="NATS subject", validate=_check_subject)
    try:
        subject = resolver(Event(name, {}, tenant_id=tenant, key=key))
    except SinkError as exc:
        assert "NATS subject" in str(exc)
    else:
        assert _check_subject(subject) is None
        assert not any(ch.isspace() or ch in "*>" for ch in subject)


async def test_an_unexpected_error_fails_the_batch_without_raising():
    class BrokenSink(FakeSink):
        async def _send(self, events):
            raise AttributeError("bug in a client library")

    results = await BrokenSink().send_many([Event("E", {}), Event("F", {})])
    assert all(isinstance(r, SinkError) and isinstance(r.__cause__, AttributeError) for r in results)
