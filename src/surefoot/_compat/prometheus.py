"""prometheus_client: the request path's metric updates without the per-call overhead.

``Histogram.observe`` and ``Gauge.inc`` take a lock and run several Python frames per call;
on the request path they were a large share of surefoot's cost. In a single process the
values of a label child can be replaced by lock-free ones (``itertools.count`` buckets, a
deque-folded sum, a gauge read as "started - finished" through the public
``Gauge.set_function``). That relies on prometheus_client internals, all of them here:

* a child's ``_buckets`` (list of values with ``inc``/``get``), ``_upper_bounds`` and ``_sum``;
* a gauge child's ``_value``;
* ``prometheus_client.values.MutexValue``, the class of in-process values (multi-process
  values live in shared files and are never replaced);
* ``prometheus_client.values.ValueClass`` / ``get_value_class()``: the value class chosen at
  import from ``PROMETHEUS_MULTIPROC_DIR``, read to tell whether this process writes the
  shared files and re-chosen when the variable was set after the import
  (:func:`use_multiprocess_values`).

Each function checks what it relies on and falls back to the public ``observe`` / ``inc`` /
``dec`` methods when anything differs, so an upgrade that changes these internals costs
speed, never correctness. :func:`internals_available` says whether the fast path is in use
(the test against the installed version asserts it, so an upgrade that removes it fails a
test).
"""

from __future__ import annotations

import collections
import itertools
import threading
from bisect import bisect_left as _bisect_left
from collections.abc import Callable
from typing import Any

try:
    from prometheus_client.values import MutexValue as _MutexValue
except ImportError:  # pragma: no cover - a prometheus_client without it: public API only
    _MutexValue = None  # type: ignore[assignment,misc]

__all__ = [
    "CountValue", "SumValue", "observer", "adder", "active_pair", "internals_available",
    "multiprocess_values_active", "use_multiprocess_values", "observer_parts", "fast_observer",
    "FOLD_MASK", "Parts", "collector_names",
]


def count_of(counter: Any) -> int:
    # itertools.count exposes its next value only through repr: "count(5)".
    return int(repr(counter)[6:-1])


class CountValue:
    """A bucket value incremented by ``next()`` on an ``itertools.count``.

    ``next()`` on a count is one C call under the GIL: atomic across threads without the lock
    (and the Python frame) of prometheus_client's ``MutexValue.inc``. prometheus_client reads
    it through ``get()`` at scrape time.
    """

    __slots__ = ("_counter", "_base", "_exemplar")

    def __init__(self, start: float) -> None:
        self._counter = itertools.count()
        self._base = start
        self._exemplar: Any = None

    def inc(self, amount: float) -> None:
        # Histogram.observe increments buckets by 1 only.
        for _ in range(int(amount)):
            next(self._counter)

    def set(self, value: float, timestamp: Any = None) -> None:
        self._base = value - count_of(self._counter)

    def get(self) -> float:
        return float(self._base + count_of(self._counter))

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get_exemplar(self) -> Any:
        return self._exemplar


class SumValue:
    """A histogram sum added to by ``deque.append`` (atomic, lock-free), folded when read.

    Observations queue in a deque; ``get()`` (a scrape) and every 4096th observation fold
    them into the total under a lock, so memory stays bounded without scrapes and nothing is
    lost to a race: ``popleft`` hands each queued value to exactly one folder.
    """

    __slots__ = ("pending", "_total", "_lock", "_exemplar")

    FOLD_AT = 4096

    def __init__(self, start: float) -> None:
        self.pending: collections.deque[float] = collections.deque()
        self._total = start
        self._lock = threading.Lock()
        self._exemplar: Any = None

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
        if len(self.pending) > self.FOLD_AT:
            self.fold()

    def set(self, value: float, timestamp: Any = None) -> None:
        with self._lock:
            self.pending.clear()
            self._total = value

    def get(self) -> float:
        return self.fold()

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get_exemplar(self) -> Any:
        return self._exemplar


def _single_process(*values: Any) -> bool:
    # Values prometheus_client keeps in process memory (not the multi-process files).
    return _MutexValue is not None and all(type(v) is _MutexValue for v in values)


