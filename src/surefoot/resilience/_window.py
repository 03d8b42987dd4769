"""Sliding windows of call outcomes for the circuit breaker, and the latency baseline.

An outcome is a small int: bit 0 set = failure, bit 1 set = slow (a slow call may be a
success). Both windows keep running totals so that recording is O(1) and reading the
totals is free:

* :class:`CountWindow` — the last ``size`` outcomes in a ring.
* :class:`TimeWindow` — outcomes of the last ``size`` seconds in per-second buckets
  stamped with their epoch second; a bucket whose stamp is older than the window is
  subtracted from the totals when time moves past it (at most ``size`` buckets per
  clock step, so amortised O(1) per second of elapsed time).
* :class:`LatencyBaseline` — "P95 latency > k x baseline over a window", where the
  baseline is learned from the breaker's own healthy history (see its docstring).

None of these classes locks: the breaker calls them under its own lock.
"""

from __future__ import annotations

import itertools
import math

__all__ = ["FAILURE", "SLOW", "CountWindow", "TimeWindow", "LatencyBaseline", "quantile_from_buckets"]

FAILURE = 1
SLOW = 2


class CountWindow:
    """The last ``size`` outcomes.

    Attributes:
        calls: outcomes currently in the window (at most ``size``).
        failures: failed outcomes in the window.
        slow: slow outcomes in the window.
    """

    __slots__ = ("size", "_ring", "_pos", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"a count window needs a size >= 1 calls, got {size!r}")
        self.size = size
        self.reset()

    def reset(self) -> None:
        """Forget every outcome."""
        self._ring = [-1] * self.size
        self._pos = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def record(self, outcome: int, now: float = 0.0) -> None:
        """Add one outcome (``FAILURE``/``SLOW`` bits), evicting the oldest when full."""
        pos = self._pos
        ring = self._ring
        old = ring[pos]
        if old < 0:
            self.calls += 1
        elif old:
            self.failures -= old & 1
            self.slow -= old >> 1
        ring[pos] = outcome
        if outcome:
            self.failures += outcome & 1
            self.slow += outcome >> 1
        pos += 1
        self._pos = 0 if pos == self.size else pos

    def advance(self, now: float) -> None:
        """Count windows do not age; present for symmetry with :class:`TimeWindow`."""


class TimeWindow:
    """Outcomes of the last ``size`` seconds, in one bucket per second.

    ``now`` is a monotonic time in seconds; the bucket of a time is ``int(now)``. A time
    earlier than the newest bucket (a caller that measured before another recorded) is
    counted in the newest bucket rather than lost.

    Attributes:
        calls, failures, slow: totals over the buckets in the window.
    """

    __slots__ = (
        "size", "_epoch", "_calls", "_failures", "_slow", "_head", "calls", "failures", "slow",
        "_pending", "note_success", "_pending_reads", "_folded",
    )

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"a time window needs a size >= 1 seconds, got {size!r}")
        self.size = size
        # note_success(): a success in the newest second counted without any lock (one C
        # call, atomic under the GIL); folded into the newest bucket by the next locked
        # operation. A fold racing with the move to a new second may put a success one
        # second late, which a window of many seconds does not notice.
        self._pending = itertools.count()
        self.note_success = self._pending.__next__
        self._pending_reads = 0
        self._folded = 0
        self.reset()

    def _fold(self) -> None:
        v = next(self._pending) - self._pending_reads
        self._pending_reads += 1
        delta = v - self._folded
        if delta:
            self._folded = v
            if self._head >= 0:
                self._calls[self._head % self.size] += delta
                self.calls += delta

    def reset(self) -> None:
        """Forget every outcome (including successes noted but not yet folded)."""
        self._fold()
        n = self.size
        self._epoch = [-1] * n
        self._calls = [0] * n
        self._failures = [0] * n
        self._slow = [0] * n
        self._head = -1
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def _expire(self, second: int) -> None:
        # Clear every bucket whose second fell out of the window when moving head -> second.
        head = self._head
        n = self.size
        if head < 0 or second - head >= n:
            first = second - n + 1
        else:
            first = head + 1
        for s in range(first, second + 1):
            i = s % n
            if self._epoch[i] >= 0:
                self.calls -= self._calls[i]
                self.failures -= self._failures[i]
                self.slow -= self._slow[i]
                self._calls[i] = self._failures[i] = self._slow[i] = 0
            self._epoch[i] = s
        self._head = second

    def advance(self, now: float) -> None:
        """Move the window to ``now``, dropping buckets older than ``size`` seconds."""
        self._fold()
        second = int(now)
        if second > self._head:
            self._expire(second)

    def record(self, outcome: int, now: float) -> None:
        """Add one outcome at monotonic time ``now``."""
        self._fold()
        second = int(now)
        if second > self._head:
            self._expire(second)
        i = self._head % self.size
        self._calls[i] += 1
        self.calls += 1
        if outcome:
            f = outcome & 1
            s = outcome >> 1
            self._failures[i] += f
            self.failures += f
            self._slow[i] += s
            self.slow += s


# Latency histogram: 4 sub-buckets per power of two (~19 % wide), from 2**-20 s (~1 us)
# to 2**11 s (~34 min). frexp is one C call, far cheaper than log().
_SUB = 4
_MIN_EXP = -20
_MAX_EXP = 11
N_LATENCY_BUCKETS = (_MAX_EXP - _MIN_EXP + 1) * _SUB


