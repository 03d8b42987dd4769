"""Event pairs in the database: start and finish in the caller's transaction, a sweeper for the rest.

* ``start`` inserts ``(slo, key, started_at, deadline_at)``; a second start of the same key
  is ignored (``ON CONFLICT DO NOTHING``), so a redelivered webhook cannot restart a pair.
* ``finish`` is one conditional ``UPDATE ... WHERE outcome IS NULL``: only the first finish
  matches a row, whatever the number of processes racing; it decides good (finished by the
  deadline) or bad (late).
* :class:`Sweeper` (run it in the worker) marks pairs past their deadline as bad with the same
  conditional update, so exactly once; then it *counts* finished pairs — claiming them with
  ``counted = false → true`` and adding them to ``surefoot_slo_counts`` in the same
  transaction — and only after that commit bumps this process's Prometheus counters. A
  finish rolled back with its transaction is never counted; a crash of any process loses
  nothing: the rows wait for the next sweep.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable
from typing import Any

import structlog

from .._core.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigurationError
from ._objectives import EventPair
from ._schema import insert_ignore, pairs_table
from ._store import HIST_PREFIX, SqlCounts
from ._windows import minute_of

__all__ = ["start", "astart", "finish", "afinish", "Sweeper", "SweepResult"]

_log = structlog.get_logger("surefoot.slo")
_MAX_KEY = 255


def _key(objective: EventPair, key: Any) -> str:
    if key is None or isinstance(key, bool):
        raise ConfigurationError(
            f"objective {objective.name!r}: a pair key must be the event's identifier (e.g. the CallSid); got {key!r}"
        )
    text = str(key)
    if not text or len(text) > _MAX_KEY:
        raise ConfigurationError(f"objective {objective.name!r}: a pair key must be 1-{_MAX_KEY} characters; got {text[:40]!r}")
    return text


_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(kind: str, conn: Any) -> Any:
    """The start or finish statement for ``conn``'s dialect, built once (bound parameters)."""
    from .._sql import dialect_name

    dialect = dialect_name(conn)
    stmt = _STATEMENTS.get((kind, dialect))
    if stmt is None:
        import sqlalchemy as sa

        t = pairs_table
        if kind == "start":
            stmt = insert_ignore(conn, t).values(
                slo=sa.bindparam("p_slo"), key=sa.bindparam("p_key"), started_at=sa.bindparam("p_now"),
                deadline_at=sa.bindparam("p_deadline"),
            ).returning(t.c.key)
        else:
            now = sa.bindparam("p_now", type_=t.c.finished_at.type)
            stmt = (
                sa.update(t)
                .where(t.c.slo == sa.bindparam("p_slo"), t.c.key == sa.bindparam("p_key"), t.c.outcome.is_(None))
                .values(finished_at=now, outcome=sa.case((t.c.deadline_at >= now, "good"), else_="bad"))
                .returning(t.c.key)
            )
        _STATEMENTS[(kind, dialect)] = stmt
    return stmt


def _start_params(objective: EventPair, key: Any, at: float | None) -> dict[str, Any]:
    now = objective.clock.time() if at is None else float(at)
    return {"p_slo": objective.name, "p_key": _key(objective, key), "p_now": now, "p_deadline": now + objective.deadline}


def _finish_params(objective: EventPair, key: Any, at: float | None) -> dict[str, Any]:
    now = objective.clock.time() if at is None else float(at)
    return {"p_slo": objective.name, "p_key": _key(objective, key), "p_now": now}


# RETURNING tells whether a row was written; rowcount is -1 for some drivers (psycopg 3).


def _sync_result(result: Any, twin: str) -> Any:
    if inspect.isawaitable(result):
        if hasattr(result, "close"):
            result.close()
        raise ConfigurationError(f"this connection is async: use `await objective.{twin}(conn, key)`")
    return result


