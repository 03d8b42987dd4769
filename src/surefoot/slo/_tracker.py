"""The live evaluator behind ``/slo``: windows, budget, burn rates, tiers and burn hooks.

A :class:`Tracker` turns the process's cumulative counters into per-minute increments at
every :meth:`Tracker.tick` (the hot path only bumps a Prometheus counter), adds them to a
store (this process, or ``surefoot_slo_counts`` shared by every process when an engine is
given), then evaluates every objective and calls the burn hooks of tiers that started or
stopped firing.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from .._core.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigurationError
from ._objectives import EventPair, Objective
from ._store import HIST_PREFIX, HIST_WINDOW, MemoryCounts, SqlCounts, Sums
from ._windows import (
    DEFAULT_TIERS,
    PERIOD,
    REPORTED_WINDOWS,
    WINDOWS,
    Tier,
    WindowCounts,
    minute_of,
    quantile,
)

__all__ = ["Tracker", "BurnEvent", "bind_all"]

_log = structlog.get_logger("surefoot.slo")

Distribution = Callable[[], tuple[Sequence[float], Sequence[float]]]
"""Returns (upper bounds, cumulative counts) of a histogram, ``+Inf`` last."""


@dataclass(frozen=True)
class BurnEvent:
    """A tier of an objective started (``firing=True``) or stopped burning."""

    objective: str
    tier: str
    firing: bool
    burn_rates: dict[str, float] = field(default_factory=dict)


def bind_all(objectives: Iterable[Objective], registry: Any = None) -> None:
    """Bind objectives to ``registry``; all pair deadlines become buckets of the shared histogram."""
    objectives = list(objectives)
    pairs = [o for o in objectives if isinstance(o, EventPair)]
    if pairs:
        from .._core.state import default_registry
        from ._objectives import SLO_PAIR_DURATION

        buckets = sorted({b for p in pairs for b in p.buckets})
        SLO_PAIR_DURATION.get(registry if registry is not None else default_registry(), buckets=tuple(buckets))
    for objective in objectives:
        objective.bind(registry)


def _pair_distribution(objective: EventPair) -> Distribution:
    def read() -> tuple[list[float], list[float]]:
        bounds: list[float] = []
        counts: list[float] = []
        for metric in objective._duration_child.collect():
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    bounds.append(float(sample.labels["le"]))
                    counts.append(sample.value)
        return bounds, counts

    return read


class Tracker:
    """Windowed SLIs, error budget, burn rates and tiers for a set of objectives.

    Args:
        objectives: the objectives to evaluate (names must be unique).
        engine: a SQLAlchemy ``Engine`` or ``AsyncEngine``: counts are shared through
            ``surefoot_slo_counts`` by every process using the same database. Without it,
            the figures are this process's own.
        tiers: alert tiers (default: the SRE Workbook's page and ticket tiers).
        clock: wall clock (``FakeClock`` in tests).
        registry: Prometheus registry the objectives record into.
        on_burn: a hook, as :meth:`on_burn`.

    Raises:
        ConfigurationError: duplicate objective names or unknown tier windows.
    """

    def __init__(
        self,
        objectives: Iterable[Objective],
        *,
        engine: Any = None,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        clock: Clock = SYSTEM_CLOCK,
        registry: Any = None,
        on_burn: Callable[[BurnEvent], Any] | None = None,
    ) -> None:
        self.objectives: list[Objective] = list(objectives)
        names = [o.name for o in self.objectives]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"objective names must be unique; repeated: {', '.join(duplicates)}")
        for tier in tiers:
            for cond in tier.conditions:
                for w in (cond.long, cond.short):
                    if w not in WINDOWS:
                        raise ConfigurationError(
                            f"tier {tier.name!r} uses window {w!r}; known windows: {', '.join(WINDOWS)}"
                        )
        self.tiers = tuple(tiers)
        self.clock = clock
        self.engine = engine
        self.store: MemoryCounts | SqlCounts = SqlCounts(engine) if engine is not None else MemoryCounts()
        bind_all(self.objectives, registry)
        self._distributions: dict[str, Distribution] = {
            o.name: _pair_distribution(o) for o in self.objectives if isinstance(o, EventPair)
        }
        self._bounds: dict[str, list[float]] = {
            o.name: [*o.buckets, math.inf] for o in self.objectives if isinstance(o, EventPair)
        }
        self._last: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()
        self._hooks: list[tuple[Callable[[BurnEvent], Any], str | None, str | None]] = []
        self._firing: dict[tuple[str, str], bool] = {}
        self._report: dict[str, Any] | None = None
        self._report_mono = -math.inf
        if on_burn is not None:
            self.on_burn(on_burn)
        # Counts recorded before the tracker existed belong to no minute we can name: start here.
        self._snapshot(self.clock.time(), baseline=True)

    # -- configuration -------------------------------------------------------------------

    def set_distribution(self, objective: Objective, read: Distribution) -> None:
        """Use ``read`` (bounds, cumulative counts) as the latency distribution of ``objective``."""
        self._distributions[objective.name] = read
        for bound, value in zip(*read(), strict=False):
            self._last[(objective.name, HIST_PREFIX + _bound_text(bound))] = value

    def on_burn(
        self, callback: Callable[[BurnEvent], Any], *, objective: Objective | str | None = None, tier: str | None = None
    ) -> Callable[[BurnEvent], Any]:
        """Call ``callback(BurnEvent)`` when a tier starts or stops firing.

        Hooks run in the process evaluating the tick (within one tick interval of the
        change); a failing hook is logged and never stops evaluation. An ``async def`` hook
        is awaited when the tracker runs in an event loop (:meth:`atick`, :meth:`arun`).

        Args:
            callback: the hook; returned unchanged so this works as a decorator.
            objective: only this objective (name or object).
            tier: only this tier (``"page"``, ``"ticket"``).
        """
        name = objective.name if isinstance(objective, Objective) else objective
        self._hooks.append((callback, name, tier))
        return callback

    # -- counting ------------------------------------------------------------------------

    def _series_values(self, objective: Objective) -> list[tuple[str, float]]:
        good, bad = objective.counts()
        values: list[tuple[str, float]] = [("good", good), ("bad", bad)]
        read = self._distributions.get(objective.name)
        if read is not None:
            previous = 0.0
            bounds, cumulatives = read()
            if bounds and len(bounds) != len(self._bounds.get(objective.name, ())):
                self._bounds[objective.name] = list(bounds)
            for bound, cumulative in zip(bounds, cumulatives, strict=False):
                values.append((HIST_PREFIX + _bound_text(bound), cumulative - previous))
                previous = cumulative
        return values

    def _snapshot(self, now: float, *, baseline: bool = False) -> dict[tuple[str, str, int], int]:
        minute = minute_of(now)
        increments: dict[tuple[str, str, int], int] = {}
        with self._lock:
            for objective in self.objectives:
                if self.store.shared and isinstance(objective, EventPair):
                    continue  # the sweeper writes pair outcomes to the shared table itself
                for series, value in self._series_values(objective):
                    key = (objective.name, series)
                    delta = value - self._last.get(key, 0.0)
                    self._last[key] = value
                    if delta > 0 and not baseline:
                        increments[(objective.name, series, minute)] = int(round(delta))
            for pending, n in self._pending.items():
                increments[pending] = increments.get(pending, 0) + n
            self._pending = {}
        return increments

    def _requeue(self, increments: dict[tuple[str, str, int], int]) -> None:
        with self._lock:
            for key, n in increments.items():
                self._pending[key] = self._pending.get(key, 0) + n

    def _sync_io(self, conn: Any, increments: dict[tuple[str, str, int], int], now: float) -> Sums:
        SqlCounts.add_on(conn, increments)
        if minute_of(now) % 10 == 0:
            SqlCounts.prune_on(conn, now)
        return SqlCounts.sums_on(conn, [o.name for o in self.objectives], now,
                                 [o.name for o in self.objectives if isinstance(o, EventPair)])

    def tick(self) -> dict[str, Any]:
        """Count, share, evaluate and fire hooks now; returns the report (as ``/slo``)."""
        now = self.clock.time()
        increments = self._snapshot(now)
        if isinstance(self.store, SqlCounts):
            if self.store.is_async:
                raise ConfigurationError("this tracker has an AsyncEngine: call `await tracker.atick()`")
            try:
                with self.engine.begin() as conn:
                    sums = self._sync_io(conn, increments, now)
            except BaseException:
                self._requeue(increments)
                raise
        else:
            self.store.add(increments)
            sums = self.store.sums([o.name for o in self.objectives], now)
        report, events = self._evaluate(sums, now)
        for event, callback in events:
            result = _call_hook(callback, event)
            if inspect.isawaitable(result):
                _log.error("slo_hook_needs_event_loop", objective=event.objective, tier=event.tier,
                           error_message="async burn hook called from a sync tick; use atick()/arun()")
                if hasattr(result, "close"):
                    result.close()
        return report

    async def atick(self) -> dict[str, Any]:
        """Async twin of :meth:`tick` (database work off the event loop or on the AsyncEngine)."""
        if isinstance(self.store, SqlCounts) and self.store.is_async:
            now = self.clock.time()
            increments = self._snapshot(now)
            try:
                async with self.engine.begin() as conn:
                    sums = await conn.run_sync(lambda c: self._sync_io(c, increments, now))
            except BaseException:
                self._requeue(increments)
                raise
            report, events = self._evaluate(sums, now)
        elif isinstance(self.store, SqlCounts):
            now = self.clock.time()
            increments = self._snapshot(now)

            def io() -> Sums:
                with self.engine.begin() as conn:
                    return self._sync_io(conn, increments, now)

            try:
                sums = await asyncio.to_thread(io)  # a sync engine: its queries off the event loop
            except BaseException:
                self._requeue(increments)
                raise
            report, events = self._evaluate(sums, now)
        else:
            now = self.clock.time()
            self.store.add(self._snapshot(now))
            report, events = self._evaluate(self.store.sums([o.name for o in self.objectives], now), now)
        for event, callback in events:
            result = _call_hook(callback, event)
            if inspect.isawaitable(result):
                task = asyncio.create_task(_await_hook(result, event), context=contextvars.copy_context())
                await asyncio.wait({task})
        return report

    def report(self, *, max_age: float = 0.2) -> dict[str, Any]:
        """The last report if computed less than ``max_age`` real seconds ago, else a fresh :meth:`tick`."""
        if self._report is not None and time.monotonic() - self._report_mono < max_age:
            return self._report
        return self.tick()

    async def areport(self, *, max_age: float = 0.2) -> dict[str, Any]:
        """Async twin of :meth:`report`."""
        if self._report is not None and time.monotonic() - self._report_mono < max_age:
            return self._report
        return await self.atick()

    def run(self, *, interval: float = 5.0, stop: threading.Event | None = None) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set (a worker's loop)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a database hiccup must not end the loop; it is logged
                _log.error("slo_tick_failed", error_code="SLO_TICK_FAILED", error_message=str(exc), exc_info=exc)
            if self.clock is SYSTEM_CLOCK:
                stop.wait(interval)
            else:
                self.clock.sleep(interval)

    async def arun(self, *, interval: float = 5.0) -> None:
        """Tick every ``interval`` seconds until cancelled (started by :func:`surefoot.slo.install`)."""
        while True:
            try:
                await self.atick()
            except Exception as exc:
                _log.error("slo_tick_failed", error_code="SLO_TICK_FAILED", error_message=str(exc), exc_info=exc)
            await self.clock.asleep(interval)

    # -- evaluation ----------------------------------------------------------------------

    def _evaluate(self, sums: Sums, now: float) -> tuple[dict[str, Any], list[tuple[BurnEvent, Callable[..., Any]]]]:
        objectives = []
        events: list[tuple[BurnEvent, Callable[..., Any]]] = []
        for objective in self.objectives:
            entry, changed = self._evaluate_one(objective, sums.get(objective.name, {}))
            objectives.append(entry)
            for event in changed:
                for callback, only_slo, only_tier in self._hooks:
                    if (only_slo is None or only_slo == event.objective) and (only_tier in (None, event.tier)):
                        events.append((event, callback))
        report = {"objectives": objectives, "evaluated_at": now, "shared": self.store.shared}
        self._report, self._report_mono = report, time.monotonic()
        return report, events

    def _evaluate_one(self, objective: Objective, series: dict[str, dict[str, int]]) -> tuple[dict[str, Any], list[BurnEvent]]:
        budget = objective.error_budget
        good, bad = series.get("good", {}), series.get("bad", {})
        counts = {w: WindowCounts(good.get(w, 0), bad.get(w, 0)) for w in WINDOWS}
        burn = {w: c.burn_rate(budget) for w, c in counts.items()}
        windows = {
            w: {"good": counts[w].good, "bad": counts[w].bad, "total": counts[w].total,
                "sli": counts[w].sli, "burn_rate": _round(burn[w])}
            for w in REPORTED_WINDOWS
        }
        alerts = []
        changed: list[BurnEvent] = []
        for tier in self.tiers:
            conditions = []
            tier_firing = False
            for cond in tier.conditions:
                firing = burn[cond.long] > cond.factor and burn[cond.short] > cond.factor
                tier_firing = tier_firing or firing
                conditions.append({"long": cond.long, "short": cond.short, "factor": cond.factor,
                                   "long_burn_rate": _round(burn[cond.long]),
                                   "short_burn_rate": _round(burn[cond.short]), "firing": firing})
            alerts.append({"tier": tier.name, "firing": tier_firing, "conditions": conditions})
            key = (objective.name, tier.name)
            if self._firing.get(key, False) != tier_firing:
                self._firing[key] = tier_firing
                changed.append(BurnEvent(objective.name, tier.name, tier_firing,
                                         {w: _round(b) for w, b in burn.items()}))
        bounds = self._bounds.get(objective.name)
        p95 = None
        if bounds:
            counts_5m = [series.get(HIST_PREFIX + _bound_text(b), {}).get(HIST_WINDOW, 0) for b in bounds]
            p95 = quantile(0.95, bounds, counts_5m)
        period = counts[PERIOD]
        entry = {
            "name": objective.name,
            "kind": objective.kind,
            "target": objective.target,
            "threshold_seconds": objective.threshold_seconds,
            "description": objective.description,
            "windows": windows,
            "error_budget_remaining": _round(1.0 - period.burn_rate(budget)),
            "p95_seconds": None if p95 is None else _round(p95),
            "alerts": alerts,
        }
        return entry, changed

    def firing(self, objective: Objective | str, tier: str) -> bool:
        """Whether ``tier`` of ``objective`` was firing at the last evaluation."""
        name = objective.name if isinstance(objective, Objective) else objective
        return self._firing.get((name, tier), False)


def _bound_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _call_hook(callback: Callable[[BurnEvent], Any], event: BurnEvent) -> Any:
    try:
        return callback(event)
    except Exception as exc:
        _log.error("slo_hook_failed", objective=event.objective, tier=event.tier,
                   error_code="SLO_HOOK_FAILED", error_message=str(exc), exc_info=exc)
        return None


async def _await_hook(result: Any, event: BurnEvent) -> None:
    try:
        await result
    except Exception as exc:
        _log.error("slo_hook_failed", objective=event.objective, tier=event.tier,
                   error_code="SLO_HOOK_FAILED", error_message=str(exc), exc_info=exc)