def latency_bucket(seconds: float) -> int:
    """Index of the histogram bucket holding ``seconds``."""
    if seconds <= 0.0:
        return 0
    m, e = math.frexp(seconds)  # seconds = m * 2**e, 0.5 <= m < 1
    if e < _MIN_EXP:
        return 0
    if e > _MAX_EXP:
        return N_LATENCY_BUCKETS - 1
    return (e - _MIN_EXP) * _SUB + int((m - 0.5) * (2 * _SUB))


def bucket_upper(index: int) -> float:
    """Upper bound (seconds) of histogram bucket ``index``."""
    e, sub = divmod(index, _SUB)
    return math.ldexp(0.5 + (sub + 1) / (2 * _SUB), e + _MIN_EXP)


def bucket_mid(index: int) -> float:
    """Midpoint (seconds) of histogram bucket ``index`` (within ~12 % of any value in it)."""
    e, sub = divmod(index, _SUB)
    return math.ldexp(0.5 + (sub + 0.5) / (2 * _SUB), e + _MIN_EXP)


def quantile_from_buckets(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile (bucket midpoint) of a histogram, or ``None`` when empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if c and seen >= rank:
            return bucket_mid(i)
    return bucket_mid(len(counts) - 1)  # pragma: no cover - rank <= total always hits


class LatencyBaseline:
    """Detects "P95 latency > ``factor`` x baseline for ``window`` seconds" (seed 004).

    How it works (all in the breaker's injected monotonic time):

    * Durations go into a log-scale histogram (4 buckets per doubling, so a quantile is
      known within ~12 %) of the current *slice* of ``window / slices`` seconds (30 s for
      the default 5 minutes in 10 slices). Recording costs one ``frexp`` and one increment.
    * When a slice ends (seen by the first call after its end) it is *judged* if it holds
      at least ``min_calls`` samples: its P95 is compared with ``factor`` x baseline.
    * A slice within the bound (or any judged slice before a baseline exists) is *healthy*
      and feeds the baseline, an EWMA of healthy slice P95s (weight ``alpha``). Slow slices
      never feed it, so a slow dependency cannot teach the breaker that slow is normal.
      The baseline is usable after ``warmup_slices`` healthy slices.
    * A slow slice starts (or extends) a *slow streak*; a healthy slice ends it; a slice
      with too few samples neither extends nor ends it. The breaker trips when the streak
      has lasted ``window`` seconds: the P95 has been above the bound for the whole window,
      like a Prometheus alert with ``for: 5m``. A short burst cannot trip it.

    The baseline survives state changes (``restart``): after a recovery the breaker still
    knows what normal looks like.
    """

    __slots__ = (
        "factor", "window", "slices", "slice_seconds", "min_calls", "alpha", "warmup_slices",
        "quantile", "baseline", "healthy_slices", "_hist", "_slice_start", "_streak_since",
        "last_slice_p95",
    )

    def __init__(
        self,
        *,
        factor: float = 3.0,
        window: float = 300.0,
        slices: int = 10,
        min_calls: int = 10,
        alpha: float = 0.2,
        warmup_slices: int = 3,
        quantile: float = 0.95,
    ) -> None:
        if factor <= 1.0:
            raise ValueError(f"latency factor must be > 1 (e.g. 3.0 for 3x baseline), got {factor!r}")
        if window <= 0 or slices < 1:
            raise ValueError("latency window must be > 0 seconds split into >= 1 slices")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"baseline alpha must be in (0, 1], got {alpha!r}")
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"latency quantile must be in (0, 1), got {quantile!r}")
        if min_calls < 1:
            raise ValueError(f"latency min_calls must be >= 1, got {min_calls!r}")
        self.factor = float(factor)
        self.window = float(window)
        self.slices = int(slices)
        self.slice_seconds = self.window / self.slices
        self.min_calls = int(min_calls)
        self.alpha = float(alpha)
        self.warmup_slices = int(warmup_slices)
        self.quantile = float(quantile)
        self.baseline: float | None = None
        self.healthy_slices = 0
        self.last_slice_p95: float | None = None
        self._hist = [0] * N_LATENCY_BUCKETS
        self._slice_start: float | None = None
        self._streak_since: float | None = None

    def restart(self, now: float) -> None:
        """Start a new slice and forget any slow streak (the baseline is kept)."""
        h = self._hist
        for i in range(len(h)):
            h[i] = 0
        self._slice_start = now
        self._streak_since = None

    def record(self, duration: float, now: float) -> bool:
        """Add one duration at ``now``; return True when the breaker should trip."""
        start = self._slice_start
        trip = False
        if start is None:
            self._slice_start = now
        elif now - start >= self.slice_seconds:
            trip = self._roll(now, start)
        self._hist[latency_bucket(duration)] += 1
        return trip

    def _roll(self, now: float, start: float) -> bool:
        """End the current slice: judge it, reset the histogram, check the streak."""
        h = self._hist
        slice_end = start + self.slice_seconds
        if sum(h) >= self.min_calls:
            p = quantile_from_buckets(h, self.quantile)
            self.last_slice_p95 = p
            ready = self.baseline is not None and self.healthy_slices >= self.warmup_slices
            if p is not None and ready and p > self.factor * self.baseline:  # type: ignore[operator]
                if self._streak_since is None:
                    self._streak_since = start
            elif p is not None:
                self.baseline = p if self.baseline is None else (
                    self.alpha * p + (1.0 - self.alpha) * self.baseline
                )
                self.healthy_slices += 1
                self._streak_since = None
        for i in range(len(h)):
            h[i] = 0
        # The new slice starts at the slice boundary that contains ``now``.
        skipped = int((now - start) // self.slice_seconds)
        self._slice_start = start + skipped * self.slice_seconds
        streak = self._streak_since
        return streak is not None and slice_end - streak >= self.window
