from __future__ import annotations

from surefoot.outbox import Event

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def make_event(name: str = "CallDetected", **overrides) -> Event:
    """An event with every envelope field set, so headers can be checked one by one."""
    fields = dict(
        event_name=name,
        payload={"call_id": "c-1", "from": "+15551234567", "n": 1},
        tenant_id="t-42",
        correlation_id="corr-1",
        causation_id="cause-1",
        key="k-1",
        headers={"traceparent": TRACEPARENT, "tracestate": "v=1"},
    )
    fields.update(overrides)
    return Event(**fields)


EXPECTED_HEADERS = {
    "event_name",
    "event_id",
    "schema_version",
    "correlation_id",
    "causation_id",
    "tenant_id",
    "traceparent",
    "tracestate",
}


def assert_event_headers(headers, event: Event, *, content_type: bool = True) -> None:
    """The broker-side headers of a message match the event."""
    assert headers["event_id"] == event.event_id
    assert headers["event_name"] == event.event_name
    assert headers["schema_version"] == str(event.schema_version)
    assert headers["correlation_id"] == event.correlation_id
    assert headers["causation_id"] == event.causation_id
    assert headers["tenant_id"] == event.tenant_id
    assert headers["traceparent"] == event.headers["traceparent"]
    if content_type:
        assert headers["content-type"] == "application/json"
