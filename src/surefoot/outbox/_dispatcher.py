"""The outbox dispatcher: claim due events, deliver them, settle the outcome.

At least once: an event leaves the table only after its destinations accepted it. A claim is
a lease (``lease_seconds``): if the dispatcher dies, its events come back when the lease ends;
acks, failures and releases are guarded by the claim token, so a dispatcher whose lease ran
out can no longer touch events someone else reclaimed. Attempts are counted when an event is
claimed, so even an event that crashes its dispatcher every time ends in the dead letters.

This module holds the public class and what a batch goes through (claim, plan, settle); the
worker loop and its supervision live in :mod:`._loop`, delivery in :mod:`._delivery`,
wake-ups in :mod:`._wakeup`, database access in :mod:`._database`, retention in
:mod:`._retention`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from .._core import catalogue as cat
from .._core.clock import SYSTEM_CLOCK, Clock
from .._core.settings import load_settings
from ..errors import ConfigurationError
from ._backoff import Backoff, FullJitter
from ._delivery import Delivery, HandlerThreads, NotStarted, _Stopped, deliver
from ._event import Event, RetryLater, SinkDisabled, SinkError
from ._loop import Runner, StopReport
from ._routing import Router, default_router
from ._settings import OutboxSettings

__all__ = ["Dispatcher", "StopReport"]

_log = structlog.get_logger("surefoot.outbox")


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Plan:
    """What to write back for one delivered batch."""

    __slots__ = ("token", "ok", "failed", "dead", "released")

    def __init__(self, token: str) -> None:
        self.token = token
        self.ok: list[int] = []
        self.released: list[int] = []
        self.failed: list[tuple[int, dt.datetime, str]] = []
        self.dead: list[tuple[Any, str]] = []


class Dispatcher(Runner):
    """Delivers outbox events to handlers and sinks, at least once.

    Run it in a worker (``surefoot outbox run``) or in the application's lifespan::

        dispatcher = Dispatcher(engine)
        async with dispatcher.running():
            yield

    Several dispatchers (processes or hosts) may share one PostgreSQL table: claims use
    ``FOR UPDATE SKIP LOCKED``; on SQLite the single writer serialises them.

    Args:
        bind: a database URL, a SQLAlchemy ``AsyncEngine`` or a sync ``Engine`` (run in a
            thread), or a :class:`~surefoot.outbox.Store` (e.g. :class:`MemoryStore`). A URL
            gets an async engine the dispatcher owns and disposes.
        router: where events go; default: ``handlers``/``sinks`` if given, else the routes
            registered with :func:`surefoot.outbox.handler`.
        handlers: ``{pattern: handler or [handlers]}`` (builds a router).
        sinks: ``{pattern: sink or [sinks]}`` (builds a router).
        settings: :class:`OutboxSettings`; default: ``SUREFOOT_OUTBOX_*`` from the
            environment, with the keyword overrides below applied.
        batch_size, concurrency, lease_seconds, max_attempts, poll_interval, listen,
            ordering, paused, db_timeout: override the settings of the same name.
        backoff: anything with ``delay(attempts, rng)``; default :class:`FullJitter` from
            the settings.
        clock: time source (deciding what is due, leases, backoff).
        rng: random source for jitter.
        registry: Prometheus registry for the outbox metrics.
        handler_timeout: seconds one delivery may take before it fails (default:
            ``handler_timeout_seconds``, else 80 % of the lease, so an event is never
            delivered twice concurrently because a slow handler outlived its lease).

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
        db_timeout: float | None = None,
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
                "db_timeout_seconds": db_timeout,
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
        if handler_timeout is None:
            handler_timeout = settings.handler_timeout_seconds
        self.handler_timeout = handler_timeout if handler_timeout is not None else settings.lease_seconds * 0.8
        if self.handler_timeout <= 0:
            raise ConfigurationError(f"handler_timeout must be > 0 seconds, got {self.handler_timeout!r}")
        from ._stores import open_store

        self._backend = open_store(bind, settings)
        self._db = self._backend.database
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
        self._heartbeat = cat.OUTBOX_DISPATCHER_HEARTBEAT.get(registry)
        self._restarts = cat.OUTBOX_DISPATCHER_WORKER_RESTARTS.get(registry)
        self._db_errors = cat.OUTBOX_DISPATCHER_DB_ERRORS.get(registry)
        self._abandoned_metric = cat.OUTBOX_DELIVERIES_ABANDONED.get(registry)
        self._children: dict[Any, Any] = {}
        self._threads = HandlerThreads(settings.handler_threads)
        self._orphans: dict[asyncio.Task[Any], list[int]] = {}
        self._in_flight: dict[str, list[int]] = {}
        self._released = 0
        self._opened = False
        self._init_runner()
        self.delivered = 0
        """Events delivered by this dispatcher since it started (for tests and the CLI)."""

    # -- kill switch ---------------------------------------------------------------------

    def _make_store(self) -> Any:
        return self._backend.statements(
            include=self.router.patterns,
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
        found = frozenset(p for p, _ in await self._db.run(self._backend.ops.paused_patterns))
        if found != self._db_paused:
            resumed = self._db_paused - found
            self._db_paused = found
            self._store = self._make_store()
            _log.warning("outbox_kill_switch_changed", paused=sorted(found), resumed=sorted(resumed))
            if resumed:
                self.wake()
        return self.paused

    async def refresh_stats(self, _stats: Any = None) -> Any:
        """Query pending count and lag and update the gauges; returns the :class:`Stats`."""
        s = await self._db.run(_stats or self._backend.ops.stats)
        self._lag.set(s.lag_seconds)
        self._pending.set(s.pending)
        self._depth.set(s.pending)
        return s

    async def apply_retention(self, *, older_than_days: float | None = None) -> int:
        """Delete events dispatched more than ``retention_days`` ago, in short batches."""
        from ._retention import apply_retention

        days = older_than_days if older_than_days is not None else self.settings.retention_days
        total = await apply_retention(
            self._db.run,
            self._backend.ops.delete_dispatched_batch,
            before=self._now() - dt.timedelta(days=days),
            batch_size=self.settings.retention_batch_size,
        )
        if total:
            _log.info("outbox_retention_deleted", count=total, older_than_days=days)
        return total

    # -- one batch -----------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.time(), dt.UTC)

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
            delivery = await self._deliver(claimed)
            plan = self._plan(token, claimed, delivery)
            _, settled = await self._db.run(self._cycle, store, plan, None)
            self._after_settle(plan, settled)
        except _Stopped as stopped:
            self._keep_leased(token, claimed, stopped.abandoned)
            await self._release(store, token)
            raise asyncio.CancelledError() from None
        except BaseException:
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
            if plan.released:
                store.release(conn, plan.released, token=plan.token, now=now)
        claimed: list[Any] = []
        if token is not None:
            claimed = store.claim(
                conn, now=now, lease_seconds=self.settings.lease_seconds,
                limit=self.settings.batch_size, token=token,
            )
        return claimed, settled

    def _keep_leased(self, token: str, claimed: Sequence[Any], abandoned: set[int]) -> None:
        """Leave events whose delivery was abandoned leased: they come back after the lease."""
        if not abandoned:
            return
        keep = {claimed[i].event.outbox_id for i in abandoned}
        self._in_flight[token] = [i for i in self._in_flight.get(token, []) if i not in keep]

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
        except Exception as exc:  # the leases run out instead; say so
            _log.warning("outbox_release_failed", count=len(ids), error_message=str(exc)[:300])
            return
        finally:
            self._in_flight.pop(token, None)
        self._released += released
        _log.info("outbox_released", count=released)

    async def _deliver(self, claimed: Sequence[Any]) -> Delivery:
        delivery = await deliver(
            self.router,
            claimed,
            timeout=self.handler_timeout,
            cancel_grace=self.settings.cancel_grace_seconds,
            threads=self._threads,
            on_delivered=self._observe_delivered,
            orphans=self._orphans,
        )
        if delivery.abandoned:
            self._child(self._abandoned_metric, "handler_timeout").inc(len(delivery.abandoned))
        return delivery

    def _observe_delivered(self, c: Any, sink_name: str) -> None:
        self._child(self._duration, c.event.event_name, sink_name).observe(
            max(0.0, self.clock.time() - c.created_at.timestamp())
        )

    def _plan(self, token: str, claimed: Sequence[Any], delivery: Delivery) -> _Plan:
        """Decide what happens to each event of a delivered batch (no I/O).

        Events whose delivery was abandoned are left out: they stay leased until the lease
        ends, so they are not delivered again while their handler may still run.
        """
        plan = _Plan(token)
        now_s = self.clock.time()
        max_attempts = self.settings.max_attempts
        counts: dict[str, int] = {}
        abandoned = delivery.abandoned
        for pos, (c, outcome) in enumerate(zip(claimed, delivery.outcomes, strict=False)):
            event: Event = c.event
            name = event.event_name
            if isinstance(outcome, NotStarted):  # never attempted: back at once, attempt undone
                plan.released.append(event.outbox_id)  # type: ignore[arg-type]
                continue
            counts[name] = counts.get(name, 0) + 1
            if pos in abandoned:
                self._child(self._failures, name).inc()
                continue
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
                (event.outbox_id, dt.datetime.fromtimestamp(now_s + delay, dt.UTC), error)  # type: ignore[arg-type]
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

    # -- one-shot use --------------------------------------------------------------------

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
        grace = max(self.settings.cancel_grace_seconds, 1.0)
        for destination in self.router.destinations:
            # in a task of its own: a close() that ignores cancellation is left behind, not awaited
            task = asyncio.ensure_future(destination.close())
            done, _ = await asyncio.wait([task], timeout=grace)
            if not done:
                task.cancel()
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
                self._orphans[task] = []
                task.add_done_callback(lambda t: self._orphans.pop(t, None))
                _log.error("outbox_sink_close_failed", sink=getattr(destination, "name", "?"),
                           error_type="TimeoutError", error_message=f"close() took longer than {grace:g} s")
            elif task.exception() is not None:  # closing must not hide the others; report it
                exc = task.exception()
                _log.error("outbox_sink_close_failed", sink=getattr(destination, "name", "?"),
                           error_type=type(exc).__name__, error_message=str(exc))

    async def aclose(self) -> None:
        """Close sinks, handler threads and an owned engine (after :meth:`drain` use)."""
        await self._close()
        self._threads.shutdown()
        await self._db.dispose()
