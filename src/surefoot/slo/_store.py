"""Where per-minute counts live: in this process, or in the database shared by all processes.

Both stores take *increments* ``{(slo, series, minute): n}`` and answer window sums
``{slo: {series: {window: n}}}``. Histogram series (``le:<bound>``) are only summed over the
5-minute window and kept for an hour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from ._windows import PERIOD, WINDOWS, minute_of, window_minutes

__all__ = ["Increments", "Sums", "MemoryCounts", "SqlCounts"]

Increments = Mapping[tuple[str, str, int], int]
Sums = dict[str, dict[str, dict[str, int]]]

HIST_PREFIX = "le:"
HIST_WINDOW = "5m"
HIST_KEEP_MINUTES = 60
KEEP_MINUTES = window_minutes(WINDOWS[PERIOD]) + 60


FINE_SECONDS = 6 * 3600
"""Windows up to six hours are summed minute by minute; longer ones by whole hours."""


def covers(window_seconds: int, now_minute: int, minute: int) -> bool:
    """Whether ``minute`` counts in a window of ``window_seconds`` ending in ``now_minute``.

    Up to six hours: the minutes ``now - W/60 < m <= now``. Longer windows are kept per hour
    and include every hour that overlaps that range (their old edge rounds out to the hour).
    """
    if minute > now_minute:
        return False
    first = now_minute - window_minutes(window_seconds)
    if window_seconds <= FINE_SECONDS:
        return minute > first
    return minute // 60 * 60 + 59 > first


class MemoryCounts:
    """Per-minute (and per-hour) counts in this process (one worker's view)."""

    shared = False

    def __init__(self) -> None:
        self._minutes: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
        self._hours: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)

    def add(self, increments: Increments) -> None:
        for (slo, series, minute), n in increments.items():
            buckets = self._minutes[(slo, series)]
            buckets[minute] = buckets.get(minute, 0) + n
            if not series.startswith(HIST_PREFIX):
                hours = self._hours[(slo, series)]
                hours[minute // 60] = hours.get(minute // 60, 0) + n

    def sums(self, slos: Iterable[str], now: float) -> Sums:
        now_minute = minute_of(now)
        wanted = set(slos)
        out: Sums = {slo: {} for slo in wanted}
        fine_keep = window_minutes(FINE_SECONDS) + 1
        for (slo, series), buckets in self._minutes.items():
            if slo not in wanted:
                continue
            keep = HIST_KEEP_MINUTES if series.startswith(HIST_PREFIX) else fine_keep
            for minute in [m for m in buckets if m <= now_minute - keep]:
                del buckets[minute]
            hours = self._hours.get((slo, series), {})
            for hour in [h for h in hours if h * 60 + 59 <= now_minute - KEEP_MINUTES]:
                del hours[hour]
            windows = (HIST_WINDOW,) if series.startswith(HIST_PREFIX) else tuple(WINDOWS)
            values: dict[str, int] = {}
            for w in windows:
                seconds = WINDOWS[w]
                if seconds <= FINE_SECONDS:
                    values[w] = sum(v for m, v in buckets.items() if covers(seconds, now_minute, m))
                else:
                    values[w] = sum(v for h, v in hours.items() if covers(seconds, now_minute, h * 60))
            out[slo][series] = values
        return out


class SqlCounts:
    """Per-minute counts in ``surefoot_slo_counts``, shared by every process on the database."""

    shared = True

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.is_async = type(engine).__name__ == "AsyncEngine"

    # The functions below take a sync Connection: run directly, or via AsyncConnection.run_sync.

    @staticmethod
    def add_on(conn: Any, increments: Increments) -> None:
        """Add ``increments`` inside ``conn``'s transaction."""
        from ._schema import upsert_add

        rows = [
            {"slo": slo, "series": series, "minute": minute, "value": n}
            for (slo, series, minute), n in sorted(increments.items())
            if n
        ]
        if rows:
            conn.execute(upsert_add(conn), rows)

    @staticmethod
    def sums_on(conn: Any, slos: Iterable[str], now: float, pair_slos: Iterable[str] = ()) -> Sums:
        """Window sums of every series, in one statement (one snapshot).

        For event-pair objectives (``pair_slos``) the pairs the sweeper has not counted yet are
        added: finished ones by their outcome, overdue unfinished ones as bad. ``/slo`` is then
        exact at read time, whether or not a sweeper ran since.
        """
        import sqlalchemy as sa

        from ._schema import counts_table as t
        from ._schema import pairs_table as p

        names = sorted(set(slos))
        pairs = sorted(set(pair_slos))
        now_minute = minute_of(now)
        counted = sa.select(
            t.c.slo, t.c.series,
            *[sa.func.sum(sa.case((t.c.minute > now_minute - window_minutes(sec), t.c.value), else_=0)).label(name)
              for name, sec in WINDOWS.items()],
        ).where(
            t.c.slo.in_(names), t.c.minute > now_minute - window_minutes(WINDOWS[PERIOD]), t.c.minute <= now_minute,
        ).group_by(t.c.slo, t.c.series)
        parts: list[Any] = [counted]
        if pairs:
            when = sa.func.coalesce(p.c.finished_at, p.c.deadline_at)
            series = sa.func.coalesce(p.c.outcome, sa.literal("bad"))
            parts.append(sa.select(
                p.c.slo, series.label("series"),
                *[sa.func.sum(sa.case((when >= (now_minute - window_minutes(sec) + 1) * 60.0, 1), else_=0)).label(name)
                  for name, sec in WINDOWS.items()],
            ).where(
                p.c.slo.in_(pairs), p.c.counted.is_(False),
                sa.or_(p.c.outcome.is_not(None), p.c.deadline_at < now),
            ).group_by(p.c.slo, series))
        union = sa.union_all(*parts).subquery() if len(parts) > 1 else counted.subquery()
        stmt = sa.select(
            union.c.slo, union.c.series, *[sa.func.sum(union.c[name]).label(name) for name in WINDOWS],
        ).group_by(union.c.slo, union.c.series)
        out: Sums = {slo: {} for slo in names}
        for row in conn.execute(stmt):
            values = row._mapping
            out[row.slo][row.series] = {w: int(values[w] or 0) for w in WINDOWS}
        return out

    @staticmethod
    def prune_on(conn: Any, now: float) -> None:
        """Delete minutes older than the budget period (histogram rows: older than an hour)."""
        import sqlalchemy as sa

        from ._schema import counts_table as t

        now_minute = minute_of(now)
        conn.execute(sa.delete(t).where(t.c.minute <= now_minute - KEEP_MINUTES))
        conn.execute(
            sa.delete(t).where(t.c.series.like(HIST_PREFIX + "%"), t.c.minute <= now_minute - HIST_KEEP_MINUTES)
        )
