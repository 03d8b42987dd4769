"""Bulkhead: at most N concurrent calls, with an optional bounded wait for a free slot.

One bulkhead serves threads and asyncio tasks alike. The free slots are tokens in a
``collections.deque``: taking one is a single ``pop()`` and giving it back a single
``append()``, both atomic in CPython, so the fast path takes no lock and nothing is ever held
across the protected call. A caller that finds no free slot registers as a waiter (under a
short lock), looks again, and waits at most ``max_wait`` seconds (``0`` = reject at once) for
a wake-up, then gets :class:`BulkheadFullError`. A freed slot wakes one waiting thread and the
longest-waiting task (through its event loop when freed from another thread); a woken waiter
takes the slot if it is still there, else waits again.

The gauge ``bulkhead_available_concurrent_calls{name}`` is read at scrape time (no cost per
call).
"""

from __future__ import annotations

import asyncio
import threading
import time as _time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from .._compat.asyncio import running_loop_or_none
from .._core.callables import (
    DEFERRED_TYPES,
    around_async_generator,
    around_generator,
    athrough,
    refuse_deferred,
    through,
    wrap_callable,
)
from ..errors import ConfigurationError, ServiceUnavailableError
from ._decisions import DecisionCounter
from ._events import Hooks, checked_hooks

__all__ = ["Bulkhead", "BulkheadFullError"]

T = TypeVar("T")


class BulkheadFullError(ServiceUnavailableError):
    """Every slot of a bulkhead is busy (503): the call was not made.

    Attributes:
        name: the bulkhead's name.
        max_concurrent: its size.
        max_wait: how long the caller waited for a slot, in seconds.
    """

    code = "BULKHEAD_FULL"

    def __init__(self, name: str, max_concurrent: int, max_wait: float) -> None:
        waited = f" after waiting {max_wait:g}s" if max_wait > 0 else ""
        super().__init__(
            f"{name}: all {max_concurrent} concurrent call slots are busy{waited}; the call was not "
            f"made — retry later, or raise max_concurrent/max_wait if this load is expected"
        )
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_wait = max_wait

    def __reduce__(self) -> Any:
        return (type(self), (self.name, self.max_concurrent, self.max_wait))