def start(objective: EventPair, conn: Any, key: Any, at: float | None) -> bool:
    result = _sync_result(conn.execute(_statement("start", conn), _start_params(objective, key, at)), "astart")
    return result.first() is not None


async def astart(objective: EventPair, conn: Any, key: Any, at: float | None) -> bool:
    result = conn.execute(_statement("start", conn), _start_params(objective, key, at))
    if inspect.isawaitable(result):  # AsyncSession / AsyncConnection; a sync one answers at once
        result = await result
    return result.first() is not None


def finish(objective: EventPair, conn: Any, key: Any, at: float | None) -> bool:
    result = _sync_result(conn.execute(_statement("finish", conn), _finish_params(objective, key, at)), "afinish")
    return result.first() is not None


async def afinish(objective: EventPair, conn: Any, key: Any, at: float | None) -> bool:
    result = conn.execute(_statement("finish", conn), _finish_params(objective, key, at))
    if inspect.isawaitable(result):
        result = await result
    return result.first() is not None


class SweepResult:
    """What one sweep did: pairs expired, and pairs counted per objective and outcome."""

    def __init__(self) -> None:
        self.expired = 0
        self.counted: dict[tuple[str, str], int] = {}
        self.purged = 0

    def __repr__(self) -> str:
        return f"SweepResult(expired={self.expired}, counted={self.counted}, purged={self.purged})"


