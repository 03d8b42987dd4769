"""Retention for any table: delete rows older than a period in bounded batches.

    from surefoot.retention import RetentionRule, arun_retention

    rules = [RetentionRule(messages, "created_at", days=180),
             RetentionRule(webhook_events_table, "received_at", days=90)]
    deleted = await arun_retention(engine, rules, batch_size=1000)   # {"messages": 12, ...}

Each batch is one short transaction deleting at most ``batch_size`` rows chosen by primary
key (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two purges never wait for each other and
live writers are not blocked for long); a run can be interrupted at any point.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._core.clock import SYSTEM_CLOCK, Clock
from ._core.extras import require
from .errors import ConfigurationError

__all__ = ["RetentionRule", "arun_retention", "purge_batch", "run_retention"]


@dataclass(frozen=True)
class RetentionRule:
    """Rows of ``table`` whose ``column`` is older than ``days`` are deleted.

    Args:
        table: a SQLAlchemy ``Table`` with a primary key.
        column: the timestamp column compared with the cut-off.
        days: the retention period in days (may be fractional; must be positive).
        where: an extra SQLAlchemy condition (e.g. ``table.c.dispatched_at.is_not(None)``).
        name: the key in the returned counts (default: the table's name).
    """

    table: Any
    column: str
    days: float
    where: Any = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not hasattr(self.table, "primary_key") or not hasattr(self.table, "c"):
            raise ConfigurationError(f"retention: table must be a SQLAlchemy Table, got {self.table!r}")
        days = self.days
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not math.isfinite(days) or days <= 0:
            raise ConfigurationError(
                f"retention of {self.table.name}: days must be positive, got {days!r} (a number of days, e.g. 30)"
            )
        if not isinstance(self.column, str):
            name = getattr(self.column, "name", None)
            hint = f" (give the column's name, {name!r})" if isinstance(name, str) else ""
            raise ConfigurationError(
                f"retention of {self.table.name}: column must be a column name, got {self.column!r}{hint}"
            )
        if self.column not in self.table.c:
            raise ConfigurationError(f"retention of {self.table.name}: no column {self.column!r}")
        if not list(self.table.primary_key.columns):
            raise ConfigurationError(f"retention of {self.table.name}: the table needs a primary key")

    @property
    def key(self) -> str:
        return self.name or self.table.name


def _cutoff(rule: RetentionRule, clock: Clock) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock.time(), dt.UTC) - dt.timedelta(days=rule.days)


def _delete_statement(rule: RetentionRule, dialect: str, cutoff: dt.datetime, batch_size: int) -> Any:
    sa = require("sqlalchemy", "sql")
    table = rule.table
    pk = list(table.primary_key.columns)
    condition = table.c[rule.column] < cutoff
    if rule.where is not None:
        condition = sa.and_(condition, rule.where)
    picked = sa.select(*pk).where(condition).limit(batch_size)
    if dialect == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    if len(pk) == 1:
        return table.delete().where(pk[0].in_(picked.scalar_subquery()))
    return table.delete().where(sa.tuple_(*pk).in_(picked))


def purge_batch(conn: Any, rule: RetentionRule, *, batch_size: int = 1000, clock: Clock = SYSTEM_CLOCK) -> Any:
    """Delete one batch in the caller's transaction; returns the result (await it on async).

    Works on a sync ``Connection`` (returns the deleted count) and on an
    ``AsyncConnection`` (returns an awaitable of it).
    """
    statement = _delete_statement(rule, conn.dialect.name, _cutoff(rule, clock), batch_size)
    result = conn.execute(statement)
    if hasattr(result, "__await__"):
        async def count() -> int:
            return int((await result).rowcount)
        return count()
    return result.rowcount


_SYNC_CALL, _ASYNC_CALL = "run_retention(engine, rules)", "arun_retention(engine, rules)"


def _validate(batch_size: int, rules: Iterable[RetentionRule]) -> list[RetentionRule]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError("batch_size must be at least 1")
    rules = list(rules)
    for rule in rules:
        if not isinstance(rule, RetentionRule):
            raise ConfigurationError(f"expected RetentionRule objects, got {rule!r}")
    return rules


def run_retention(
    engine: Any, rules: Iterable[RetentionRule], *, batch_size: int = 1000,
    max_batches: int | None = None, clock: Clock = SYSTEM_CLOCK,
) -> dict[str, int]:
    """Apply each rule with a sync ``Engine``: batches of ``batch_size`` until none is left.

    Args:
        engine: a sync SQLAlchemy ``Engine``.
        rules: what to delete.
        batch_size: rows per transaction.
        max_batches: at most this many batches per rule per run (``None``: until done).
        clock: the time source (the cut-off is taken once per rule).

    Returns:
        Rows deleted per rule key (rules sharing a key add up).

    Raises:
        ConfigurationError: a bad batch size or rule, or an ``AsyncEngine`` (use
            :func:`arun_retention`).
    """
    from ._sql import check_engine_kind

    check_engine_kind(engine, want_async=False, sync_call=_SYNC_CALL, async_call=_ASYNC_CALL)
    counts: dict[str, int] = {}
    for rule in _validate(batch_size, rules):
        statement = _delete_statement(rule, engine.dialect.name, _cutoff(rule, clock), batch_size)
        total = batches = 0
        while max_batches is None or batches < max_batches:
            with engine.begin() as conn:
                deleted = conn.execute(statement).rowcount
            total += deleted
            batches += 1
            if deleted < batch_size:
                break
        counts[rule.key] = counts.get(rule.key, 0) + total
    return counts


async def arun_retention(
    engine: Any, rules: Iterable[RetentionRule], *, batch_size: int = 1000,
    max_batches: int | None = None, clock: Clock = SYSTEM_CLOCK,
) -> dict[str, int]:
    """:func:`run_retention` for an ``AsyncEngine``."""
    from ._sql import check_engine_kind

    check_engine_kind(engine, want_async=True, sync_call=_SYNC_CALL, async_call=_ASYNC_CALL)
    counts: dict[str, int] = {}
    for rule in _validate(batch_size, rules):
        statement = _delete_statement(rule, engine.dialect.name, _cutoff(rule, clock), batch_size)
        total = batches = 0
        while max_batches is None or batches < max_batches:
            async with engine.begin() as conn:
                deleted = (await conn.execute(statement)).rowcount
            total += deleted
            batches += 1
            if deleted < batch_size:
                break
        counts[rule.key] = counts.get(rule.key, 0) + total
    return counts
