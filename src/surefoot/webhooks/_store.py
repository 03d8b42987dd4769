"""The ``webhook_events`` table and every statement the inbox issues, kept together.

Statements are plain functions of a synchronous ``Connection``; the inbox runs them directly
on a sync engine and through ``AsyncConnection.run_sync`` on an async one, so each
statement exists once. ``INSERT ... ON CONFLICT (provider, dedupe_key) DO ... RETURNING`` is
supported by PostgreSQL and by SQLite (3.35+), the two databases surefoot runs on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from .._core.extras import require
from .._sql import dialect_name, metadata

sa = require("sqlalchemy", "sql")

__all__ = [
    "webhook_events",
    "STATUSES",
    "claim",
    "lookup",
    "set_response_status",
    "record_outcome",
    "purge_batch",
    "create_tables",
    "acreate_tables",
]

STATUSES = ("received", "processed", "failed", "ignored")
MAX_ERROR_LENGTH = 2000

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("dedupe_key", sa.String(255), nullable=False),
    sa.Column("endpoint", sa.String(255), nullable=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("headers", sa.JSON(), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("response_status", sa.Integer(), nullable=True),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.UniqueConstraint("provider", "dedupe_key", name="uq_webhook_events_provider_dedupe_key"),
    sa.CheckConstraint(
        "status IN ('received', 'processed', 'failed', 'ignored')", name="ck_webhook_events_status"
    ),
    sa.Index("ix_webhook_events_received_at", "received_at"),
)


def _insert(conn: Any) -> Any:
    dialect = dialect_name(conn)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(webhook_events)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(webhook_events)
    raise NotImplementedError(  # pragma: no cover - guarded at inbox construction
        f"the webhook inbox supports PostgreSQL and SQLite, not {dialect}"
    )


_CLAIM: dict[str, Any] = {}


def _claim_statement(dialect: str, insert_stmt: Any) -> Any:
    # Built once per dialect with bind parameters: SQLAlchemy then reuses its compiled form.
    stmt = _CLAIM.get(dialect)
    if stmt is None:
        ins = insert_stmt.values(
            provider=sa.bindparam("provider"),
            dedupe_key=sa.bindparam("dedupe_key"),
            endpoint=sa.bindparam("endpoint"),
            received_at=sa.bindparam("received_at", type_=webhook_events.c.received_at.type),
            headers=sa.bindparam("headers", type_=webhook_events.c.headers.type),
            payload=sa.bindparam("payload"),
            status="processed",
            attempts=1,
            processed_at=sa.bindparam("received_at", type_=webhook_events.c.processed_at.type),
            response_status=200,
        )
        stmt = _CLAIM[dialect] = ins.on_conflict_do_update(
            index_elements=["provider", "dedupe_key"],
            set_={
                "status": "processed",
                "attempts": webhook_events.c.attempts + 1,
                "headers": ins.excluded.headers,
                "payload": ins.excluded.payload,
                "processed_at": ins.excluded.processed_at,
                "response_status": 200,
                "error": None,
            },
            where=webhook_events.c.status == "failed",
        ).returning(webhook_events.c.id)
    return stmt


def claim(
    conn: Any,
    *,
    provider: str,
    dedupe_key: str,
    endpoint: str,
    received_at: dt.datetime,
    headers: Mapping[str, str],
    payload: str,
) -> int | None:
    """Insert a new delivery and return its id; ``None`` when it is a duplicate.

    The row is written as ``processed`` (response 200, ``processed_at`` = ``received_at``)
    because it only ever commits together with the handler's writes: if the handler
    fails or ignores the delivery the transaction rolls back and :func:`record_outcome`
    writes the real status. This saves a round trip per delivery; a handler answering with
    another status code is recorded by :func:`set_response_status`.

    A row left ``failed`` by an earlier attempt is claimed again (its handler raised and the
    provider retries); any other existing row makes this delivery a duplicate. On
    PostgreSQL a concurrent claim of the same key waits for this transaction to end.
    """
    stmt = _claim_statement(dialect_name(conn), _insert(conn))
    params = {
        "provider": provider,
        "dedupe_key": dedupe_key,
        "endpoint": endpoint,
        "received_at": received_at,
        "headers": dict(headers),
        "payload": payload,
    }
    row_id: int | None = conn.execute(stmt, params).scalar_one_or_none()
    return row_id


def lookup(conn: Any, *, provider: str, dedupe_key: str) -> tuple[int, str, int | None] | None:
    """Return ``(id, status, response_status)`` of a stored delivery, or ``None``."""
    row = conn.execute(
        sa.select(webhook_events.c.id, webhook_events.c.status, webhook_events.c.response_status).where(
            webhook_events.c.provider == provider, webhook_events.c.dedupe_key == dedupe_key
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def set_response_status(conn: Any, inbox_id: int, response_status: int) -> None:
    """Record the status code a handler answered with, when it is not 200 (same transaction)."""
    conn.execute(
        sa.update(webhook_events).where(webhook_events.c.id == inbox_id).values(response_status=response_status)
    )


def record_outcome(
    conn: Any,
    *,
    status: str,
    provider: str,
    dedupe_key: str,
    endpoint: str,
    received_at: dt.datetime,
    headers: Mapping[str, str],
    payload: str,
    processed_at: dt.datetime,
    response_status: int,
    error: str | None,
) -> None:
    """Record a delivery whose handler transaction was rolled back (``failed`` or ``ignored``).

    Runs in a transaction of its own after the rollback. It never overwrites a row that a
    concurrent retry has meanwhile processed: only a missing or ``failed`` row is written.
    """
    if status not in ("failed", "ignored"):
        raise ValueError(f"record_outcome writes 'failed' or 'ignored', not {status!r}")
    error = error[:MAX_ERROR_LENGTH] if error else error
    stmt = _insert(conn).values(
        provider=provider,
        dedupe_key=dedupe_key,
        endpoint=endpoint,
        received_at=received_at,
        headers=dict(headers),
        payload=payload,
        status=status,
        attempts=1,
        processed_at=processed_at,
        response_status=response_status,
        error=error,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["provider", "dedupe_key"],
        set_={
            "status": status,
            "processed_at": processed_at,
            "response_status": response_status,
            "error": error,
        },
        where=webhook_events.c.status == "failed",
    )
    conn.execute(stmt)


def purge_batch(conn: Any, *, cutoff: dt.datetime, batch_size: int) -> int:
    """Delete up to ``batch_size`` deliveries received before ``cutoff``; return how many."""
    ids = (
        sa.select(webhook_events.c.id)
        .where(webhook_events.c.received_at < cutoff)
        .order_by(webhook_events.c.id)
        .limit(batch_size)
    )
    if dialect_name(conn) == "postgresql":
        # Rows being purged by a concurrent run are skipped instead of waited for.
        ids = ids.with_for_update(skip_locked=True)
    result = conn.execute(sa.delete(webhook_events).where(webhook_events.c.id.in_(ids.scalar_subquery())))
    return int(result.rowcount or 0)


def create_tables(bind: Any) -> None:
    """Create the ``webhook_events`` table (and its indexes) if missing, on a sync engine/connection."""
    metadata.create_all(bind, tables=[webhook_events])


async def acreate_tables(bind: Any) -> None:
    """Create the ``webhook_events`` table on an ``AsyncEngine``."""
    async with bind.begin() as conn:
        await conn.run_sync(lambda sync_conn: metadata.create_all(sync_conn, tables=[webhook_events]))
