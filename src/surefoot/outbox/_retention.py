"""Retention: delete events dispatched more than ``retention_days`` ago, in short batches.

A running dispatcher applies it every ``retention_interval_seconds``; ``surefoot outbox
purge`` runs the same :func:`apply_retention` on demand. Each batch is its own short transaction, so retention
never holds long locks or bloats one transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from ._dispatcher import Dispatcher

__all__ = ["apply_retention", "retention_loop"]

_log = structlog.get_logger("surefoot.outbox")


async def apply_retention(
    run: Callable[..., Awaitable[Any]],
    delete_batch: Callable[..., int],
    *,
    before: dt.datetime,
    batch_size: int,
) -> int:
    """Call ``run(delete_batch, before=..., limit=...)`` until a batch comes back short."""
    total = 0
    while True:
        n: int = await run(delete_batch, before=before, limit=batch_size)
        total += n
        if n < batch_size:
            return total


async def retention_loop(d: Dispatcher) -> None:
    interval = d.settings.retention_interval_seconds
    while not d._stopping:
        try:
            await d.apply_retention()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # retention retries at the next interval
            d._db_error("retention", exc)
            _log.warning("outbox_retention_failed", error_type=type(exc).__name__, error_message=str(exc)[:300])
        await d._sleep(interval)
