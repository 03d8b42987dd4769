"""Writing events: :func:`add` in the caller's transaction, :func:`emit` best effort."""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
import weakref
from collections.abc import Awaitable, Mapping
from typing import Any

import orjson
import structlog

from .. import context
from .._core.settings import get_settings
from ..errors import ConfigurationError
from ..tracing._hooks import outbox_added
from ._catalogue import EventCatalogue, default_catalogue
from ._event import Event

__all__ = ["add", "emit", "build_event", "events_enabled"]

_log = structlog.get_logger("surefoot.outbox")
_FALSE = {"0", "false", "no", "off", ""}


def _trace_headers(headers: dict[str, str]) -> None:
    # OpenTelemetry is never imported here: a span can only be active if the application
    # already imported it, so checking sys.modules keeps the hot path free of it otherwise.
    if "opentelemetry.propagate" not in sys.modules and "opentelemetry.trace" not in sys.modules:
        return
    from opentelemetry import propagate

    propagate.inject(headers)


def build_event(
    event_name: str,
    payload: Mapping[str, Any],
    *,
    key: str | None = None,
    tenant_id: str | None = None,
    schema_version: int = 1,
    headers: Mapping[str, str] | None = None,
    event_id: str | uuid.UUID | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    occurred_at: dt.datetime | None = None,
    catalogue: EventCatalogue | None = None,
) -> Event:
    """Build and validate an :class:`Event`, filling ids and trace context from the context.

    This is what :func:`add` writes; the in-memory outbox of :mod:`surefoot.testing` uses it
    too, so both refuse the same payloads.

    Raises:
        ConfigurationError: an argument has the wrong type or is empty.
        EventSchemaError: the payload does not conform to the registered schema.
    """
    if not isinstance(event_name, str) or not event_name:
        raise ConfigurationError(f"event_name must be a non-empty string, got {event_name!r}")
    if len(event_name) > 255:
        raise ConfigurationError(f"event_name is longer than 255 characters: {event_name[:40]!r}...")
    if not isinstance(payload, Mapping):
        raise ConfigurationError(
            f"payload of {event_name!r} must be a mapping (a JSON object), got {type(payload).__name__}"
        )
    if not isinstance(schema_version, int) or isinstance(schema_version, bool) or schema_version < 1:
        raise ConfigurationError(f"schema_version must be a positive integer, got {schema_version!r}")
    if key is not None and not isinstance(key, str):
        key = str(key)
    (catalogue if catalogue is not None else default_catalogue).validate(
        event_name, payload, version=schema_version
    )
    hdrs: dict[str, str] = dict(headers) if headers else {}
    if "traceparent" not in hdrs:
        _trace_headers(hdrs)
    if correlation_id is None:
        correlation_id = context.correlation_id.get()
    if causation_id is None:
        causation_id = context.causation_id.get()
    if tenant_id is None:
        tenant_id = context.tenant_id.get()
    if occurred_at is None:
        occurred_at = dt.datetime.now(dt.UTC)
    elif occurred_at.tzinfo is None:
        raise ConfigurationError("occurred_at must be timezone-aware (use UTC)")
    event = Event(
        event_name=event_name,
        payload=payload,
        event_id=str(event_id) if event_id is not None else str(uuid.uuid4()),
        schema_version=schema_version,
        occurred_at=occurred_at,
        tenant_id=tenant_id,
        correlation_id=correlation_id,
        causation_id=causation_id,
        key=key,
        headers=hdrs,
    )
    outbox_added(event)  # event id on the current span
    return event


_COLUMNS = (
    "event_id", "event_name", "schema_version", "key", "tenant_id", "correlation_id",
    "causation_id", "payload", "headers", "occurred_at",
)
# Drivers whose native parameter style we write by hand; others go through SQLAlchemy Core.
_FAST_DRIVERS = {("postgresql", "psycopg"): "%s", ("sqlite", "pysqlite"): "?", ("sqlite", "aiosqlite"): "?"}
_SQL_CACHE: dict[tuple[str, str, bool, bool], str | None] = {}
_NOTIFIED = "surefoot_outbox_notified"
_NOTIFY_SQL = "SELECT pg_notify('surefoot_outbox', '')"