def observer(child: Any) -> Callable[[float], None]:
    """Return a fast ``observe`` for a histogram child: one bisect, two value increments.

    The same work as ``Histogram.observe`` without its per-call checks and bucket loop,
    through the child's value objects (which are the multi-process ones in that mode). In
    a single process the buckets become :class:`CountValue` s and the sum a :class:`SumValue`:
    no lock per observation.
    Falls back to the public method if a prometheus_client release lays its children out
    otherwise.
    """
    try:
        sum_inc = child._sum.inc
        buckets = child._buckets
        bounds = tuple(child._upper_bounds)
    except AttributeError:
        return child.observe  # type: ignore[no-any-return]
    if len(buckets) != len(bounds):
        return child.observe  # type: ignore[no-any-return]
    if _single_process(child._sum, *buckets):
        buckets[:] = [CountValue(bucket.get()) for bucket in buckets]
        nexts = tuple(bucket._counter.__next__ for bucket in buckets)
        total = child._sum = SumValue(child._sum.get())
        append = total.pending.append
        pending = total.pending
        fold_at = SumValue.FOLD_AT

        def observe(amount: float) -> None:
            nexts[_bisect_left(bounds, amount)]()
            append(amount)
            if len(pending) > fold_at:
                total.fold()

        return observe
    bucket_incs = tuple(bucket.inc for bucket in buckets)

    def observe_shared(amount: float) -> None:
        bucket_incs[_bisect_left(bounds, amount)](1)
        sum_inc(amount)

    return observe_shared


def adder(child: Any) -> Callable[[float], None]:
    """Return a fast ``inc(amount)`` for a gauge child (negative to decrement)."""
    value = getattr(child, "_value", None)
    inc = getattr(value, "inc", None)
    if inc is None:
        return child.inc  # type: ignore[no-any-return]
    return inc  # type: ignore[no-any-return]


def active_pair(child: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Return ``(started, finished)`` callables keeping a gauge child at "in progress".

    In a single process the gauge reads two ``itertools.count`` at scrape time (started
    minus finished), so a request pays two C calls and no lock; in multi-process mode the
    gauge's shared value is incremented and decremented.
    """
    existing = getattr(child, "_surefoot_active", None)
    if existing is not None:  # another middleware on the same registry set it up
        return existing  # type: ignore[no-any-return]
    value = getattr(child, "_value", None)
    if _single_process(value) and hasattr(child, "set_function"):
        started, finished = itertools.count(), itertools.count()
        base = value.get()  # type: ignore[union-attr]
        child.set_function(lambda: base + count_of(started) - count_of(finished))
        pair = (started.__next__, finished.__next__)
        child._surefoot_active = pair
        return pair
    add = adder(child)
    return (lambda: add(1)), (lambda: add(-1))


def internals_available() -> bool:
    """Whether the installed prometheus_client still has what the fast path relies on."""
    from prometheus_client import CollectorRegistry, Gauge, Histogram

    registry = CollectorRegistry()
    child = Histogram("surefoot_compat_probe_seconds", "probe", registry=registry)
    gauge = Gauge("surefoot_compat_probe", "probe", registry=registry)
    return (
        _MutexValue is not None
        and isinstance(getattr(child, "_buckets", None), list)
        and hasattr(child, "_upper_bounds")
        and _single_process(getattr(child, "_sum", None), *getattr(child, "_buckets", [None]))
        and _single_process(getattr(gauge, "_value", None))
        and hasattr(gauge, "set_function")
    )


def multiprocess_values_active() -> bool:
    """Whether metrics created now write prometheus_client's multi-process files."""
    from prometheus_client import values

    value_class = getattr(values, "ValueClass", None)
    if value_class is None or _MutexValue is None:  # pragma: no cover - internals changed
        return False
    return value_class is not _MutexValue


def use_multiprocess_values() -> bool:
    """Re-choose the value class after ``PROMETHEUS_MULTIPROC_DIR`` was set; return if active.

    Without the internals (a future prometheus_client) nothing is changed: only processes
    that set the variable before importing prometheus_client share their values.
    """
    from prometheus_client import values

    get_value_class = getattr(values, "get_value_class", None)
    if get_value_class is None or not hasattr(values, "ValueClass"):  # pragma: no cover
        return multiprocess_values_active()
    if not multiprocess_values_active():
        values.ValueClass = get_value_class()
    return multiprocess_values_active()


# -- histograms observed from hot paths outside the request path (database queries) ------------
#
# The same rewiring as :func:`observer`, handed out as parts that a caller inlines: a query may
# cost 10 µs, so even one Python call per observation shows.

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
        if nexts[_bisect_left(bounds, amount)]() & fold_mask == fold_mask:
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
    if _MutexValue is None or not all(type(v) is _MutexValue for v in (total, *buckets)):
        parts: Parts = (tuple(_counting(bucket.inc) for bucket in buckets), bounds, total.inc, _NEVER, _nothing)
    else:
        counts = [CountValue(bucket.get()) for bucket in buckets]
        summed = SumValue(total.get())
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
        if nexts[_bisect_left(bounds, amount)]() & mask == mask:
            fold()

    return observe


def collector_names(registry: Any) -> dict[str, Any]:
    """The registry's name -> collector table (to find a family registered earlier).

    prometheus_client keeps it in ``_names_to_collectors`` without a public accessor; a
    release without it gives an empty table (callers then register, and a duplicate
    registration error names the clash).
    """
    names = getattr(registry, "_names_to_collectors", None)
    return names if isinstance(names, dict) else {}
