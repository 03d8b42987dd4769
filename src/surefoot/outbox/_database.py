"""Database access of the SQL store: short transactions under a deadline.

Every operation of a dispatcher (a worker's claim/settle cycle, stats, the kill switch,
retention, releases) runs under ``db_timeout_seconds``. On PostgreSQL with an async engine
the operation runs in a task of its own: when the deadline passes, the connection is given
up at once (the task is cancelled and its connection invalidated in the background), so a
connection whose bytes are black-holed by a lost NAT or firewall entry becomes an error
within the deadline instead of a hang. Engines the dispatcher builds from a URL also get
libpq's ``connect_timeout``, TCP keepalives, ``tcp_user_timeout`` and a server-side
``statement_timeout``.

Sync engines (SQLite, or a sync PostgreSQL engine) run in a small thread pool of their own,
apart from the threads of sync handlers, so a hung handler can never take the database
threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

import structlog

from .._core.extras import require
from ..errors import ConfigurationError
from ._urls import async_url, sync_url

__all__ = ["Database", "Connection", "DatabaseTimeout", "pg_connect_args"]

_log = structlog.get_logger("surefoot.outbox")


class DatabaseTimeout(TimeoutError):
    """A database operation of the dispatcher did not finish within ``db_timeout_seconds``."""


def pg_connect_args(db_timeout: float) -> dict[str, Any]:
    """libpq parameters that turn a silently dead connection into an error.

    ``connect_timeout`` bounds connecting; keepalives probe an idle connection (dead after
    about ``idle + count * interval`` seconds); ``tcp_user_timeout`` drops a connection
    whose sent data stays unacknowledged; ``statement_timeout`` stops a statement on the
    server.
    """
    seconds = max(1, int(round(db_timeout)))
    return {
        "connect_timeout": seconds,
        "keepalives": 1,
        "keepalives_idle": seconds,
        "keepalives_interval": max(1, seconds // 3),
        "keepalives_count": 3,
        "tcp_user_timeout": seconds * 1000,
        "options": f"-c statement_timeout={seconds * 1000}",
    }


def _forget(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned operation's outcome so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


class Connection:
    """One connection kept by a worker for its lifetime (no pool checkout per batch)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn: Any = None
        self._busy: asyncio.Future[Any] | None = None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        lock = self.db.write_lock
        if lock is None:
            return await self._run(fn, *args)
        # SQLite has one writer: queueing our own workers here is cheaper than letting them
        # collide in SQLite's busy handler, which sleeps in steps of milliseconds
        async with lock:
            return await self._run(fn, *args)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        timeout = self.db.timeout
        if self.db.is_async:
            task = asyncio.ensure_future(self._run_async(fn, args))
            try:
                done, _ = await asyncio.wait([task], timeout=timeout)
            except asyncio.CancelledError:
                task.cancel()
                raise
            if not done:
                # the connection is stuck (black-holed bytes): give it up now; the task
                # finishes in the background and its connection is invalidated
                task.cancel()
                task.add_done_callback(_forget)
                conn, self.conn = self.conn, None
                if conn is not None:
                    asyncio.ensure_future(_invalidate(conn, task)).add_done_callback(_forget)
                raise DatabaseTimeout(f"database operation did not finish within {timeout:g} s (db_timeout_seconds)")
            return task.result()
        # a cancelled await cannot stop the thread: remember it so close() waits for it
        loop = asyncio.get_running_loop()
        self._busy = loop.run_in_executor(self.db.threads, self._run_sync, fn, args)
        try:
            return await asyncio.wait_for(asyncio.shield(self._busy), timeout)
        except TimeoutError:
            # the thread cannot be interrupted: abandon it and its connection
            busy, self._busy = self._busy, None
            self.conn = None
            if busy is not None:
                busy.add_done_callback(_forget)
            raise DatabaseTimeout(
                f"database operation did not finish within {timeout:g} s (db_timeout_seconds)"
            ) from None

    async def _run_async(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self.conn is None:
            self.conn = await self.db.engine.connect()
            if self.db.autocommit:
                await self.conn.execution_options(isolation_level="AUTOCOMMIT")
        if self.db.autocommit:
            return await self.conn.run_sync(fn, *args)
        async with self.conn.begin():
            return await self.conn.run_sync(fn, *args)

    def _run_sync(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self.conn is None:
            self.conn = self.db.engine.connect()
            if self.db.autocommit:
                self.conn = self.conn.execution_options(isolation_level="AUTOCOMMIT")
        if self.db.autocommit:
            return fn(self.conn, *args)
        with self.conn.begin():
            return fn(self.conn, *args)

    async def settle_after_cancel(self) -> Any:
        """After a cancelled :meth:`run` on a sync engine, wait (bounded) for the thread and
        return its result (``None`` if it failed), so claims it made can be released."""
        busy = self._busy
        if busy is None:
            return None
        if not busy.done():
            await asyncio.wait([busy], timeout=self.db.timeout)
            if not busy.done():
                return None
        if busy.cancelled() or busy.exception() is not None:
            return None
        return busy.result()

    async def reset(self) -> None:
        """Drop the connection after an error; the next run opens a fresh one."""
        await self.close()

    async def close(self) -> None:
        busy, self._busy = self._busy, None
        if busy is not None and not busy.done():
            await asyncio.wait([busy], timeout=self.db.timeout)
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            if self.db.is_async:
                async with asyncio.timeout(self.db.timeout):
                    await conn.close()
            else:
                await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self.db.threads, conn.close),
                                       self.db.timeout)
        except Exception as exc:  # closing a broken connection: nothing more to do than say so
            _log.warning("outbox_connection_close_failed", error_message=str(exc)[:300])


