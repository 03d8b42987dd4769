"""Retention of the inbox: deliveries older than 90 days are deleted in bounded batches.

Each batch is its own short transaction, so a purge never holds locks on a large part of the
table and can be interrupted at any point. Run it from a scheduled job, or from the command
line: ``surefoot webhooks purge --url URL [--older-than 90d] [--batch-size 1000] --yes``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .._core.clock import SYSTEM_CLOCK, Clock
from .._sql import check_engine_kind
from ..errors import ConfigurationError
from . import _store

_SYNC_CALL, _ASYNC_CALL = "purge_webhook_events", "apurge_webhook_events(...)"

__all__ = ["purge_webhook_events", "apurge_webhook_events", "DEFAULT_RETENTION"]

DEFAULT_RETENTION = dt.timedelta(days=90)


def _cutoff(older_than: dt.timedelta, batch_size: int, clock: Clock) -> dt.datetime:
    if not isinstance(older_than, dt.timedelta) or older_than <= dt.timedelta(0):
        raise ConfigurationError(f"older_than must be a positive duration, e.g. timedelta(days=90), got {older_than!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
    return dt.datetime.fromtimestamp(clock.time(), dt.UTC) - older_than


def purge_webhook_events(
    engine: Any,
    *,
    older_than: dt.timedelta = DEFAULT_RETENTION,
    batch_size: int = 1000,
    max_batches: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Delete inbox rows received more than ``older_than`` ago, ``batch_size`` rows per transaction.

    Args:
        engine: a sync SQLAlchemy ``Engine``.
        older_than: the retention period (default 90 days).
        batch_size: rows deleted per transaction.
        max_batches: stop after this many batches (``None``: until nothing is left).
        clock: the time source.

    Returns:
        The number of rows deleted.

    Raises:
        ConfigurationError: ``older_than`` or ``batch_size`` is not positive, or ``engine``
            is an ``AsyncEngine`` (use :func:`apurge_webhook_events`).
    """
    check_engine_kind(engine, want_async=False, sync_call=_SYNC_CALL, async_call=_ASYNC_CALL)
    cutoff = _cutoff(older_than, batch_size, clock)
    total = batches = 0
    while max_batches is None or batches < max_batches:
        with engine.begin() as conn:
            deleted = _store.purge_batch(conn, cutoff=cutoff, batch_size=batch_size)
        total += deleted
        batches += 1
        if deleted < batch_size:
            break
    return total


async def apurge_webhook_events(
    engine: Any,
    *,
    older_than: dt.timedelta = DEFAULT_RETENTION,
    batch_size: int = 1000,
    max_batches: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """The async twin of :func:`purge_webhook_events`, for an ``AsyncEngine``."""
    check_engine_kind(engine, want_async=True, sync_call=_SYNC_CALL, async_call=_ASYNC_CALL)
    cutoff = _cutoff(older_than, batch_size, clock)
    total = batches = 0
    while max_batches is None or batches < max_batches:
        async with engine.begin() as conn:
            deleted = await conn.run_sync(lambda c: _store.purge_batch(c, cutoff=cutoff, batch_size=batch_size))
        total += deleted
        batches += 1
        if deleted < batch_size:
            break
    return total
