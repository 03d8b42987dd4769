"""outbox.add / emit against real SQLite and PostgreSQL, sync and async."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from surefoot import context, outbox
from surefoot.outbox import EventSchemaError, events_table
from surefoot.outbox._urls import async_url


def _rows(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(events_table).order_by(events_table.c.id)).mappings().all()


def test_add_with_connection_writes_in_the_callers_transaction(engine):
    with context.bound(correlation_id="corr-1", tenant_id="t-1", causation_id="cause-1"), engine.begin() as conn:
        event = outbox.add(conn, "CallDetected", {"call_sid": "CA1"}, key="CA1")
        assert _rows(engine) == [] or engine.dialect.name == "sqlite"
    rows = _rows(engine)
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == event.outbox_id
    assert row["event_id"] == event.event_id
    assert row["event_name"] == "CallDetected"
    assert row["payload"] == {"call_sid": "CA1"}
    assert (row["correlation_id"], row["tenant_id"], row["causation_id"]) == ("corr-1", "t-1", "cause-1")
    assert row["key"] == "CA1"
    assert row["dispatched_at"] is None and row["attempts"] == 0
    assert row["created_at"] is not None and row["available_at"] is not None


def test_rolled_back_event_is_not_in_the_table(engine):
    with engine.connect() as conn:
        outbox.add(conn, "CallDetected", {"call_sid": "CA1"})
        conn.rollback()
        outbox.add(conn, "CallDetected", {"call_sid": "CA2"})
        conn.commit()
    assert [r["payload"]["call_sid"] for r in _rows(engine)] == ["CA2"]


def test_add_with_session(engine):
    with Session(engine) as session:
        outbox.add(session, "A", {"n": 1})
        session.rollback()
        with session.begin():
            outbox.add(session, "A", {"n": 2}, headers={"x-h": "v"})
    rows = _rows(engine)
    assert [r["payload"]["n"] for r in rows] == [2]
    assert rows[0]["headers"] == {"x-h": "v"}


async def test_add_with_async_connection_and_session(outbox_url):
    aengine = create_async_engine(async_url(outbox_url))
    try:
        async with aengine.begin() as conn:
            event = await outbox.add(conn, "A", {"n": 1}, key="k")
            assert event.outbox_id is not None
        async with AsyncSession(aengine) as session:
            await outbox.add(session, "A", {"n": 2})
            await session.rollback()
            await outbox.add(session, "A", {"n": 3})
            await session.commit()
    finally:
        await aengine.dispose()
    engine = sa.create_engine(outbox_url)
    assert [r["payload"]["n"] for r in _rows(engine)] == [1, 3]
    engine.dispose()


def test_catalogue_refuses_a_bad_payload_naming_the_field(engine):
    outbox.register_event(
        "CallDetected",
        {
            "type": "object",
            "required": ["call_sid", "caller"],
            "properties": {
                "call_sid": {"type": "string"},
                "caller": {"type": "object", "properties": {"phone": {"type": "string"}}},
            },
        },
    )
    with engine.begin() as conn:
        with pytest.raises(EventSchemaError) as info:
            outbox.add(conn, "CallDetected", {"call_sid": "CA1", "caller": {"phone": 5}})
        assert "payload.caller.phone" in str(info.value)
        assert info.value.errors == [{"loc": ["caller", "phone"], "msg": "5 is not of type 'string'"}]
        with pytest.raises(EventSchemaError, match="registered versions: \\[1\\]"):
            outbox.add(conn, "CallDetected", {"call_sid": "CA1"}, schema_version=2)
        outbox.add(conn, "CallDetected", {"call_sid": "CA1", "caller": {"phone": "+15550001"}})
    assert len(_rows(engine)) == 1


def test_duplicate_event_id_is_refused(engine):
    with engine.begin() as conn:
        outbox.add(conn, "A", {}, event_id="6c3e1f0e-2b7a-4c36-9d3c-2f1d5a0b7e11")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        outbox.add(conn, "A", {}, event_id="6c3e1f0e-2b7a-4c36-9d3c-2f1d5a0b7e11")


def test_emit_never_breaks_the_business_transaction(engine, registry, monkeypatch):
    outbox.register_event("Strict", {"type": "object", "required": ["id"]})
    with engine.begin() as conn:
        assert outbox.emit(conn, "Strict", {}, registry=registry) is None
        assert outbox.emit(conn, "Strict", {"id": 1}, registry=registry) is not None
    assert registry.get_sample_value("events_emit_failures_total", {"event_name": "Strict"}) == 1.0
    assert len(_rows(engine)) == 1
    monkeypatch.setenv("ENABLE_EVENTS", "false")
    with engine.begin() as conn:
        assert outbox.emit(conn, "Strict", {"id": 2}, registry=registry) is None
    monkeypatch.delenv("ENABLE_EVENTS")
    monkeypatch.setenv("SUREFOOT_ENABLE_EVENTS", "false")
    from surefoot._core.state import reset_config

    reset_config()
    with engine.begin() as conn:
        assert outbox.emit(conn, "Strict", {"id": 3}, registry=registry) is None
    assert len(_rows(engine)) == 1


def test_emit_survives_a_database_error(engine, registry):
    with engine.begin() as conn:
        outbox.add(conn, "A", {}, event_id="6c3e1f0e-2b7a-4c36-9d3c-2f1d5a0b7e12")
        # the duplicate fails inside the savepoint; the transaction stays usable
        assert outbox.emit(conn, "A", {}, event_id="6c3e1f0e-2b7a-4c36-9d3c-2f1d5a0b7e12", registry=registry) is None
        outbox.add(conn, "B", {})
    assert [r["event_name"] for r in _rows(engine)] == ["A", "B"]


async def test_async_emit(outbox_url, registry):
    aengine = create_async_engine(async_url(outbox_url))
    try:
        async with aengine.begin() as conn:
            assert (await outbox.emit(conn, "A", {"n": 1}, registry=registry)) is not None
            assert (await outbox.emit(conn, "A", "not a mapping", registry=registry)) is None
    finally:
        await aengine.dispose()
    assert registry.get_sample_value("events_emit_failures_total", {"event_name": "A"}) == 1.0


def test_available_at_delays_and_payload_types(engine):
    import datetime as dt
    import time

    from surefoot.errors import ConfigurationError

    later = time.time() + 3600
    with engine.begin() as conn:
        outbox.add(conn, "A", {"when": dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "n": 1.5}, available_at=later)
        with pytest.raises(ConfigurationError, match="not JSON-serialisable"):
            outbox.add(conn, "A", {"obj": object()})
        with pytest.raises(ConfigurationError, match="mapping"):
            outbox.add(conn, "A", [1, 2])
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            outbox.add(conn, "A", {}, available_at=dt.datetime(2030, 1, 1))
    row = _rows(engine)[0]
    assert row["payload"] == {"when": "2026-01-02T00:00:00+00:00", "n": 1.5}
    available = row["available_at"]
    if available.tzinfo is None:
        available = available.replace(tzinfo=dt.UTC)
    assert abs(available.timestamp() - later) < 1


def test_trace_context_is_added_when_a_span_is_active(engine):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("request"), engine.begin() as conn:
        event = outbox.add(conn, "A", {})
    assert event.headers["traceparent"].startswith("00-")
    assert _rows(engine)[0]["headers"]["traceparent"] == event.headers["traceparent"]
    del trace


def test_postgres_add_notifies_once_per_committed_transaction(pg_outbox_url):
    outbox_url = pg_outbox_url
    import psycopg

    listener = psycopg.connect(outbox_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    listener.execute("LISTEN surefoot_outbox")
    engine = sa.create_engine(outbox_url)

    def notifications() -> int:
        return len(list(listener.notifies(timeout=0.3, stop_after=10)))

    with engine.begin() as conn:
        for i in range(5):
            outbox.add(conn, "A", {"n": i})
    assert notifications() == 1
    with engine.connect() as conn:
        outbox.add(conn, "A", {"n": 9})
        conn.rollback()
    assert notifications() == 0
    with Session(engine) as session, session.begin():
        outbox.add(session, "A", {})
    assert notifications() == 1
    listener.close()
    engine.dispose()


def test_notify_trigger_wakes_dispatchers_for_writers_that_bypass_add(pg_outbox_url):
    import psycopg

    engine = sa.create_engine(pg_outbox_url)
    listener = psycopg.connect(pg_outbox_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    listener.execute("LISTEN surefoot_outbox")

    def raw_insert(event_id: str) -> None:  # another language's writer: plain SQL, no outbox.add()
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO outbox_events (event_id, event_name, payload, occurred_at) "
                "VALUES (%(id)s, 'Raw', '{}', now())", {"id": event_id},
            )

    def notifications() -> int:
        return len(list(listener.notifies(timeout=0.3, stop_after=10)))

    try:
        raw_insert("raw-0")
        assert notifications() == 0
        outbox.create_tables(engine, notify_trigger=True)
        outbox.create_tables(engine, notify_trigger=True)  # idempotent
        raw_insert("raw-1")
        assert notifications() == 1
        outbox.create_tables(engine)  # without the flag the trigger is removed again
        raw_insert("raw-2")
        assert notifications() == 0
    finally:
        outbox.create_tables(engine)
        listener.close()
        engine.dispose()


def test_debezium_view_exposes_the_default_outbox_names(engine):
    import json

    with engine.begin() as conn:
        event = outbox.add(conn, "CallDetected", {"call_sid": "CA1"}, key="CA1")
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT id, aggregatetype, aggregateid, type, payload FROM outbox_events_debezium")
        ).mappings().one()
    payload = row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"])
    assert (row["id"], row["aggregatetype"], row["aggregateid"], row["type"]) == (
        event.event_id, "CallDetected", "CA1", "CallDetected"
    )
    assert payload == {"call_sid": "CA1"}


def test_create_tables_puts_a_sqlite_file_in_wal_mode(sqlite_url):
    """So the application can write while a dispatcher reads."""
    outbox.create_tables(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one().lower() == "wal"
    finally:
        engine.dispose()
