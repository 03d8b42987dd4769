"""Deleting expired ``Idempotency-Key`` records in bounded batches.

Expired keys are also reused in place when a client sends them again, so purging only
bounds the table's size; run it from a scheduled job.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .._core.clock import SYSTEM_CLOCK, Clock
from .._sql import check_engine_kind
from ..errors import ConfigurationError
from . import _store

_SYNC_CALL, _ASYNC_CALL = "purge_expired_keys", "apurge_expired_keys(...)"

__all__ = ["purge_expired_keys", "apurge_expired_keys"]


def _now(clock: Clock, batch_size: int) -> dt.datetime:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
    return dt.datetime.fromtimestamp(clock.time(), dt.UTC)


def purge_expired_keys(engine: Any, *, batch_size: int = 1000, clock: Clock = SYSTEM_CLOCK) -> int:
    """Delete expired keys, ``batch_size`` per transaction, on a sync ``Engine``; return how many.

    Raises:
        ConfigurationError: ``batch_size`` is not positive, or ``engine`` is an
            ``AsyncEngine`` (use :func:`apurge_expired_keys`).
    """
    check_engine_kind(engine, want_async=False, sync_call=_SYNC_CALL, async_call=_ASYNC_CALL)
    now = _now(clock, batch_size)
    total = 0
    while True:
        with engine.begin() as conn:
            deleted = _store.purge_batch(conn, now=now, batch_size=batch_size)
        total += deleted
        if deleted < batch_size:
            return total


async def apurge_expired_keys(engine: Any, *, batch_size: int = 1000, clock: Clock = SYSTEM_CLOCK) -> int:
    """The async twin of :func:`purge_expired_keys`, for an ``AsyncEngine``."""
    check_engine_kind(engine, want_async=True, sync_call=_SYNC_CALL, async_call=_ASYNC_CALL)
    now = _now(clock, batch_size)
    total = 0
    while True:
        async with engine.begin() as conn:
            deleted: int = await conn.run_sync(lambda c: _store.purge_batch(c, now=now, batch_size=batch_size))
        total += deleted
        if deleted < batch_size:
            return total
