"""surefoot's SLO tables: pending event pairs and shared per-minute counts (SQLAlchemy Core).

Both live on :data:`surefoot._sql.metadata`, so Alembic picks them up. :func:`migrate` (and
``surefoot slo migrate --url``) creates them directly.

``surefoot_slo_pairs``: one row per started pair, keyed by ``(slo, key)``. ``finished_at`` and
``outcome`` are set by the first finish (or by the sweeper once the deadline passed);
``counted`` turns true when the sweeper has counted the outcome. Times are epoch seconds
(double precision) taken from the recording process's clock.

``surefoot_slo_counts``: ``(slo, minute, series) -> value``, where ``series`` is ``good``,
``bad`` or ``le:<bound>`` (a non-cumulative histogram bucket, kept one hour). Every process
adds its own increments (``INSERT ... ON CONFLICT DO UPDATE SET value = value + ...``), so the
sums are correct across any number of worker processes.
"""

from __future__ import annotations

from typing import Any

from .._core.extras import require

require("sqlalchemy", "sql")

import sqlalchemy as sa  # noqa: E402 - after require(), so a missing extra is named

from .._sql import dialect_name, metadata  # noqa: E402
from ..errors import ConfigurationError  # noqa: E402

__all__ = ["pairs_table", "counts_table", "migrate", "amigrate", "drop", "upsert_add", "insert_ignore"]

_EPOCH = sa.Float(precision=53).with_variant(sa.Double(), "postgresql")

pairs_table = sa.Table(
    "surefoot_slo_pairs",
    metadata,
    sa.Column("slo", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("started_at", _EPOCH, nullable=False),
    sa.Column("deadline_at", _EPOCH, nullable=False),
    sa.Column("finished_at", _EPOCH, nullable=True),
    sa.Column("outcome", sa.String(8), nullable=True),
    sa.Column("counted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_surefoot_slo_pairs_deadline", "outcome", "deadline_at"),
    sa.Index("ix_surefoot_slo_pairs_counted", "counted", "finished_at"),
)

counts_table = sa.Table(
    "surefoot_slo_counts",
    metadata,
    sa.Column("slo", sa.String(64), primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("series", sa.String(40), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

_TABLES = [pairs_table, counts_table]


def _sync_engine(engine: Any) -> Any:
    if isinstance(engine, str):
        return sa.create_engine(engine)
    if type(engine).__name__ in ("AsyncEngine", "AsyncConnection"):
        raise ConfigurationError("slo.migrate() takes a sync Engine; with an AsyncEngine use `await slo.amigrate(engine)`")
    return engine


def migrate(engine: Any) -> None:
    """Create ``surefoot_slo_pairs`` and ``surefoot_slo_counts`` if they do not exist.

    Args:
        engine: a SQLAlchemy ``Engine`` or ``Connection`` (or a database URL).
    """
    bind = _sync_engine(engine)
    metadata.create_all(bind, tables=_TABLES)


async def amigrate(engine: Any) -> None:
    """Async twin of :func:`migrate` for an ``AsyncEngine``."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: metadata.create_all(c, tables=_TABLES))


def drop(engine: Any) -> None:
    """Drop surefoot's SLO tables (tests and teardown)."""
    metadata.drop_all(_sync_engine(engine), tables=_TABLES)


def _insert(conn: Any, table: sa.Table) -> Any:
    name = dialect_name(conn)
    if name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    raise ConfigurationError(f"surefoot.slo supports PostgreSQL and SQLite; got the {name!r} dialect")


def insert_ignore(conn: Any, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the connection's dialect."""
    return _insert(conn, table).on_conflict_do_nothing()


def upsert_add(conn: Any) -> Any:
    """``INSERT INTO counts ... ON CONFLICT (slo, minute, series) DO UPDATE SET value = value + excluded.value``."""
    stmt = _insert(conn, counts_table)
    return stmt.on_conflict_do_update(
        index_elements=[counts_table.c.slo, counts_table.c.minute, counts_table.c.series],
        set_={"value": counts_table.c.value + stmt.excluded.value},
    )
