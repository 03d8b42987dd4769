"""The Prometheus side of a circuit breaker: lock-free counters flushed at scrape time."""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any

from ._breaker_rules import _STATE_NAMES


class _AtomicCounter:
    """A counter whose increment is one C call (``itertools.count.__next__``, atomic under
    the GIL); reading compensates for the reads themselves under a lock."""

    __slots__ = ("_count", "inc", "_reads", "_lock")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.inc = self._count.__next__
        self._reads = 0
        self._lock = threading.Lock()

    def value(self) -> int:
        with self._lock:
            v = next(self._count) - self._reads
            self._reads += 1
            return v


# Scrape-time flush: per-call Prometheus increments cost ~200 ns (a lock each), so a
# breaker counts in its own atomic counters and pushes the deltas into the catalogue
# counter on every state change, on get_stats() and right before the registry is
# collected (a collector registered ahead of the counter family).
_flushers_lock = threading.Lock()
_flushers: weakref.WeakKeyDictionary[Any, _Flusher] = weakref.WeakKeyDictionary()


class _Flusher:
    def __init__(self) -> None:
        self.breakers: weakref.WeakSet[Any] = weakref.WeakSet()  # the breakers to flush at scrape time

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        for breaker in list(self.breakers):
            breaker._flush_metrics()
        return []


def _flusher_for(registry: Any) -> _Flusher:
    with _flushers_lock:
        flusher = _flushers.get(registry)
        if flusher is None:
            flusher = _Flusher()
            registry.register(flusher)
            _flushers[registry] = flusher
        return flusher


_KINDS = ("successful", "failed", "slow", "ignored", "not_permitted")


def _multiprocess_metrics() -> bool:
    """True when prometheus_client runs in multiprocess mode (PROMETHEUS_MULTIPROC_DIR)."""
    from .._compat.prometheus import multiprocess_values_active

    return multiprocess_values_active()


class _Metrics:
    __slots__ = ("children", "state_children", "counters", "flushed", "lock")

    def __init__(self, name: str, registry: Any, counters: tuple[_AtomicCounter, ...]) -> None:
        from .._core.catalogue import CIRCUIT_BREAKER_CALLS, CIRCUIT_BREAKER_STATE

        calls = CIRCUIT_BREAKER_CALLS.get(registry)
        state = CIRCUIT_BREAKER_STATE.get(registry)
        self.children = tuple(calls.labels(name, kind) for kind in _KINDS)
        self.state_children = tuple(state.labels(name, s) for s in _STATE_NAMES)
        self.counters = counters
        self.flushed = [0] * len(_KINDS)
        self.lock = threading.Lock()

    def flush(self) -> None:
        with self.lock:
            for i, counter in enumerate(self.counters):
                v = counter.value()
                delta = v - self.flushed[i]
                if delta > 0:
                    self.children[i].inc(delta)
                    self.flushed[i] = v

    def show_state(self, state: int) -> None:
        for i, child in enumerate(self.state_children):
            child.set(1 if i == state else 0)
