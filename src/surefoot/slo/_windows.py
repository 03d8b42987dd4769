"""Window arithmetic: minute buckets, windowed SLIs, burn rates and alert tiers.

Counts are kept per *minute* (``minute = floor(t / 60)``). A window of ``W`` seconds at time
``t`` covers the minutes ``m`` with ``now_minute - W/60 < m <= now_minute``: the current,
partly elapsed minute and the ``W/60 - 1`` full minutes before it, the same approximation
Prometheus makes with ``rate()`` over scraped samples. Burn rate is the error ratio divided
by the error budget; a tier fires when *both* its long and short windows burn faster than
its factor (Google SRE Workbook, "Alerting on SLOs").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "WINDOWS",
    "REPORTED_WINDOWS",
    "Condition",
    "Tier",
    "DEFAULT_TIERS",
    "WindowCounts",
    "minute_of",
    "window_minutes",
    "duration_text",
    "parse_duration",
    "quantile",
]

MINUTE = 60

WINDOWS: dict[str, int] = {
    "5m": 300, "30m": 1800, "1h": 3600, "2h": 7200, "6h": 21600, "1d": 86400, "3d": 259200, "28d": 2419200,
}
"""Every window surefoot evaluates (those of the default tiers and the 28-day budget period)."""

REPORTED_WINDOWS: tuple[str, ...] = ("5m", "1h", "6h", "1d", "28d")
"""The windows ``/slo`` shows per objective."""

PERIOD = "28d"
"""The error-budget period."""


def minute_of(t: float) -> int:
    """The minute bucket of wall time ``t`` (seconds since the epoch)."""
    return math.floor(t / MINUTE)


def window_minutes(seconds: int) -> int:
    """How many minute buckets a window of ``seconds`` spans (at least one)."""
    return max(1, seconds // MINUTE)


_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration_text(seconds: float) -> str:
    """Render seconds as a Prometheus duration in the largest exact unit (``3600`` → ``1h``)."""
    total = int(round(seconds))
    if total <= 0:
        raise ValueError(f"a duration must be at least one second; got {seconds!r}")
    for unit, size in _UNITS:
        if total % size == 0:
            return f"{total // size}{unit}"
    raise AssertionError("unreachable: every integer is a whole number of seconds")


def parse_duration(text: str) -> int:
    """Parse ``5m`` / ``1h`` / ``28d`` / ``30s`` into seconds.

    Raises:
        ValueError: the text is not ``<integer><s|m|h|d>``.
    """
    sizes = dict(_UNITS)
    if not isinstance(text, str) or len(text) < 2 or text[-1] not in sizes or not text[:-1].isdigit():
        raise ValueError(f"a window is written like 5m, 1h, 6h, 1d or 28d; got {text!r}")
    return int(text[:-1]) * sizes[text[-1]]


@dataclass(frozen=True)
class Condition:
    """One multi-window condition: both windows must burn faster than ``factor``."""

    long: str
    short: str
    factor: float


@dataclass(frozen=True)
class Tier:
    """An alert tier (``page``, ``ticket``): fires when any of its conditions holds."""

    name: str
    conditions: tuple[Condition, ...]
    for_seconds: int = 0


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("page", (Condition("1h", "5m", 14.4), Condition("6h", "30m", 6.0)), for_seconds=120),
    Tier("ticket", (Condition("1d", "2h", 3.0), Condition("3d", "6h", 1.0)), for_seconds=900),
)
"""The SRE Workbook's tiers: page at 14.4× (1 h/5 m) or 6× (6 h/30 m), ticket at 3× (1 d/2 h) or 1× (3 d/6 h)."""


@dataclass(frozen=True)
class WindowCounts:
    """Good and bad events in one window, with the derived figures."""

    good: int
    bad: int

    @property
    def total(self) -> int:
        return self.good + self.bad

    @property
    def sli(self) -> float | None:
        """good / total, ``None`` without events."""
        return self.good / self.total if self.total else None

    def error_ratio(self) -> float:
        return self.bad / self.total if self.total else 0.0

    def burn_rate(self, error_budget: float) -> float:
        """Error ratio divided by the error budget (1.0 spends exactly the budget over the period)."""
        return self.error_ratio() / error_budget


def sum_window(buckets: Mapping[int, int], now_minute: int, seconds: int) -> int:
    """Sum per-minute counts over the window of ``seconds`` ending in ``now_minute``."""
    first = now_minute - window_minutes(seconds)
    if len(buckets) <= window_minutes(seconds):
        return sum(v for m, v in buckets.items() if first < m <= now_minute)
    return sum(buckets.get(m, 0) for m in range(first + 1, now_minute + 1))


def quantile(q: float, bounds: Iterable[float], counts: Iterable[int]) -> float | None:
    """``histogram_quantile`` on non-cumulative bucket counts (last bound may be ``inf``).

    Linear interpolation inside the bucket, as Prometheus does; a quantile in the ``+Inf``
    bucket returns the highest finite bound. ``None`` without observations.
    """
    pairs = list(zip(bounds, counts))
    total = sum(c for _, c in pairs)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    for bound, count in pairs:
        if count and seen + count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - seen) / count)
        seen += count
        if not math.isinf(bound):
            lower = bound
    return lower
