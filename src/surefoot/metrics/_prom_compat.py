"""The one place the domain metrics reach into prometheus_client's histogram children.

A database query may cost 10 µs; ``Histogram.observe`` (a lock, a Python loop over the
buckets) would add several percent to it. :func:`fast_observer` rewires a single-process
histogram child so that an observation is one C-level ``bisect``, one ``next()`` on the
bucket's ``itertools.count`` and one lock-free ``deque.append`` for the sum (folded into the
total when read, or whenever a bucket's count reaches a multiple of ``FOLD_MASK + 1``, so
memory stays bounded without scrapes). The child keeps prometheus_client's layout (``_buckets``, ``_sum``,
``_upper_bounds``) and answers scrapes as before. Where a release lays it out otherwise, or
the values live in the multi-process files, the public ``observe`` is returned unchanged.
"""

from __future__ import annotations

import collections
import functools
import itertools
import threading
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from prometheus_client.values import MutexValue

__all__ = ["fast_observer", "observer_parts", "FOLD_MASK"]


def _count_of(counter: itertools.count) -> int:  # type: ignore[type-arg]
    # repr(itertools.count(5)) == "count(5)": the next value, i.e. how often next() ran.
    return int(repr(counter)[6:-1])


class _CountValue:
    """A bucket counted by ``itertools.count`` (``next()`` is atomic under the GIL)."""

    __slots__ = ("_counter", "_base")

    def __init__(self, start: float) -> None:
        self._counter = itertools.count()
        self._base = start

    def inc(self, amount: float) -> None:
        self._base += amount

    def set(self, value: float, timestamp: Any = None) -> None:
        self._base = value - _count_of(self._counter)

    def get(self) -> float:
        return float(self._base + _count_of(self._counter))

    def set_exemplar(self, exemplar: Any) -> None:
        return None

    def get_exemplar(self) -> Any:
        return None


class _SumValue:
    """A sum added to by ``deque.append``, folded under a lock when read."""

    __slots__ = ("pending", "_total", "_lock")

    def __init__(self, start: float) -> None:
        self.pending: collections.deque[float] = collections.deque()
        self._total = start
        self._lock = threading.Lock()

    def fold(self) -> float:
        pending = self.pending
        with self._lock:
            total = self._total
            while pending:
                try:
                    total += pending.popleft()
                except IndexError:  # emptied by another thread between the two calls
                    break
            self._total = total
        return total

    def inc(self, amount: float) -> None:
        self.pending.append(amount)

    def set(self, value: float, timestamp: Any = None) -> None:
        with self._lock:
            self.pending.clear()
            self._total = value

    def get(self) -> float:
        return self.fold()

    def set_exemplar(self, exemplar: Any) -> None:
        return None

    def get_exemplar(self) -> Any:
        return None


Parts = tuple[tuple[Callable[[], int], ...], tuple[float, ...], Callable[[float], None], int,
              Callable[[], Any]]

#: A child's pending sums are folded whenever one of its buckets reaches a multiple of
#: ``FOLD_MASK + 1``, so at most ``FOLD_MASK`` observations per bucket wait in the deque.
FOLD_MASK = 255
_NEVER = -1  # ``count & -1 == count``, never -1: no fold


def _nothing() -> None:
    return None


def _zero() -> int:
    return 0


def _counting(inc: Callable[[float], Any]) -> Callable[[], int]:
    def count() -> int:
        inc(1)
        return 0

    return count


def observer_parts(child: Any) -> Parts:
    """Return ``(nexts, bounds, add_to_sum, fold_mask, fold)`` to observe into ``child``.

    An observation of ``amount`` is::

        add_to_sum(amount)
        if nexts[bisect_left(bounds, amount)]() & fold_mask == fold_mask:
            fold()

    (each ``nexts`` entry counts one observation in its bucket and returns the bucket's count
    so far). Hot paths inline these few C calls instead of calling a function per
    observation. For children this module cannot rewire (multi-process values, another
    prometheus_client layout) the parts call the values' public ``inc`` (or, failing that,
    the child's ``observe``) and never fold.
    """
    existing = getattr(child, "_surefoot_parts", None)
    if existing is not None:  # the same child was rewired before (several engines, one pool name)
        return existing  # type: ignore[no-any-return]
    public: Parts = ((_zero,), (float("inf"),), child.observe, _NEVER, _nothing)
    try:
        buckets = child._buckets
        total = child._sum
        bounds = tuple(float(b) for b in child._upper_bounds)
    except AttributeError:
        return public
    if len(buckets) != len(bounds) or not bounds or bounds[-1] != float("inf"):
        return public
    if not all(type(v) is MutexValue for v in (total, *buckets)):
        parts: Parts = (tuple(_counting(bucket.inc) for bucket in buckets), bounds, total.inc, _NEVER, _nothing)
    else:
        counts = [_CountValue(bucket.get()) for bucket in buckets]
        summed = _SumValue(total.get())
        buckets[:] = counts
        child._sum = summed
        parts = (tuple(c._counter.__next__ for c in counts), bounds, summed.pending.append,
                 FOLD_MASK, summed.fold)
    child._surefoot_parts = parts
    return parts


def fast_observer(child: Any) -> Callable[[float], None]:
    """Return a cheap ``observe(amount)`` for histogram ``child`` (see the module docstring)."""
    nexts, bounds, append, mask, fold = observer_parts(child)

    def observe(amount: float) -> None:
        append(amount)
        if nexts[bisect_left(bounds, amount)]() & mask == mask:
            fold()

    return observe
