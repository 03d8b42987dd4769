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


class MemoryCounts:
    """Per-minute counts in this process (one worker's view)."""

    shared = False

    def __init__(self) -> None:
        self._minutes: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)

    def add(self, increments: Increments) -> None:
        for (slo, series, minute), n in increments.items():
            buckets = self._minutes[(slo, series)]
            buckets[minute] = buckets.get(minute, 0) + n

    def sums(self, slos: Iterable[str], now: float) -> Sums:
        now_minute = minute_of(now)
        wanted = set(slos)
        out: Sums = {slo: {} for slo in wanted}
        for (slo, series), buckets in self._minutes.items():
            if slo not in wanted:
                continue
            keep = HIST_KEEP_MINUTES if series.startswith(HIST_PREFIX) else KEEP_MINUTES
            for minute in [m for m in buckets if m <= now_minute - keep]:
                del buckets[minute]
            windows = (HIST_WINDOW,) if series.startswith(HIST_PREFIX) else tuple(WINDOWS)
            out[slo][series] = {
                w: sum(v for m, v in buckets.items() if now_minute - window_minutes(WINDOWS[w]) < m <= now_minute)
                for w in windows
            }
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
    def sums_on(conn: Any, slos: Iterable[str], now: float) -> Sums:
        import sqlalchemy as sa

        from ._schema import counts_table as t

        names = sorted(set(slos))
        now_minute = minute_of(now)
        columns = [
            sa.func.sum(sa.case((t.c.minute > now_minute - window_minutes(sec), t.c.value), else_=0)).label(name)
            for name, sec in WINDOWS.items()
        ]
        stmt = (
            sa.select(t.c.slo, t.c.series, *columns)
            .where(t.c.slo.in_(names), t.c.minute > now_minute - window_minutes(WINDOWS[PERIOD]),
                   t.c.minute <= now_minute)
            .group_by(t.c.slo, t.c.series)
        )
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
