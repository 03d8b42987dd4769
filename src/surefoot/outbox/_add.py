"""Writing events: :func:`add` in the caller's transaction, :func:`emit` best effort."""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from collections.abc import Awaitable, Mapping
from typing import Any

import structlog

from .. import context
from .._config import get_settings
from ..errors import ConfigurationError
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
        occurred_at = dt.datetime.now(dt.timezone.utc)
    elif occurred_at.tzinfo is None:
        raise ConfigurationError("occurred_at must be timezone-aware (use UTC)")
    return Event(
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


def _row(event: Event, available_at: dt.datetime | float | None) -> dict[str, Any]:
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
        "occurred_at": _utc_naive_safe(event.occurred_at),
    }
    if available_at is not None:
        if isinstance(available_at, (int, float)):
            available_at = dt.datetime.fromtimestamp(available_at, dt.timezone.utc)
        elif available_at.tzinfo is None:
            raise ConfigurationError("available_at must be timezone-aware (use UTC) or epoch seconds")
        row["available_at"] = _utc_naive_safe(available_at)
    return row


def _utc_naive_safe(value: dt.datetime) -> dt.datetime:
    # SQLite stores datetimes as text without an offset: normalise to UTC so every value in
    # the table compares correctly with the database clock (also UTC).
    return value.astimezone(dt.timezone.utc)


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
        conn: a SQLAlchemy ``Connection`` or ``Session`` (returns the event), or an
            ``AsyncConnection`` or ``AsyncSession`` (returns an awaitable of the event).
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
    fake = getattr(conn, "_outbox_add", None)
    if fake is not None:  # surefoot.testing.InMemoryOutbox stands in for a connection
        return fake(
            event_name, payload, key=key, tenant_id=tenant_id, schema_version=schema_version,
            headers=headers, event_id=event_id, correlation_id=correlation_id,
            causation_id=causation_id, catalogue=catalogue,
        )
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
    row = _row(event, available_at)
    global _INSERT
    if _INSERT is None:
        _INSERT = _insert_stmt()
    if _is_async(conn):
        return _aadd(conn, event, row)
    result = conn.execute(_INSERT, row)
    return _with_id(event, result)


async def _aadd(conn: Any, event: Event, row: dict[str, Any]) -> Event:
    result = await conn.execute(_INSERT, row)
    return _with_id(event, result)


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
        conn: as for :func:`add` (sync: returns the event or ``None``; async: an awaitable).
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
        from ..metrics._catalogue import EVENTS_EMIT_FAILURES

        EVENTS_EMIT_FAILURES.get(registry).labels(event_name=name[:255]).inc()
    finally:
        _log.error(
            "outbox_emit_failed",
            event_name=name,
            error_type=type(exc).__name__,
            error_message=str(exc)[:500],
        )
