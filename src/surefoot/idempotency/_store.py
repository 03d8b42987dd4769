"""The ``idempotency_keys`` table and every statement the middleware issues, kept together.

Each function takes a synchronous ``Connection`` inside a transaction; on an async engine
they run through ``AsyncConnection.run_sync``. Claiming a key is one
``INSERT ... ON CONFLICT (scope, key) DO NOTHING RETURNING id``: of two concurrent requests
with the same key exactly one gets a row back (PostgreSQL makes the second wait for the
first's commit; SQLite serialises writers).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .._core.extras import require
from .._sql import dialect_name, metadata

sa = require("sqlalchemy", "sql")

__all__ = ["idempotency_keys", "Claim", "claim", "complete", "release", "purge_batch", "create_tables", "acreate_tables"]

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(255), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("response_status", sa.Integer(), nullable=True),
    sa.Column("response_headers", sa.JSON(), nullable=True),
    sa.Column("response_body", sa.LargeBinary(), nullable=True),
    sa.UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
    sa.CheckConstraint("status IN ('in_progress', 'completed')", name="ck_idempotency_keys_status"),
    sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
)


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands datetimes back without an offset; everything is stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Claim:
    """What claiming a key found.

    ``outcome`` is ``"new"`` (this request owns the key: run it), ``"mismatch"`` (the key was
    used with another payload), ``"in_progress"`` (the original is still running) or
    ``"completed"`` (replay ``status``/``headers``/``body``).
    """

    outcome: str
    row_id: int | None = None
    status: int | None = None
    headers: list[list[str]] | None = None
    body: bytes | None = None


def _insert(conn: Any) -> Any:
    if dialect_name(conn) == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(idempotency_keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(idempotency_keys)


def claim(
    conn: Any,
    *,
    scope: str,
    key: str,
    fingerprint: str,
    method: str,
    path: str,
    now: dt.datetime,
    lock_for: dt.timedelta,
    ttl: dt.timedelta,
) -> Claim:
    """Claim ``(scope, key)`` for a request, or say why it cannot run.

    A key whose record expired is reused; an ``in_progress`` record whose lock ran out (its
    process died) is taken over when the payload is the same.
    """
    fresh = {
        "fingerprint": fingerprint,
        "method": method,
        "path": path,
        "status": "in_progress",
        "created_at": now,
        "locked_until": now + lock_for,
        "expires_at": now + ttl,
        "response_status": None,
        "response_headers": None,
        "response_body": None,
    }
    stmt = (
        _insert(conn)
        .values(scope=scope, key=key, **fresh)
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(idempotency_keys.c.id)
    )
    row_id = conn.execute(stmt).scalar_one_or_none()
    if row_id is not None:
        return Claim("new", row_id)
    c = idempotency_keys.c
    row = conn.execute(
        sa.select(c.id, c.fingerprint, c.status, c.locked_until, c.expires_at, c.response_status, c.response_headers, c.response_body)
        .where(c.scope == scope, c.key == key)
    ).first()
    if row is None:
        # Purged between our insert and select: the original is finishing; ask to retry.
        return Claim("in_progress")
    if _aware(row.expires_at) <= now:
        taken = conn.execute(
            sa.update(idempotency_keys).where(c.id == row.id, c.expires_at <= now).values(**fresh)
        ).rowcount
        return Claim("new", row.id) if taken == 1 else Claim("in_progress")
    if row.fingerprint != fingerprint:
        return Claim("mismatch", row.id)
    if row.status == "completed":
        return Claim("completed", row.id, row.response_status, row.response_headers, row.response_body)
    if _aware(row.locked_until) <= now:
        taken = conn.execute(
            sa.update(idempotency_keys)
            .where(c.id == row.id, c.status == "in_progress", c.locked_until <= now)
            .values(locked_until=now + lock_for)
        ).rowcount
        if taken == 1:
            return Claim("new", row.id)
    return Claim("in_progress", row.id)


def complete(
    conn: Any, row_id: int, *, status: int, headers: list[list[str]], body: bytes, expires_at: dt.datetime
) -> None:
    """Store the response of a finished request for replay."""
    conn.execute(
        sa.update(idempotency_keys)
        .where(idempotency_keys.c.id == row_id)
        .values(status="completed", response_status=status, response_headers=headers, response_body=body, expires_at=expires_at)
    )


def release(conn: Any, row_id: int) -> None:
    """Forget an unfinished claim so the client may retry with the same key."""
    conn.execute(
        sa.delete(idempotency_keys).where(idempotency_keys.c.id == row_id, idempotency_keys.c.status == "in_progress")
    )


def purge_batch(conn: Any, *, now: dt.datetime, batch_size: int) -> int:
    """Delete up to ``batch_size`` expired keys; return how many."""
    ids = (
        sa.select(idempotency_keys.c.id)
        .where(idempotency_keys.c.expires_at < now)
        .order_by(idempotency_keys.c.id)
        .limit(batch_size)
    )
    result = conn.execute(sa.delete(idempotency_keys).where(idempotency_keys.c.id.in_(ids.scalar_subquery())))
    return int(result.rowcount or 0)


def create_tables(bind: Any) -> None:
    """Create ``idempotency_keys`` if missing (sync engine or connection)."""
    metadata.create_all(bind, tables=[idempotency_keys])


async def acreate_tables(bind: Any) -> None:
    """Create ``idempotency_keys`` on an ``AsyncEngine``."""
    async with bind.begin() as conn:
        await conn.run_sync(lambda sync_conn: metadata.create_all(sync_conn, tables=[idempotency_keys]))
