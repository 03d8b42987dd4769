"""The outbox dispatcher: claim due events, deliver them, settle the outcome.

At least once: an event leaves the table only after its destinations accepted it. A claim is
a lease (``lease_seconds``): if the dispatcher dies, its events come back when the lease ends;
acks, failures and releases are guarded by the claim token, so a dispatcher whose lease ran
out can no longer touch events someone else reclaimed. Attempts are counted when an event is
claimed, so even an event that crashes its dispatcher every time ends in the dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import structlog

from .._clock import SYSTEM_CLOCK, Clock
from .._config import load_settings
from .._extras import require
from ..errors import ConfigurationError
from ..metrics import _catalogue as cat
from ._backoff import Backoff, FullJitter
from ._event import Event, RetryLater, Sink, SinkDisabled, SinkError
from ._routing import Router, default_router
from ._settings import OutboxSettings
from ._urls import async_url, sync_url

__all__ = ["Dispatcher"]

_log = structlog.get_logger("surefoot.outbox")


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Plan:
    """What to write back for one delivered batch."""

    __slots__ = ("token", "ok", "failed", "dead")

    def __init__(self, token: str) -> None:
        self.token = token
        self.ok: list[int] = []
        self.failed: list[tuple[int, dt.datetime, str]] = []
        self.dead: list[tuple[Any, str]] = []


class _Connection:
    """One connection kept by a worker for its lifetime (no pool checkout per batch)."""

    def __init__(self, db: _Database) -> None:
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
        if self.db.is_async:
            if self.conn is None:
                self.conn = await self.db.engine.connect()
                if self.db.autocommit:
                    await self.conn.execution_options(isolation_level="AUTOCOMMIT")
            if self.db.autocommit:
                return await self.conn.run_sync(fn, *args)
            async with self.conn.begin():
                return await self.conn.run_sync(fn, *args)
        # a cancelled await cannot stop the thread: remember it so close() waits for it
        self._busy = asyncio.ensure_future(asyncio.to_thread(self._run_sync, fn, args))
        return await asyncio.shield(self._busy)

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
        """After a cancelled :meth:`run` on a sync engine, wait for the thread and return its
        result (``None`` if it failed), so claims it made can be released."""
        busy = self._busy
        if busy is None:
            return None
        if not busy.done():
            await asyncio.wait([busy])
        if busy.cancelled() or busy.exception() is not None:
            return None
        return busy.result()

    async def reset(self) -> None:
        """Drop the connection after an error; the next run opens a fresh one."""
        await self.close()

    async def close(self) -> None:
        busy, self._busy = self._busy, None
        if busy is not None and not busy.done():
            await asyncio.wait([busy])
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            if self.db.is_async:
                await conn.close()
            else:
                await asyncio.to_thread(conn.close)
        except Exception as exc:  # closing a broken connection: nothing more to do than say so
            _log.warning("outbox_connection_close_failed", error_message=str(exc)[:300])


class _Database:
    """Runs store functions in short transactions on a sync or async SQLAlchemy engine."""

    def __init__(self, bind: Any) -> None:
        require("sqlalchemy", "sql")
        import sqlalchemy as sa
        from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

        self.owned = False
        if isinstance(bind, (str, sa.engine.URL)):
            url = sa.engine.make_url(sync_url(bind))
            if url.get_backend_name() == "sqlite":
                # SQLite runs in-process: one thread hop per transaction (sync engine in a
                # worker thread) beats aiosqlite's hop per operation
                bind = sa.create_engine(url)
            else:
                bind = create_async_engine(async_url(bind))
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
        # PostgreSQL: every statement of a worker cycle (claim, ack, fail, dead-letter) is
        # atomic on its own, so workers run them in autocommit: one round trip each instead
        # of BEGIN + statement + COMMIT. SQLite's dead-lettering takes two statements.
        self.autocommit = self.dialect == "postgresql"

    @property
    def write_lock(self) -> asyncio.Lock | None:
        if self.dialect != "sqlite":
            return None
        if self._write_lock is None:  # created lazily, on the running loop
            self._write_lock = asyncio.Lock()
        return self._write_lock

    def dedicated(self) -> _Connection:
        return _Connection(self)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.is_async:
            async with self.engine.begin() as conn:
                return await conn.run_sync(fn, *args, **kwargs)
        return await asyncio.to_thread(self._run_sync, fn, args, kwargs)

    def _run_sync(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self.engine.begin() as conn:
            return fn(conn, *args, **kwargs)

    disposed = False

    async def dispose(self) -> None:
        if self.owned:
            self.disposed = True
            if self.is_async:
                await self.engine.dispose()
            else:
                self.engine.dispose()


class Dispatcher:
    """Delivers outbox events to handlers and sinks, at least once.

    Run it in a worker (``surefoot outbox run``) or in the application's lifespan::

        dispatcher = Dispatcher(engine)
        async with dispatcher.running():
            yield

    Several dispatchers (processes or hosts) may share one PostgreSQL table: claims use
    ``FOR UPDATE SKIP LOCKED``; on SQLite the single writer serialises them.

    Args:
        bind: a database URL, a SQLAlchemy ``AsyncEngine`` or a sync ``Engine`` (run in a
            thread). A URL gets an async engine the dispatcher owns and disposes.
        router: where events go; default: ``handlers``/``sinks`` if given, else the routes
            registered with :func:`surefoot.outbox.handler`.
        handlers: ``{pattern: handler or [handlers]}`` (builds a router).
        sinks: ``{pattern: sink or [sinks]}`` (builds a router).
        settings: :class:`OutboxSettings`; default: ``SUREFOOT_OUTBOX_*`` from the
            environment, with the keyword overrides below applied.
        batch_size, concurrency, lease_seconds, max_attempts, poll_interval, listen,
            ordering, paused: override the settings of the same name.
        backoff: anything with ``delay(attempts, rng)``; default :class:`FullJitter` from
            the settings.
        clock: time source (deciding what is due, leases, backoff).
        rng: random source for jitter.
        registry: Prometheus registry for the outbox metrics.
        handler_timeout: seconds a batch's deliveries may take before they count as failed
            (default: 80 % of the lease, so an event is never delivered twice concurrently
            because a slow handler outlived its lease).

    Raises:
        ConfigurationError: invalid settings or arguments.
    """

    def __init__(
        self,
        bind: Any,
        *,
        router: Router | None = None,
        handlers: Mapping[str, Any] | None = None,
        sinks: Mapping[str, Any] | None = None,
        settings: OutboxSettings | None = None,
        batch_size: int | None = None,
        concurrency: int | None = None,
        lease_seconds: float | None = None,
        max_attempts: int | None = None,
        poll_interval: float | None = None,
        listen: bool | None = None,
        ordering: bool | None = None,
        paused: Sequence[str] | None = None,
        backoff: Backoff | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        registry: Any = None,
        handler_timeout: float | None = None,
    ) -> None:
        overrides = {
            k: v
            for k, v in {
                "batch_size": batch_size,
                "concurrency": concurrency,
                "lease_seconds": lease_seconds,
                "max_attempts": max_attempts,
                "poll_interval_seconds": poll_interval,
                "listen": listen,
                "ordering": ordering,
                "paused_events": list(paused) if paused is not None else None,
            }.items()
            if v is not None
        }
        if settings is None:
            settings = load_settings(OutboxSettings, **overrides)
        elif overrides:
            settings = settings.model_copy(update=overrides)
        self.settings = settings
        if router is None:
            router = Router.build(handlers=handlers, sinks=sinks) if (handlers or sinks) else default_router
        elif handlers or sinks:
            raise ConfigurationError("pass either router= or handlers=/sinks=, not both")
        self.router = router
        self.backoff: Backoff = backoff or FullJitter(
            base=settings.backoff_base_seconds, cap=settings.backoff_cap_seconds
        )
        self.clock = clock
        self.rng = rng or random.Random()
        self.handler_timeout = handler_timeout if handler_timeout is not None else settings.lease_seconds * 0.8
        self._db = _Database(bind)
        from . import _store

        self._store_mod = _store
        self._paused: set[str] = set(settings.paused_events)
        self._db_paused: frozenset[str] = frozenset()
        self._store = self._make_store()
        self._registry = registry
        self._attempts = cat.OUTBOX_DISPATCH_ATTEMPTS.get(registry)
        self._failures = cat.OUTBOX_DISPATCH_FAILURES.get(registry)
        self._dead = cat.OUTBOX_DEAD_LETTERS.get(registry)
        self._duration = cat.OUTBOX_DISPATCH_DURATION.get(registry)
        self._lag = cat.OUTBOX_DISPATCH_LAG.get(registry)
        self._pending = cat.OUTBOX_PENDING_EVENTS.get(registry)
        self._depth = cat.WORKER_QUEUE_DEPTH.get(registry)
        self._children: dict[Any, Any] = {}
        self._wakers: list[asyncio.Event] = []
        self._idle: list[int] = []
        self._stop_event: asyncio.Event | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._aux: list[asyncio.Task[Any]] = []
        self._in_flight: dict[str, list[int]] = {}
        self._opened = False
        self.delivered = 0
        """Events delivered by this dispatcher since it started (for tests and the CLI)."""

    # -- kill switch ---------------------------------------------------------------------

    def _make_store(self) -> Any:
        include = self.router.patterns
        return self._store_mod.Store(
            self._db.dialect,
            include=include,
            exclude=sorted(self._paused | self._db_paused),
            ordering=self.settings.ordering,
        )

    def pause(self, *patterns: str) -> None:
        """Stop dispatching events matching ``patterns`` (the kill switch), from the next claim.

        Events stay pending (and count in the lag) until :meth:`resume`.
        """
        self._paused.update(patterns)
        self._store = self._make_store()

    def resume(self, *patterns: str) -> None:
        """Dispatch events matching ``patterns`` again (all paused ones when none given)."""
        if patterns:
            self._paused.difference_update(patterns)
        else:
            self._paused.clear()
        self._store = self._make_store()
        self.wake()

    @property
    def paused(self) -> frozenset[str]:
        """The paused event name patterns (this dispatcher's and the shared ``outbox_paused``)."""
        return frozenset(self._paused | self._db_paused)

    async def refresh_paused(self) -> frozenset[str]:
        """Reload the shared kill switch (``surefoot outbox pause``) from ``outbox_paused``.

        A running dispatcher does this with its stats, every ``stats_interval_seconds``.
        """
        from ._store import paused_patterns

        found = frozenset(p for p, _ in await self._db.run(paused_patterns))
        if found != self._db_paused:
            resumed = self._db_paused - found
            self._db_paused = found
            self._store = self._make_store()
            _log.warning("outbox_kill_switch_changed", paused=sorted(found), resumed=sorted(resumed))
            if resumed:
                self.wake()
        return self.paused

    # -- one batch -----------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.time(), dt.timezone.utc)

    def _child(self, family: Any, *labels: str) -> Any:
        key = (id(family), labels)
        child = self._children.get(key)
        if child is None:
            child = family.labels(*labels)
            self._children[key] = child
        return child

    async def run_once(self) -> int:
        """Claim one batch, deliver it and settle it; returns how many events were claimed."""
        if not self.router.patterns:
            return 0
        token = str(uuid.uuid4())
        store = self._store
        claimed, _ = await self._db.run(self._cycle, store, None, token)
        if not claimed:
            return 0
        self._in_flight[token] = [c.event.outbox_id for c in claimed]
        try:
            outcomes = await self._deliver(claimed)
            plan = self._plan(token, claimed, outcomes)
            _, settled = await self._db.run(self._cycle, store, plan, None)
            self._after_settle(plan, settled)
        except asyncio.CancelledError:
            await self._release(store, token)
            raise
        finally:
            self._in_flight.pop(token, None)
        return len(claimed)

    def _cycle(self, conn: Any, store: Any, plan: _Plan | None, token: str | None) -> tuple[list[Any], Any]:
        """Settle the previous batch (if any), then claim the next (if asked).

        One database visit per batch for a busy worker. On SQLite it is one transaction; on
        PostgreSQL each statement commits on its own (each is atomic by itself). If it
        fails, the plan is retried: settling is idempotent under the claim token, and
        events stay leased to this worker meanwhile.
        """
        settled = None
        now = self._now()
        if plan is not None:
            settled = (
                store.ack(conn, plan.ok, token=plan.token, now=now),
                store.fail(conn, plan.failed, token=plan.token),
                store.dead_letter(conn, [(c.event.outbox_id, e) for c, e in plan.dead], token=plan.token, now=now),
            )
        claimed: list[Any] = []
        if token is not None:
            claimed = store.claim(
                conn, now=now, lease_seconds=self.settings.lease_seconds,
                limit=self.settings.batch_size, token=token,
            )
        return claimed, settled

    async def _release(self, store: Any, token: str) -> None:
        ids = self._in_flight.get(token)
        if not ids:
            return
        # shielded: the caller is being cancelled, but the release must still reach the
        # database so other dispatchers can take these events now rather than after the lease
        task = asyncio.ensure_future(self._db.run(store.release, ids, token=token, now=self._now()))
        try:
            released = await asyncio.shield(task)
        except asyncio.CancelledError:
            released = await task
        _log.info("outbox_released", count=released)

    async def _deliver(self, claimed: Sequence[Any]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(claimed)
        groups: dict[int, tuple[Any, list[int]]] = {}
        for i, c in enumerate(claimed):
            destinations = self.router.resolve(c.event.event_name)
            if not destinations:
                outcomes[i] = LookupError(f"no handler or sink routes event {c.event.event_name!r}")
                continue
            for d in destinations:
                groups.setdefault(id(d), (d, []))[1].append(i)
        if not groups:
            return outcomes
        items = list(groups.values())

        async def send(dest: Any, idx: list[int]) -> list[BaseException | None]:
            try:
                results = await dest.send_many([claimed[i].event for i in idx])
            except Exception as exc:  # a sink broke its contract: fail its whole share
                return [exc] * len(idx)
            if len(results) != len(idx):
                err = RuntimeError(
                    f"sink {getattr(dest, 'name', dest)!r} returned {len(results)} results for {len(idx)} events"
                )
                return [err] * len(idx)
            return list(results)

        try:
            async with asyncio.timeout(self.handler_timeout):
                if len(items) == 1:
                    all_results = [await send(*items[0])]
                else:
                    all_results = await asyncio.gather(*(send(d, idx) for d, idx in items))
        except TimeoutError:
            timeout = TimeoutError(
                f"delivery did not finish within {self.handler_timeout:g} s (handler_timeout)"
            )
            return [o if o is not None else timeout for o in outcomes]
        now = self.clock.time()
        for (dest, idx), results in zip(items, all_results):
            sink_name = getattr(dest, "name", type(dest).__name__)
            for i, result in zip(idx, results):
                c = claimed[i]
                if result is None:
                    self._child(self._duration, c.event.event_name, sink_name).observe(
                        max(0.0, now - c.created_at.timestamp())
                    )
                elif outcomes[i] is None or isinstance(result, SinkDisabled):
                    outcomes[i] = result
        return outcomes

    def _plan(
        self, token: str, claimed: Sequence[Any], outcomes: Sequence[BaseException | None]
    ) -> _Plan:
        """Decide what happens to each event of a delivered batch (no I/O)."""
        plan = _Plan(token)
        now_s = self.clock.time()
        max_attempts = self.settings.max_attempts
        counts: dict[str, int] = {}
        for c, outcome in zip(claimed, outcomes):
            event: Event = c.event
            name = event.event_name
            counts[name] = counts.get(name, 0) + 1
            if outcome is None:
                plan.ok.append(event.outbox_id)  # type: ignore[arg-type]
                continue
            self._child(self._failures, name).inc()
            attempts = event.attempts + 1
            error = _error_text(outcome)
            if isinstance(outcome, SinkDisabled) or attempts >= max_attempts:
                plan.dead.append((c, error))
                continue
            if isinstance(outcome, RetryLater) and outcome.retry_after is not None:
                delay = max(0.0, float(outcome.retry_after))
            else:
                delay = self.backoff.delay(attempts, self.rng)
            plan.failed.append(
                (event.outbox_id, dt.datetime.fromtimestamp(now_s + delay, dt.timezone.utc), error)  # type: ignore[arg-type]
            )
            _log.warning(
                "outbox_dispatch_failed",
                event_name=name,
                outbox_id=event.outbox_id,
                event_id=event.event_id,
                attempts=attempts,
                correlation_id=event.correlation_id,
                retry_in_seconds=round(delay, 3),
                error_type=type(outcome).__name__,
                error_message=str(outcome)[:500],
            )
        for name, n in counts.items():
            self._child(self._attempts, name).inc(n)
        return plan

    def _after_settle(self, plan: _Plan, settled: Any) -> None:
        acked = settled[0] if settled else 0
        self.delivered += acked
        if acked < len(plan.ok):
            _log.warning(
                "outbox_lease_lost",
                expected=len(plan.ok),
                acked=acked,
                hint="deliveries outlived lease_seconds; these events will be delivered again",
            )
        for c, error in plan.dead:
            self._child(self._dead, c.event.event_name).inc()
            _log.error(
                "outbox_dead_lettered",
                event_name=c.event.event_name,
                outbox_id=c.event.outbox_id,
                event_id=c.event.event_id,
                attempts=c.event.attempts + 1,
                correlation_id=c.event.correlation_id,
                error_message=error[:500],
            )

    # -- running ------------------------------------------------------------------------

    async def drain(self, *, max_batches: int | None = None) -> int:
        """Deliver every event due now, batch after batch, until none is left; returns the count.

        Events waiting in backoff (not yet due) are left for later. Useful in tests and
        one-shot jobs.
        """
        await self._open()
        await self.refresh_paused()
        total = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            n = await self.run_once()
            if n == 0:
                break
            total += n
            batches += 1
        return total

    async def _open(self) -> None:
        if self._opened:
            return
        for destination in self.router.destinations:
            try:
                await destination.open()
            except SinkError as exc:
                # A broker that is down at start must not stop the dispatcher: its events stay
                # pending, fail per event with backoff, and the sink connects on a later batch.
                _log.error(
                    "outbox_sink_open_failed",
                    sink=getattr(destination, "name", "?"),
                    error_message=str(exc),
                )
        self._opened = True

    async def _close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        for destination in self.router.destinations:
            try:
                await destination.close()
            except Exception as exc:  # closing must not hide the others; report it
                _log.error("outbox_sink_close_failed", sink=getattr(destination, "name", "?"), error_message=str(exc))

    def wake(self) -> None:
        """Make a worker claim now instead of at its next poll (NOTIFY does this).

        One idle worker is woken (it wakes another if it finds a full batch), so a single
        new event costs one claim, not one per worker. With no worker idle, every busy
        worker is flagged and claims again as soon as its batch is done.
        """
        if self._idle:
            self._wakers[self._idle.pop()].set()
        else:
            self._wake_all()

    def _wake_all(self) -> None:
        for waker in self._wakers:
            waker.set()

    async def _worker(self, slot: int) -> None:
        poll = self.settings.poll_interval_seconds
        waker = self._wakers[slot]
        conn = self._db.dedicated()
        plan: _Plan | None = None
        try:
            while True:
                # cleared before claiming: a notification that arrives during the claim or
                # the batch leaves the flag set, so the next wait returns at once
                waker.clear()
                token = None if self._stopping else str(uuid.uuid4())
                if token is None and plan is None:
                    break
                store = self._store
                try:
                    claimed, settled = await conn.run(self._cycle, store, plan, token)
                except asyncio.CancelledError:
                    # a thread may still complete the claim: give its events back at once
                    late = await conn.settle_after_cancel()
                    if late is not None and late[0] and token is not None:
                        self._in_flight[token] = [c.event.outbox_id for c in late[0]]
                        await self._release(store, token)
                        self._in_flight.pop(token, None)
                    raise
                except Exception as exc:  # the database went away: log, wait, try again
                    _log.error(
                        "outbox_claim_failed", error_type=type(exc).__name__, error_message=str(exc)[:500]
                    )
                    await conn.reset()
                    if self._stopping:
                        # cannot settle on the way out: the leases run out and another
                        # dispatcher delivers these events again (at least once)
                        break
                    await self._sleep(min(5.0, poll * 2))
                    continue
                if plan is not None:
                    self._after_settle(plan, settled)
                    plan = None
                if not claimed:
                    if self._stopping:
                        break
                    self._idle.append(slot)
                    try:
                        async with asyncio.timeout(poll):
                            await waker.wait()
                    except TimeoutError:
                        pass  # the poll interval elapsed: the safety net, claim again
                    finally:
                        if slot in self._idle:
                            self._idle.remove(slot)
                    continue
                if len(claimed) >= self.settings.batch_size and self._idle:
                    self.wake()  # more may be waiting: bring in an idle worker
                self._in_flight[token] = [c.event.outbox_id for c in claimed]
                try:
                    outcomes = await self._deliver(claimed)
                except asyncio.CancelledError:
                    await self._release(store, token)
                    raise
                finally:
                    self._in_flight.pop(token, None)
                plan = self._plan(token, claimed, outcomes)
        finally:
            await conn.close()

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` or until the dispatcher stops."""
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        try:
            async with asyncio.timeout(seconds):
                await self._stop_event.wait()
        except TimeoutError:
            pass  # slept the full time without a stop request

    async def _listen(self) -> None:
        psycopg = require("psycopg", "postgres")
        from ._schema import NOTIFY_CHANNEL

        conninfo = self._db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 0.5
        while not self._stopping:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    delay = 0.5
                    self._wake_all()  # events may have arrived while we were not listening
                    async for _ in conn.notifies():
                        self.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # LISTEN is only a hint: polling goes on; reconnect later
                _log.warning("outbox_listen_failed", error_message=str(exc)[:300], retry_in_seconds=delay)
                await self._sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _watch_sqlite(self) -> None:
        """SQLite has no NOTIFY: watch ``PRAGMA data_version``, which changes whenever another
        connection (this process or another) commits to the file, and wake a worker."""
        import sqlite3

        database = self._db.url.database
        if not database or database == ":memory:" or database.startswith("file::memory"):
            return
        interval = self.settings.sqlite_watch_interval_seconds
        watcher = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        try:
            last = watcher.execute("PRAGMA data_version").fetchone()[0]
            while not self._stopping:
                await self._sleep(interval)
                # microseconds: it reads a counter in the WAL index, no lock waits
                version = watcher.execute("PRAGMA data_version").fetchone()[0]
                if version != last:
                    last = version
                    self.wake()
        finally:
            watcher.close()

    async def _stats_loop(self) -> None:
        from ._store import stats

        while not self._stopping:
            try:
                await self.refresh_paused()
                await self.refresh_stats(stats)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # stats are advisory; the next round tries again
                _log.warning("outbox_stats_failed", error_message=str(exc)[:300])
            await self._sleep(self.settings.stats_interval_seconds)

    async def refresh_stats(self, _stats: Any = None) -> Any:
        """Query pending count and lag and update the gauges; returns the :class:`Stats`."""
        from ._store import stats

        s = await self._db.run(_stats or stats)
        self._lag.set(s.lag_seconds)
        self._pending.set(s.pending)
        self._depth.set(s.pending)
        return s

    async def _retention_loop(self) -> None:
        interval = self.settings.retention_interval_seconds
        while not self._stopping:
            try:
                await self.apply_retention()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retention retries at the next interval
                _log.warning("outbox_retention_failed", error_message=str(exc)[:300])
            await self._sleep(interval)

    async def apply_retention(self, *, older_than_days: float | None = None) -> int:
        """Delete events dispatched more than ``retention_days`` ago, in short batches."""
        from ._store import delete_dispatched_batch

        days = older_than_days if older_than_days is not None else self.settings.retention_days
        before = self._now() - dt.timedelta(days=days)
        total = 0
        while True:
            n = await self._db.run(
                delete_dispatched_batch, before=before, limit=self.settings.retention_batch_size
            )
            total += n
            if n < self.settings.retention_batch_size:
                break
        if total:
            _log.info("outbox_retention_deleted", count=total, older_than_days=days)
        return total

    async def start(self) -> None:
        """Start the worker tasks (and listener, stats, retention) on the running loop."""
        if self._tasks:
            raise RuntimeError("this dispatcher is already running")
        if self._db.disposed:
            raise RuntimeError("a stopped dispatcher cannot start again; create a new one")
        if not self.router.patterns:
            raise ConfigurationError(
                "the dispatcher has no routes: register handlers with @outbox.handler(...) "
                "or pass handlers= / sinks= / router="
            )
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._wakers = [asyncio.Event() for _ in range(self.settings.concurrency)]
        self._idle = []
        await self._open()
        await self.refresh_paused()
        loop = asyncio.get_running_loop()
        for slot in range(self.settings.concurrency):
            self._tasks.append(loop.create_task(self._worker(slot), name=f"surefoot-outbox-{slot}"))
        if self.settings.listen and self._db.dialect == "postgresql":
            self._aux.append(loop.create_task(self._listen(), name="surefoot-outbox-listen"))
        if self.settings.listen and self._db.dialect == "sqlite" and self.settings.sqlite_watch_interval_seconds > 0:
            self._aux.append(loop.create_task(self._watch_sqlite(), name="surefoot-outbox-watch"))
        self._aux.append(loop.create_task(self._stats_loop(), name="surefoot-outbox-stats"))
        if self.settings.retention_interval_seconds > 0:
            self._aux.append(loop.create_task(self._retention_loop(), name="surefoot-outbox-retention"))
        _log.info(
            "outbox_dispatcher_started",
            batch_size=self.settings.batch_size,
            concurrency=self.settings.concurrency,
            lease_seconds=self.settings.lease_seconds,
            routes=self.router.patterns,
            paused=sorted(self._paused),
        )

    async def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; let in-flight batches finish for ``timeout`` s, then release them.

        Released events are given back at once (no lease wait) with their attempt undone.
        """
        if timeout is None:
            timeout = self.settings.shutdown_timeout_seconds
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        self._wake_all()
        tasks, self._tasks = self._tasks, []
        aux, self._aux = self._aux, []
        # the listener, stats and retention hold no events: stop them at once
        for task in aux:
            task.cancel()
        if aux:
            await asyncio.wait(aux)
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    _log.error("outbox_task_failed", task=task.get_name(), error_message=str(task.exception()))
        await self._close()
        await self._db.dispose()
        _log.info("outbox_dispatcher_stopped", delivered=self.delivered)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Dispatcher]:
        """Run the dispatcher for the duration of an ``async with`` block (app lifespan)."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def request_stop(self) -> None:
        """Ask a :meth:`run` in progress to stop gracefully (signal handlers call this)."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        self._wake_all()

    async def run(self) -> None:
        """Run until :meth:`request_stop` or cancellation, then stop gracefully."""
        await self.start()
        try:
            if self._stop_event is not None:
                await self._stop_event.wait()
        finally:
            await self.stop()
