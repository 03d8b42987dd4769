"""How a dispatcher learns that events arrived: PostgreSQL ``LISTEN`` and SQLite's
``PRAGMA data_version`` watch. Both are hints; polling every ``poll_interval_seconds`` stays
the safety net.

The ``LISTEN`` connection is idle most of the time, so a silently dead connection would go
unnoticed: every ``listen_check_interval_seconds`` it must answer a ``SELECT 1`` within
``db_timeout_seconds``, or it is closed and opened again (connecting is bounded too), with
every worker woken once reconnected in case notifications were lost meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from .._core.extras import require
from ._database import DatabaseTimeout, pg_connect_args

if TYPE_CHECKING:
    from ._dispatcher import Dispatcher

__all__ = ["listen", "watch_sqlite", "within"]

_log = structlog.get_logger("surefoot.outbox")
T = TypeVar("T")


def _forget(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _close_late(task: asyncio.Future[Any]) -> None:
    """A connection that arrived after its deadline: close it instead of leaking it."""
    if task.cancelled() or task.exception() is not None:
        return
    asyncio.ensure_future(task.result().close()).add_done_callback(_forget)


async def within(awaitable: Awaitable[T], seconds: float, what: str, *, connects: bool = False) -> T:
    """Await ``awaitable`` in a task of its own for at most ``seconds``.

    Past the deadline the task is cancelled and left to end on its own (a driver may take a
    while to give up a dead socket), and :class:`DatabaseTimeout` is raised at once.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait([task], timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_close_late if connects else _forget)
        raise DatabaseTimeout(f"{what} did not finish within {seconds:g} s (db_timeout_seconds)")
    return task.result()


async def listen(d: Dispatcher) -> None:
    """Wake a worker on each ``NOTIFY surefoot_outbox``; reconnect when the connection dies."""
    psycopg = require("psycopg", "postgres")
    from ._schema import NOTIFY_CHANNEL

    db = d._db
    conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    timeout = d.settings.db_timeout_seconds
    check = d.settings.listen_check_interval_seconds
    extra = pg_connect_args(timeout)
    extra.pop("options", None)  # LISTEN runs no statement worth a server-side limit
    delay = 0.2
    while not d._stopping:
        conn: Any = None
        try:
            conn = await within(
                psycopg.AsyncConnection.connect(conninfo, autocommit=True, **extra), timeout, "LISTEN connect",
                connects=True,
            )
            await within(conn.execute(f"LISTEN {NOTIFY_CHANNEL}"), timeout, "LISTEN")
            delay = 0.2
            d._wake_all()  # events may have arrived while we were not listening
            d._mark_db_ok()
            _log.info("outbox_listen_connected", channel=NOTIFY_CHANNEL)
            while not d._stopping:
                async for _ in conn.notifies(timeout=check):
                    d.wake()
                # quiet for a while: prove the connection still answers
                await within(conn.execute("SELECT 1"), timeout, "LISTEN health probe")
                d._mark_db_ok()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # LISTEN is only a hint: polling goes on; reconnect soon
            d._db_error("listen", exc)
            _log.warning(
                "outbox_listen_failed",
                error_type=type(exc).__name__,
                error_message=str(exc)[:300],
                retry_in_seconds=delay,
            )
        finally:
            if conn is not None:
                try:
                    await conn.close()  # local: frees the socket without a round trip
                except Exception:  # already broken: nothing more to do
                    pass
        if not d._stopping:
            await d._sleep(delay)
            delay = min(delay * 2, 5.0)


async def watch_sqlite(d: Dispatcher) -> None:
    """SQLite has no NOTIFY: watch ``PRAGMA data_version``, which changes whenever another
    connection (this process or another) commits to the file, and wake a worker."""
    import sqlite3

    database = d._db.url.database
    if not database or database == ":memory:" or database.startswith("file::memory"):
        return
    interval = d.settings.sqlite_watch_interval_seconds
    watcher = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
    try:
        last = watcher.execute("PRAGMA data_version").fetchone()[0]
        while not d._stopping:
            await d._sleep(interval)
            # microseconds: it reads a counter in the WAL index, no lock waits
            version = watcher.execute("PRAGMA data_version").fetchone()[0]
            if version != last:
                last = version
                d.wake()
    finally:
        watcher.close()