def _sql_for(dialect: Any, with_available_at: bool, notify: bool = False) -> str | None:
    key = (dialect.name, dialect.driver, with_available_at, notify)
    sql = _SQL_CACHE.get(key, "")
    if sql != "":
        return sql
    mark = _FAST_DRIVERS.get((dialect.name, dialect.driver))
    if mark is None:
        _SQL_CACHE[key] = None
        return None
    cols = _COLUMNS + (("available_at",) if with_available_at else ())
    values = []
    for col in cols:
        if dialect.name == "postgresql" and col in ("payload", "headers"):
            values.append(f"{mark}::jsonb")
        else:
            values.append(mark)
    sql = f"INSERT INTO outbox_events ({', '.join(cols)}) VALUES ({', '.join(values)})"
    if dialect.name == "postgresql":
        sql += " RETURNING id"
        if notify:
            # the wake-up rides in the same round trip as the insert; PostgreSQL delivers it
            # at commit (never for a rolled-back transaction)
            sql = f"WITH ins AS ({sql}) SELECT id, pg_notify('surefoot_outbox', '') FROM ins"
    _SQL_CACHE[key] = sql
    return sql


def _json(event_name: str, what: str, value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise ConfigurationError(
            f"{what} of event {event_name!r} is not JSON-serialisable: {exc}; "
            "convert the value to a string, number, list or object"
        ) from None


def _params(event: Event, available_at: Any, sqlite: bool) -> tuple[Any, ...]:
    occurred = event.occurred_at.astimezone(dt.UTC)
    params: tuple[Any, ...] = (
        event.event_id,
        event.event_name,
        event.schema_version,
        event.key,
        event.tenant_id,
        event.correlation_id,
        event.causation_id,
        _json(event.event_name, "payload", event.payload),
        _json(event.event_name, "headers", event.headers) if event.headers else None,
        _sqlite_ts(occurred) if sqlite else occurred,
    )
    if available_at is not None:
        params += (_sqlite_ts(available_at) if sqlite else available_at,)
    return params


def _sqlite_ts(value: dt.datetime) -> str:
    # the text form SQLAlchemy's SQLite DateTime reads and writes, in UTC, so that values
    # compare correctly with the database clock
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _available_at(available_at: dt.datetime | float | None) -> dt.datetime | None:
    if available_at is None:
        return None
    if isinstance(available_at, (int, float)):
        return dt.datetime.fromtimestamp(available_at, dt.UTC)
    if available_at.tzinfo is None:
        raise ConfigurationError("available_at must be timezone-aware (use UTC) or epoch seconds")
    return available_at.astimezone(dt.UTC)


def _row(event: Event, available_at: dt.datetime | None) -> dict[str, Any]:
    row = {
        "event_id": event.event_id,
        "event_name": event.event_name,
        "schema_version": event.schema_version,
        "key": event.key,
        "tenant_id": event.tenant_id,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "payload": dict(event.payload),
        "headers": dict(event.headers) or None,
        "occurred_at": event.occurred_at.astimezone(dt.UTC),
    }
    if available_at is not None:
        row["available_at"] = available_at
    return row


def _is_async(conn: Any) -> bool:
    return hasattr(conn, "sync_session") or hasattr(conn, "sync_connection")


def _insert_stmt() -> Any:
    from ._schema import events_table

    return events_table.insert()


_INSERT: Any = None


def add(
    conn: Any,
    event_name: str,
    payload: Mapping[str, Any],
    *,
    key: str | None = None,
    tenant_id: str | None = None,
    schema_version: int = 1,
    headers: Mapping[str, str] | None = None,
    event_id: str | uuid.UUID | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    available_at: dt.datetime | float | None = None,
    catalogue: EventCatalogue | None = None,
) -> Any:
    """Write an event into the outbox inside the caller's transaction.

    The row is written with the caller's connection or session and is never committed here:
    if the business transaction rolls back, the event is gone too; once it commits, a
    dispatcher delivers it at least once.

    Ids default from :mod:`surefoot.context` (the current request's correlation, causation and
    tenant ids) and, when OpenTelemetry is in use with an active span, ``traceparent`` is
    added to ``headers``.

    Args:
        conn: a SQLAlchemy ``Connection`` or ``Session`` (returns the event), an
            ``AsyncConnection`` or ``AsyncSession`` (returns an awaitable of the event), or
            an event store with ``add_event(event, available_at=None)`` such as
            :class:`~surefoot.outbox.MemoryStore` or ``surefoot.testing.InMemoryOutbox``
            (returns the event).
        event_name: the event name, e.g. ``"CallDetected"``.
        payload: a JSON object; checked against the catalogue when the name is registered.
        key: ordering key: events with the same key are delivered one at a time in order.
        tenant_id: defaults to the context's tenant id.
        schema_version: version of the payload's schema.
        headers: extra headers (string values) carried with the event.
        event_id: a UUID (string) to use instead of a fresh one; unique in the table, so a
            deterministic id makes a repeated write fail instead of duplicating the event.
        correlation_id: defaults to the context's correlation id.
        causation_id: defaults to the context's causation id.
        available_at: not delivered before this time (aware datetime or epoch seconds).
        catalogue: the catalogue to validate against (default: the process catalogue).

    Returns:
        The :class:`Event` as written (with ``outbox_id``), or an awaitable of it.

    Raises:
        EventSchemaError: the payload does not conform to its registered schema.
        ConfigurationError: an argument is invalid.
        sqlalchemy.exc.IntegrityError: ``event_id`` is already in the outbox.
    """
    event = build_event(
        event_name,
        payload,
        key=key,
        tenant_id=tenant_id,
        schema_version=schema_version,
        headers=headers,
        event_id=event_id,
        correlation_id=correlation_id,
        causation_id=causation_id,
        catalogue=catalogue,
    )
    when = _available_at(available_at)
    writer = getattr(conn, "add_event", None)
    if writer is not None:  # an event store standing in for a connection (outbox.MemoryStore)
        return writer(event, available_at=when)
    if _is_async(conn):
        return _aadd(conn, event, when)
    target = conn if hasattr(conn, "exec_driver_sql") else conn.connection()
    dialect = target.dialect
    notify = dialect.name == "postgresql" and _first_in_transaction(target)
    sql = _sql_for(dialect, when is not None, notify)
    if sql is None:
        result = target.execute(_core_insert(), _row(event, when))
        if notify:
            target.exec_driver_sql(_NOTIFY_SQL)
        return _with_id(event, result)
    result = target.exec_driver_sql(sql, _params(event, when, dialect.name == "sqlite"))
    return _with_raw_id(event, result, dialect.name)


async def _aadd(conn: Any, event: Event, when: dt.datetime | None) -> Event:
    target = conn if hasattr(conn, "exec_driver_sql") else await conn.connection()
    dialect = target.dialect
    notify = dialect.name == "postgresql" and _first_in_transaction(target.sync_connection)
    sql = _sql_for(dialect, when is not None, notify)
    if sql is None:
        result = await target.execute(_core_insert(), _row(event, when))
        if notify:
            await target.exec_driver_sql(_NOTIFY_SQL)
        return _with_id(event, result)
    result = await target.exec_driver_sql(sql, _params(event, when, dialect.name == "sqlite"))
    return _with_raw_id(event, result, dialect.name)


def _first_in_transaction(conn: Any) -> bool:
    """True for the first event of the connection's current transaction (PostgreSQL).

    One notification per transaction is all a dispatcher needs; later adds skip it. Inside
    a SAVEPOINT the event always notifies, since a rolled-back savepoint drops its
    notifications.
    """
    txn = conn.get_transaction()
    if txn is None or conn.in_nested_transaction():
        return True
    ref = conn.info.get(_NOTIFIED)
    if ref is not None and ref() is txn:
        return False
    conn.info[_NOTIFIED] = weakref.ref(txn)
    return True


def _core_insert() -> Any:
    global _INSERT
    if _INSERT is None:
        _INSERT = _insert_stmt()
    return _INSERT


def _with_raw_id(event: Event, result: Any, dialect_name: str) -> Event:
    outbox_id = result.scalar() if dialect_name == "postgresql" else result.lastrowid
    if outbox_id is not None:
        object.__setattr__(event, "outbox_id", int(outbox_id))
    return event


def _with_id(event: Event, result: Any) -> Event:
    pk = result.inserted_primary_key
    outbox_id = pk[0] if pk else None
    if outbox_id is None:
        return event
    object.__setattr__(event, "outbox_id", int(outbox_id))
    return event


def events_enabled() -> bool:
    """True unless best-effort events are switched off.

    Off when ``SUREFOOT_ENABLE_EVENTS`` (``Settings.enable_events``) is false or when the
    plain ``ENABLE_EVENTS`` variable many services already use is set to a false value.
    """
    if not get_settings().enable_events:
        return False
    plain = os.environ.get("ENABLE_EVENTS")
    return plain is None or plain.strip().lower() not in _FALSE


def emit(
    conn: Any,
    event_name: str,
    payload: Mapping[str, Any],
    *,
    registry: Any = None,
    **kwargs: Any,
) -> Any:
    """Best-effort :func:`add` for events nobody must wait for (seed "event emission").

    Does nothing when events are disabled (:func:`events_enabled`). The write happens in a
    SAVEPOINT of the caller's transaction, so a failure (bad payload, database error) is
    logged as ``outbox_emit_failed`` and counted in ``events_emit_failures_total`` without
    aborting the business transaction; it never raises into the request.

    Args:
        conn: as for :func:`add` (sync or an event store such as ``InMemoryOutbox``: returns
            the event or ``None``; async: an awaitable).
        event_name: the event name.
        payload: the JSON payload.
        registry: Prometheus registry for the failure counter (default: the process one).
        **kwargs: the keyword arguments of :func:`add`.

    Returns:
        The written :class:`Event`, or ``None`` when disabled or failed.
    """
    if _is_async(conn):
        return _aemit(conn, event_name, payload, registry, kwargs)
    try:
        if not events_enabled():
            return None
        if getattr(conn, "add_event", None) is not None:
            # an event store (MemoryStore, InMemoryOutbox): no transaction, so no SAVEPOINT
            return add(conn, event_name, payload, **kwargs)
        with conn.begin_nested():
            return add(conn, event_name, payload, **kwargs)
    except Exception as exc:  # best effort by contract: log and count, never raise
        _emit_failed(event_name, exc, registry)
        return None


async def _aemit(
    conn: Any, event_name: str, payload: Mapping[str, Any], registry: Any, kwargs: dict[str, Any]
) -> Event | None:
    try:
        if not events_enabled():
            return None
        async with conn.begin_nested():
            result: Awaitable[Event] = add(conn, event_name, payload, **kwargs)
            return await result
    except Exception as exc:  # best effort by contract: log and count, never raise
        _emit_failed(event_name, exc, registry)
        return None


def _emit_failed(event_name: Any, exc: BaseException, registry: Any) -> None:
    name = event_name if isinstance(event_name, str) and event_name else "unknown"
    try:
        from .._core.catalogue import EVENTS_EMIT_FAILURES

        EVENTS_EMIT_FAILURES.get(registry).labels(event_name=name[:255]).inc()
    finally:
        _log.error(
            "outbox_emit_failed",
            event_name=name,
            error_type=type(exc).__name__,
            error_message=str(exc)[:500],
        )
