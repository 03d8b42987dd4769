"""The running dispatcher: worker loops, their supervisor, the stats loop, start and stop.

Supervision: each worker is a task watched by a done-callback; a worker that ends while the
dispatcher is running (a bug, a ``BaseException`` from a sink, ...) is logged at ERROR with
what ended it, counted in ``outbox_dispatcher_worker_restarts_total{reason="died"}`` and
replaced at once (its claimed events are released first when it can). A watchdog looks at
each worker's last beat every ``watchdog_interval_seconds``: a worker silent for longer than
its longest legitimate step (a database operation, a delivery and its cancel grace, a poll)
is cancelled and replaced (``reason="stuck"``). While every worker is alive and beating,
the watchdog sets ``outbox_dispatcher_heartbeat_timestamp_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from ..errors import ConfigurationError
from ._delivery import _Stopped

__all__ = ["Runner", "StopReport"]

_log = structlog.get_logger("surefoot.outbox")


@dataclass(frozen=True)
class StopReport:
    """What :meth:`Dispatcher.stop` did.

    Attributes:
        delivered: events delivered since the dispatcher started.
        released: events given back at once (claim cleared, attempt undone).
        abandoned_events: outbox ids of events whose delivery would not end (a handler
            that ignores cancellation) or whose worker could not be stopped: they stay
            leased and are delivered again after ``lease_seconds``.
        abandoned_tasks: names of tasks still running when ``stop()`` returned.
    """

    delivered: int
    released: int
    abandoned_events: tuple[int, ...] = ()
    abandoned_tasks: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """True when nothing was left behind."""
        return not self.abandoned_events and not self.abandoned_tasks


class Runner:
    """Mixin of :class:`Dispatcher`: everything that runs on the event loop over time."""

    # provided by Dispatcher
    settings: Any
    router: Any
    handler_timeout: float
    delivered: int
    _db: Any
    _store: Any
    _in_flight: dict[str, list[int]]
    _orphans: dict[asyncio.Task[Any], list[int]]
    _released: int

    def _init_runner(self) -> None:
        self._wakers: list[asyncio.Event] = []
        self._idle: list[int] = []
        self._stop_event: asyncio.Event | None = None
        self._stopping = False
        self._workers: dict[int, asyncio.Task[Any]] = {}
        self._aux: dict[str, asyncio.Task[Any]] = {}
        self._beats: dict[int, float] = {}
        self._db_ok_at = 0.0
        self._heartbeat_at = 0.0
        self._started = False

    # -- wake-ups and sleeping -------------------------------------------------------------

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

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` or until the dispatcher stops."""
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
        if self._stop_event.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop_event.wait()

    def _mark_db_ok(self) -> None:
        self._db_ok_at = time.monotonic()

    def _db_error(self, loop: str, exc: BaseException) -> None:
        self._child(self._db_errors, loop).inc()  # type: ignore[attr-defined]

    # -- workers ---------------------------------------------------------------------------

    async def _worker(self, slot: int) -> None:
        poll = self.settings.poll_interval_seconds
        waker = self._wakers[slot]
        conn = self._db.dedicated()
        plan: Any = None
        beats = self._beats
        try:
            while True:
                beats[slot] = time.monotonic()
                # cleared before claiming: a notification that arrives during the claim or
                # the batch leaves the flag set, so the next wait returns at once
                waker.clear()
                token = None if self._stopping else str(uuid.uuid4())
                if token is None and plan is None:
                    break
                store = self._store
                try:
                    claimed, settled = await conn.run(self._cycle, store, plan, token)  # type: ignore[attr-defined]
                except asyncio.CancelledError:
                    # a thread may still complete the claim: give its events back at once
                    late = await conn.settle_after_cancel()
                    if late is not None and late[0] and token is not None:
                        self._in_flight[token] = [c.event.outbox_id for c in late[0]]
                        await self._release(store, token)  # type: ignore[attr-defined]
                    raise
                except Exception as exc:  # the database went away: log, wait, try again
                    self._db_error("claim", exc)
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
                self._db_ok_at = beats[slot] = time.monotonic()
                if plan is not None:
                    self._after_settle(plan, settled)  # type: ignore[attr-defined]
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
                assert token is not None
                self._in_flight[token] = [c.event.outbox_id for c in claimed]
                try:
                    delivery = await self._deliver(claimed)  # type: ignore[attr-defined]
                    plan = self._plan(token, claimed, delivery)  # type: ignore[attr-defined]
                except _Stopped as stopped:
                    self._keep_leased(token, claimed, stopped.abandoned)  # type: ignore[attr-defined]
                    await self._release(store, token)  # type: ignore[attr-defined]
                    raise asyncio.CancelledError() from None
                except BaseException:
                    await self._release(store, token)  # type: ignore[attr-defined]
                    raise
                finally:
                    self._in_flight.pop(token, None)
        finally:
            await conn.close()

    def _spawn(self, slot: int) -> None:
        self._beats[slot] = time.monotonic()
        task = asyncio.get_running_loop().create_task(self._worker(slot), name=f"surefoot-outbox-{slot}")
        self._workers[slot] = task
        task.add_done_callback(functools.partial(self._on_worker_done, slot))

    def _on_worker_done(self, slot: int, task: asyncio.Task[Any]) -> None:
        error = None if task.cancelled() else task.exception()
        if self._stopping or self._workers.get(slot) is not task:
            return  # stopping, or already replaced by the watchdog
        _log.error(
            "outbox_worker_died",
            worker=slot,
            error_type=type(error).__name__ if error is not None else ("Cancelled" if task.cancelled() else None),
            error_message=str(error)[:500] if error is not None else None,
            exc_info=error,
            hint="the worker was replaced; please report this with the error above",
        )
        self._child(self._restarts, "died").inc()  # type: ignore[attr-defined]
        self._spawn(slot)

    def _stuck_after(self) -> float:
        s = self.settings
        stuck: float = (
            2 * s.db_timeout_seconds + self.handler_timeout + s.cancel_grace_seconds
            + s.poll_interval_seconds + 5.0 + s.watchdog_interval_seconds
        )
        return stuck

    async def _supervise(self) -> None:
        """The watchdog: replace silent workers, set the heartbeat while all are healthy."""
        interval = self.settings.watchdog_interval_seconds
        while not self._stopping:
            now = time.monotonic()
            healthy = True
            limit = self._stuck_after()
            for slot, task in list(self._workers.items()):
                if task.done():
                    healthy = False  # its done-callback replaces it
                    continue
                silent = now - self._beats.get(slot, now)
                if silent > limit:
                    healthy = False
                    _log.error("outbox_worker_stuck", worker=slot, silent_seconds=round(silent, 1),
                               limit_seconds=round(limit, 1))
                    self._child(self._restarts, "stuck").inc()  # type: ignore[attr-defined]
                    task.cancel()
                    self._orphans[task] = []
                    task.add_done_callback(lambda t: self._orphans.pop(t, None))
                    self._spawn(slot)
            if healthy:
                self._heartbeat_at = now
                self._heartbeat.set(self.clock.time())  # type: ignore[attr-defined]
            await self._sleep(interval)

    async def _stats_loop(self) -> None:
        while not self._stopping:
            try:
                await self.refresh_paused()  # type: ignore[attr-defined]
                await self.refresh_stats()  # type: ignore[attr-defined]
                self._mark_db_ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # stats are advisory; the next round tries again
                self._db_error("stats", exc)
                _log.warning("outbox_stats_failed", error_type=type(exc).__name__, error_message=str(exc)[:300])
            await self._sleep(self.settings.stats_interval_seconds)

    def _spawn_aux(self, name: str, factory: Callable[[], Awaitable[Any]]) -> None:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(
            factory(), name=f"surefoot-outbox-{name}"  # type: ignore[arg-type]
        )
        self._aux[name] = task

        def done(t: asyncio.Task[Any]) -> None:
            error = None if t.cancelled() else t.exception()
            if self._stopping or self._aux.get(name) is not t or error is None:
                return
            _log.error("outbox_task_failed", task=name, error_type=type(error).__name__,
                       error_message=str(error)[:500], exc_info=error)
            self._child(self._restarts, "died").inc()  # type: ignore[attr-defined]
            self._spawn_aux(name, factory)

        task.add_done_callback(done)

    # -- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        """Start the workers, their supervisor, the wake-up, stats and retention tasks."""
        if self._workers or self._started:
            raise RuntimeError("this dispatcher is already running")
        if self._db.disposed:
            raise RuntimeError("a stopped dispatcher cannot start again; create a new one")
        if not self.router.patterns:
            raise ConfigurationError(
                "the dispatcher has no routes: register handlers with @outbox.handler(...) "
                "or pass handlers= / sinks= / router="
            )
        from . import _retention, _wakeup

        self._stopping = False
        self._stop_event = asyncio.Event()
        self._wakers = [asyncio.Event() for _ in range(self.settings.concurrency)]
        self._idle = []
        await self._open()  # type: ignore[attr-defined]
        await self.refresh_paused()  # type: ignore[attr-defined]
        self._started = True
        now = time.monotonic()
        self._db_ok_at = self._heartbeat_at = now
        self._heartbeat.set(self.clock.time())  # type: ignore[attr-defined]
        for slot in range(self.settings.concurrency):
            self._spawn(slot)
        self._spawn_aux("supervisor", self._supervise)
        dialect = self._db.dialect
        if self.settings.listen and dialect == "postgresql":
            self._spawn_aux("listen", lambda: _wakeup.listen(self))  # type: ignore[arg-type]
        if self.settings.listen and dialect == "sqlite" and self.settings.sqlite_watch_interval_seconds > 0:
            self._spawn_aux("watch", lambda: _wakeup.watch_sqlite(self))  # type: ignore[arg-type]
        if self.settings.listen and hasattr(self._db, "watch"):
            self._spawn_aux("watch", lambda: self._db.watch(self))
        self._spawn_aux("stats", self._stats_loop)
        if self.settings.retention_interval_seconds > 0:
            self._spawn_aux("retention", lambda: _retention.retention_loop(self))  # type: ignore[arg-type]
        _log.info(
            "outbox_dispatcher_started",
            batch_size=self.settings.batch_size,
            concurrency=self.settings.concurrency,
            lease_seconds=self.settings.lease_seconds,
            routes=self.router.patterns,
            paused=sorted(self._paused),  # type: ignore[attr-defined]
        )

    def request_stop(self) -> None:
        """Ask a :meth:`run` in progress to stop gracefully (signal handlers call this)."""
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        self._wake_all()

    async def stop(self, timeout: float | None = None) -> StopReport:  # noqa: ASYNC109 - a deadline for the whole shutdown, part of the API
        """Stop claiming; let in-flight batches finish for ``timeout`` s, then release them.

        Released events are given back at once (no lease wait) with their attempt undone.
        ``stop()`` has a deadline: after ``timeout`` the deliveries still running are
        cancelled and get ``cancel_grace_seconds`` to end (plus one database operation to
        release their events); whatever is still running then is abandoned and listed in
        the returned :class:`StopReport` (its events come back after the lease).
        """
        if timeout is None:
            timeout = self.settings.shutdown_timeout_seconds
        grace = self.settings.cancel_grace_seconds
        self.request_stop()
        workers, self._workers = list(self._workers.values()), {}
        aux, self._aux = list(self._aux.values()), {}
        # the listener, stats and retention hold no events: stop them at once
        for task in aux:
            task.cancel()
        stuck: list[asyncio.Task[Any]] = []
        if aux:
            stuck += (await asyncio.wait(aux, timeout=grace + 1.0))[1]
        if workers:
            _, pending = await asyncio.wait(workers, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                bound = grace + self.settings.db_timeout_seconds + 1.0
                stuck += (await asyncio.wait(pending, timeout=bound))[1]
            for task in workers:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    error = task.exception()
                    _log.error("outbox_task_failed", task=task.get_name(), error_message=str(error),
                               exc_info=error)
        await self._close()  # type: ignore[attr-defined]
        self._threads.shutdown()  # type: ignore[attr-defined]
        await self._db.dispose()
        abandoned_ids: set[int] = set()
        for ids in self._in_flight.values():
            abandoned_ids.update(ids)
        names = [t.get_name() for t in stuck]
        for task, ids in list(self._orphans.items()):
            if not task.done():
                abandoned_ids.update(ids)
                names.append(task.get_name())
        self._started = False
        report = StopReport(
            delivered=self.delivered,
            released=self._released,
            abandoned_events=tuple(sorted(abandoned_ids)),
            abandoned_tasks=tuple(names),
        )
        if not report.clean:
            _log.warning(
                "outbox_dispatcher_stop_abandoned",
                abandoned_events=list(report.abandoned_events)[:100],
                abandoned_tasks=list(report.abandoned_tasks)[:100],
                hint="handlers that ignore cancellation keep running; their events come back after the lease",
            )
        _log.info("outbox_dispatcher_stopped", delivered=self.delivered, released=self._released)
        return report

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Any]:
        """Run the dispatcher for the duration of an ``async with`` block (app lifespan)."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    async def run(self) -> None:
        """Run until :meth:`request_stop` or cancellation, then stop gracefully."""
        await self.start()
        try:
            if self._stop_event is not None:
                await self._stop_event.wait()
        finally:
            await self.stop()

    # -- health ----------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started and not self._stopping

    def health_check(
        self, *, max_heartbeat_age: float | None = None, max_database_age: float | None = None
    ) -> Callable[[], Awaitable[dict[str, Any]]]:
        """A check for :meth:`surefoot.health.Health.add` (``/readyz``, ``/health``).

        Unhealthy when the dispatcher is not running, when the watchdog has not seen every
        worker alive for ``max_heartbeat_age`` s (default ``max(5, 3 × watchdog_interval)``),
        or when no database round trip succeeded for ``max_database_age`` s (default
        ``stats_interval + 2 × db_timeout + 1``: the stats loop reaches the database every
        ``stats_interval``, each of its two statements bounded by ``db_timeout``). Healthy results carry
        ``workers``, ``heartbeat_age_seconds`` and ``database_age_seconds``.

        Raises:
            ConfigurationError: a limit is given but is not a positive number of seconds.
        """
        for label, limit in (("max_heartbeat_age", max_heartbeat_age), ("max_database_age", max_database_age)):
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0):
                raise ConfigurationError(f"health_check({label}=...) must be a positive number of seconds, got {limit!r}")
        s = self.settings
        hb_limit = max_heartbeat_age if max_heartbeat_age is not None else max(5.0, 3 * s.watchdog_interval_seconds)
        db_limit = (
            max_database_age
            if max_database_age is not None
            else s.stats_interval_seconds + 2 * s.db_timeout_seconds + 1.0
        )

        async def outbox_dispatcher() -> dict[str, Any]:
            if not self.is_running:
                raise RuntimeError("the outbox dispatcher is not running")
            now = time.monotonic()
            heartbeat_age = now - self._heartbeat_at
            if heartbeat_age > hb_limit:
                raise RuntimeError(
                    f"no outbox heartbeat for {heartbeat_age:.1f} s (limit {hb_limit:g} s): workers dead or stuck"
                )
            db_age = now - self._db_ok_at
            if db_age > db_limit:
                raise RuntimeError(
                    f"the outbox dispatcher has not reached its database for {db_age:.1f} s (limit {db_limit:g} s)"
                )
            alive = sum(1 for t in self._workers.values() if not t.done())
            return {
                "workers": alive,
                "heartbeat_age_seconds": round(heartbeat_age, 3),
                "database_age_seconds": round(db_age, 3),
            }

        return outbox_dispatcher