async def _invalidate(conn: Any, task: asyncio.Future[Any]) -> None:
    await asyncio.wait([task])
    try:
        await conn.invalidate()
    except Exception:  # already broken: invalidating is best effort
        pass
    try:
        await conn.close()
    except Exception:  # already broken: closing is best effort
        pass


class Database:
    """Runs store functions in short transactions on a sync or async SQLAlchemy engine.

    Args:
        bind: URL, ``Engine`` or ``AsyncEngine``.
        timeout: ``db_timeout_seconds``.
        threads: size of the thread pool of a sync engine.
    """

    def __init__(self, bind: Any, *, timeout: float = 10.0, threads: int = 4) -> None:
        require("sqlalchemy", "sql")
        import sqlalchemy as sa
        from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

        self.timeout = timeout
        self.owned = False
        self.engine: Any
        if isinstance(bind, (str, sa.engine.URL)):
            url = sa.engine.make_url(sync_url(bind))
            if url.get_backend_name() == "sqlite":
                # SQLite runs in-process: one thread hop per transaction (sync engine in a
                # worker thread) beats aiosqlite's hop per operation
                bind = sa.create_engine(url)
            else:
                aurl = sa.engine.make_url(async_url(bind))
                connect_args: dict[str, Any] = {}
                if aurl.get_backend_name() == "postgresql" and aurl.get_driver_name() == "psycopg":
                    connect_args = pg_connect_args(timeout)
                elif aurl.get_backend_name() == "postgresql" and aurl.get_driver_name() == "asyncpg":
                    seconds = max(1, int(round(timeout)))  # asyncpg: no libpq keepalive knobs
                    connect_args = {"timeout": seconds,
                                    "server_settings": {"statement_timeout": str(seconds * 1000)}}
                bind = create_async_engine(aurl, connect_args=connect_args)
            self.owned = True
        if isinstance(bind, AsyncEngine):
            self.engine = bind
            self.is_async = True
            self.url = bind.url
        elif isinstance(bind, sa.engine.Engine):
            self.engine = bind
            self.is_async = False
            self.url = bind.url
        else:
            raise ConfigurationError(
                f"Dispatcher needs a database URL, an Engine or an AsyncEngine, got {bind!r}"
            )
        self.dialect = self.engine.dialect.name
        self._write_lock: asyncio.Lock | None = None
        self._threads_size = threads
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        # PostgreSQL: every statement of a worker cycle (claim, ack, fail, dead-letter) is
        # atomic on its own, so workers run them in autocommit: one round trip each instead
        # of BEGIN + statement + COMMIT. SQLite's dead-lettering takes two statements.
        self.autocommit = self.dialect == "postgresql"

    @property
    def threads(self) -> concurrent.futures.ThreadPoolExecutor:
        """The database threads of a sync engine (never shared with handlers)."""
        if self._threads is None:
            self._threads = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._threads_size, thread_name_prefix="surefoot-outbox-db"
            )
        return self._threads

    @property
    def write_lock(self) -> asyncio.Lock | None:
        if self.dialect != "sqlite":
            return None
        if self._write_lock is None:  # created lazily, on the running loop
            self._write_lock = asyncio.Lock()
        return self._write_lock

    def dedicated(self) -> Connection:
        return Connection(self)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(conn, *args, **kwargs)`` in one transaction, under the deadline."""
        if self.is_async:
            task = asyncio.ensure_future(self._run_async(fn, args, kwargs))
            try:
                done, _ = await asyncio.wait([task], timeout=self.timeout)
            except asyncio.CancelledError:
                task.cancel()
                raise
            if not done:
                task.cancel()
                task.add_done_callback(_forget)
                raise DatabaseTimeout(
                    f"database operation did not finish within {self.timeout:g} s (db_timeout_seconds)"
                )
            return task.result()
        future = asyncio.get_running_loop().run_in_executor(self.threads, self._run_sync, fn, args, kwargs)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            future.add_done_callback(_forget)
            raise DatabaseTimeout(
                f"database operation did not finish within {self.timeout:g} s (db_timeout_seconds)"
            ) from None

    async def _run_async(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        conn = await self.engine.connect()
        try:
            async with conn.begin():
                return await conn.run_sync(fn, *args, **kwargs)
        except BaseException:
            # cancelled (deadline) or failed: this connection's state is unknown; never
            # give it back to the pool
            try:
                await conn.invalidate()
            except Exception:  # already broken: invalidating is best effort
                pass
            raise
        finally:
            try:
                await conn.close()
            except Exception:  # already broken: closing is best effort
                pass

    def _run_sync(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self.engine.begin() as conn:
            return fn(conn, *args, **kwargs)

    disposed = False

    async def dispose(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None
        if self.owned:
            self.disposed = True
            if self.is_async:
                try:
                    async with asyncio.timeout(self.timeout):
                        await self.engine.dispose()
                except TimeoutError:
                    _log.warning("outbox_engine_dispose_timed_out", timeout_seconds=self.timeout)
            else:
                self.engine.dispose()