def _wake_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Bulkhead:
    """Limit concurrent calls.

    Args:
        max_concurrent: slots (>= 1).
        max_wait: seconds a caller may wait for a slot (0 = reject immediately).
        name: the dependency (metrics, events, errors).
        hooks: listeners for ``bulkhead`` events (``rejected``).
        registry: Prometheus registry for ``bulkhead_available_concurrent_calls`` and
            ``resilience_events_total{component="bulkhead",event="rejected"}``.

    Raises:
        ConfigurationError: a number is out of range.
    """

    def __init__(
        self,
        max_concurrent: int,
        *,
        max_wait: float = 0.0,
        name: str = "bulkhead",
        hooks: Hooks | None = None,
        registry: Any = None,
    ) -> None:
        if not isinstance(max_concurrent, int) or isinstance(max_concurrent, bool) or max_concurrent < 1:
            raise ConfigurationError(f"Bulkhead max_concurrent must be an int >= 1; got {max_concurrent!r}")
        if isinstance(max_wait, bool) or not isinstance(max_wait, (int, float)) or not 0 <= max_wait < float("inf"):
            raise ConfigurationError(f"Bulkhead max_wait must be a finite number of seconds >= 0; got {max_wait!r}")
        self.max_concurrent = max_concurrent
        self.max_wait = float(max_wait)
        self.name = name
        self.hooks = checked_hooks(hooks, "Bulkhead")
        self._registry = registry
        self._counter = DecisionCounter("bulkhead", name, registry)
        self._pool: deque[None] = deque([None] * max_concurrent)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0  # threads and tasks registered as waiters
        self._async_waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._metrics_bound = False

    def __repr__(self) -> str:
        return f"Bulkhead({self.name!r}, {len(self._pool)}/{self.max_concurrent} free)"

    @property
    def available(self) -> int:
        """Free slots now."""
        return len(self._pool)

    def _bind_metrics(self) -> None:
        """Expose the free slots as a gauge read at scrape time; bound on first use so that
        building a Bulkhead at import time registers nothing."""
        from .._core.catalogue import BULKHEAD_AVAILABLE

        ref = weakref.ref(self)

        def read() -> float:
            bulkhead = ref()
            return float(len(bulkhead._pool)) if bulkhead is not None else 0.0

        BULKHEAD_AVAILABLE.get(self._registry).labels(self.name).set_function(read)
        self._metrics_bound = True

    def _full(self) -> BulkheadFullError:
        self._counter.inc("rejected")
        if self.hooks.active:
            self.hooks.emit("bulkhead", self.name, "rejected", max_concurrent=self.max_concurrent)
        return BulkheadFullError(self.name, self.max_concurrent, self.max_wait)

    # ----------------------------------------------------------------- permission

    def try_acquire(self) -> bool:
        """Take a slot if one is free now; never waits, never raises."""
        if not self._metrics_bound:
            self._bind_metrics()
        try:
            self._pool.pop()
        except IndexError:
            return False
        return True

    def acquire(self) -> None:
        """Take a slot, waiting up to ``max_wait`` (blocking this thread).

        Raises:
            BulkheadFullError: no slot became free in time.
        """
        if not self._metrics_bound:
            self._bind_metrics()
        try:
            self._pool.pop()
            return
        except IndexError:
            pass
        if self.max_wait <= 0:
            raise self._full()
        deadline = _time.monotonic() + self.max_wait
        pool = self._pool
        with self._lock:
            self._waiting += 1
            try:
                while True:
                    try:  # after registering: a release from now on will wake us
                        pool.pop()
                        return
                    except IndexError:
                        pass
                    remaining = deadline - _time.monotonic()
                    if remaining <= 0:
                        raise self._full()
                    self._cond.wait(remaining)
            finally:
                self._waiting -= 1

    async def aacquire(self) -> None:
        """Take a slot, awaiting up to ``max_wait`` (the event loop keeps running).

        Raises:
            BulkheadFullError: no slot became free in time.
        """
        if not self._metrics_bound:
            self._bind_metrics()
        pool = self._pool
        try:
            pool.pop()
            return
        except IndexError:
            pass
        if self.max_wait <= 0:
            raise self._full()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while True:
            future: asyncio.Future[None] = loop.create_future()
            with self._lock:
                self._waiting += 1
                self._async_waiters.append((loop, future))
            try:
                try:  # after registering: a release from now on will wake us
                    pool.pop()
                    return
                except IndexError:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise self._full()
                try:
                    await asyncio.wait_for(future, remaining)
                except TimeoutError:
                    raise self._full() from None
            except BaseException:
                if future.done() and not future.cancelled():
                    # Woken, but leaving (timed out or cancelled): pass the wake-up on so the
                    # freed slot is not missed by the next waiter.
                    self._wake()
                raise
            finally:
                with self._lock:
                    self._waiting -= 1
                if not future.done():
                    future.cancel()  # a later release skips it
            # woken: register again and look for the slot

    def release(self) -> None:
        """Give a slot back and wake a waiter, if any."""
        self._pool.append(None)
        if self._waiting:
            self._wake()

    def _wake(self) -> None:
        with self._lock:
            self._cond.notify()
            waiters = self._async_waiters
            while waiters:
                loop, future = waiters.popleft()
                if future.done():
                    continue
                if running_loop_or_none() is loop:
                    future.set_result(None)
                    return
                if loop.is_closed():
                    continue  # its task can never run again: wake the next waiter instead
                loop.call_soon_threadsafe(_wake_future, future)
                return

    arelease = release

    # ----------------------------------------------------------------- forms

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` holding a slot."""
        self.acquire()
        try:
            result = fn(*args, **kwargs)
        finally:
            self.release()
        if type(result) in DEFERRED_TYPES:
            refuse_deferred(result, "Bulkhead", "bulkhead")
        return result

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn`` holding a slot."""
        await self.aacquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()

    def __enter__(self) -> Bulkhead:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    async def __aenter__(self) -> Bulkhead:
        await self.aacquire()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.release()

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a function, coroutine function, generator or async generator function.

        For generators the slot is held for the whole iteration: taken when iteration starts,
        given back when it ends (exhausted, failed, closed early or garbage-collected).
        """
        return wrap_callable(
            fn, owner="Bulkhead", var="bulkhead", attribute="bulkhead", component=self,
            function=through(self.call), coroutine=athrough(self.acall),
            generator=lambda f: around_generator(f, self.acquire, self.release),
            async_generator=lambda f: around_async_generator(f, self.aacquire, self.release),
        )