class Sweeper:
    """Expire overdue pairs and count finished ones; run it in a worker process.

    Args:
        engine: SQLAlchemy ``Engine`` or ``AsyncEngine`` of the pairs table.
        objectives: the :class:`EventPair` objectives to sweep (others are ignored).
        clock: wall clock (default: the objectives' own).
        interval: seconds between sweeps in :meth:`run` / :meth:`arun`.
        batch_size: most pairs counted per transaction.
        retention: seconds a counted pair is kept (then deleted).
        tracker: a :class:`~surefoot.slo.Tracker` ticked after every sweep, so burn hooks
            fire in the worker too.

    Raises:
        ConfigurationError: no event-pair objective, or bad numbers.
    """

    def __init__(
        self,
        engine: Any,
        objectives: Iterable[Any],
        *,
        clock: Clock | None = None,
        interval: float = 1.0,
        batch_size: int = 500,
        retention: float = 86400.0,
        tracker: Any = None,
    ) -> None:
        self.objectives = {o.name: o for o in objectives if isinstance(o, EventPair)}
        if not self.objectives:
            raise ConfigurationError("Sweeper needs at least one slo.EventPair objective")
        if interval <= 0 or batch_size < 1 or retention < 0:
            raise ConfigurationError("Sweeper: interval > 0, batch_size >= 1 and retention >= 0 are required")
        self.engine = engine
        self.clock = clock or next(iter(self.objectives.values())).clock or SYSTEM_CLOCK
        self.interval = float(interval)
        self.batch_size = int(batch_size)
        self.retention = float(retention)
        self.tracker = tracker
        self.is_async = type(engine).__name__ == "AsyncEngine"
        from ._tracker import bind_all

        bind_all(self.objectives.values(), next(iter(self.objectives.values()))._registry)

    # -- one sweep, on a sync connection (also run through AsyncConnection.run_sync) ----

    def _sweep_on(self, conn: Any, now: float) -> tuple[SweepResult, list[tuple[str, float, str]]]:
        import sqlalchemy as sa

        t = pairs_table
        names = sorted(self.objectives)
        result = SweepResult()
        expired = conn.execute(
            sa.update(t)
            .where(t.c.slo.in_(names), t.c.outcome.is_(None), t.c.deadline_at < now)
            .values(finished_at=now, outcome="bad")
            .returning(t.c.key)
        )
        result.expired = len(expired.all())
        claim = (
            sa.select(t.c.slo, t.c.key)
            .where(t.c.slo.in_(names), t.c.counted.is_(False), t.c.outcome.is_not(None))
            .order_by(t.c.finished_at)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        rows = conn.execute(
            sa.update(t)
            .where(sa.tuple_(t.c.slo, t.c.key).in_(claim))
            .values(counted=True)
            .returning(t.c.slo, t.c.started_at, t.c.finished_at, t.c.outcome)
        ).all()
        done: list[tuple[str, float, str]] = []
        increments: dict[tuple[str, str, int], int] = {}
        for slo, started_at, finished_at, outcome in rows:
            seconds = max(0.0, finished_at - started_at)
            done.append((slo, seconds, outcome))
            minute = minute_of(finished_at)
            increments[(slo, outcome, minute)] = increments.get((slo, outcome, minute), 0) + 1
            bound = _bucket(self.objectives[slo].buckets, seconds)
            key = (slo, HIST_PREFIX + bound, minute)
            increments[key] = increments.get(key, 0) + 1
            result.counted[(slo, outcome)] = result.counted.get((slo, outcome), 0) + 1
        SqlCounts.add_on(conn, increments)
        if self.retention >= 0:
            purged = conn.execute(
                sa.delete(t).where(t.c.slo.in_(names), t.c.counted.is_(True), t.c.finished_at < now - self.retention)
                .returning(t.c.key)
            )
            result.purged = len(purged.all())
        return result, done

    def _after_commit(self, result: SweepResult, done: list[tuple[str, float, str]]) -> None:
        for slo, seconds, outcome in done:
            self.objectives[slo].record(seconds, outcome == "good")
        if result.expired:
            _log.info("slo_pairs_expired", count=result.expired)

    def sweep(self) -> SweepResult:
        """One sweep in its own transaction (sync engine)."""
        if self.is_async:
            raise ConfigurationError("this Sweeper has an AsyncEngine: call `await sweeper.asweep()`")
        now = self.clock.time()
        with self.engine.begin() as conn:
            result, done = self._sweep_on(conn, now)
        self._after_commit(result, done)
        return result

    async def asweep(self) -> SweepResult:
        """Async twin of :meth:`sweep` (``AsyncEngine``, or a sync engine in a thread)."""
        import asyncio

        if not self.is_async:
            return await asyncio.to_thread(self.sweep)
        now = self.clock.time()
        async with self.engine.begin() as conn:
            swept: tuple[SweepResult, list[tuple[str, float, str]]] = await conn.run_sync(
                lambda c: self._sweep_on(c, now)
            )
        result, done = swept
        self._after_commit(result, done)
        return result

    def run(self, *, stop: threading.Event | None = None) -> None:
        """Sweep every ``interval`` seconds until ``stop`` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                result = self.sweep()
                if self.tracker is not None:
                    self.tracker.tick()
            except Exception as exc:  # the next sweep retries; nothing is lost
                _log.error("slo_sweep_failed", error_code="SLO_SWEEP_FAILED", error_message=str(exc), exc_info=exc)
                result = None
            if result is None or sum(result.counted.values()) < self.batch_size:
                _pause(self.clock, stop, self.interval)

    async def arun(self) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        while True:
            try:
                result = await self.asweep()
                if self.tracker is not None:
                    await self.tracker.atick()
            except Exception as exc:
                _log.error("slo_sweep_failed", error_code="SLO_SWEEP_FAILED", error_message=str(exc), exc_info=exc)
                result = None
            if result is None or sum(result.counted.values()) < self.batch_size:
                await self.clock.asleep(self.interval)


def _pause(clock: Clock, stop: threading.Event, seconds: float) -> None:
    # The real clock waits on the event, so stop.set() ends the loop at once.
    if clock is SYSTEM_CLOCK:
        stop.wait(seconds)
    else:
        clock.sleep(seconds)


def _bucket(bounds: tuple[float, ...], seconds: float) -> str:
    for bound in bounds:
        if seconds <= bound:
            return repr(float(bound))
    return "+Inf"

