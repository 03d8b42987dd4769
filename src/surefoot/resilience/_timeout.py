"""Timeouts for async and sync calls, and the named timeout table.

**Async** calls are cancelled when the time is up: the awaiting task gets a cancellation at
the deadline, the protected coroutine unwinds (its ``finally`` blocks run) and the caller
gets :class:`CallTimeoutError`.

**Sync** calls cannot be interrupted in Python: no thread can be stopped from the outside.
:class:`Timeout` therefore offers two honest modes for sync callables:

* ``sync_mode="thread"`` (default) runs the call in a worker thread and stops *waiting* at
  the deadline. The caller gets :class:`CallTimeoutError` on time, but the call itself keeps
  running in its thread until it finishes on its own; its result or error is then discarded
  (logged at DEBUG). Use it for calls whose late completion is harmless (idempotent reads),
  and give the underlying client its own timeout too so abandoned threads do not pile up.
* ``sync_mode="check"`` runs the call inline and, if it took longer than the timeout, raises
  :class:`CallTimeoutError` after it returns (the result is discarded). It bounds nothing,
  but it makes a slow call count as a failure for retries and breakers without threads.

The named table (``get_timeout("http_request")``) gives sensible defaults per operation
kind, overridable per process; :func:`validate_timeout` clamps a user-supplied value.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import structlog

from .._compat.asyncio import current_task_getter, running_loop_or_none
from .._core.callables import (
    DEFERRED_TYPES,
    athrough,
    is_sync_function,
    refuse_call,
    refuse_deferred,
    through,
    wrap_callable,
)
from .._core.clock import SYSTEM_CLOCK
from .._core.state import STATE
from ..errors import ConfigurationError, ServiceUnavailableError
from ._decisions import DecisionCounter
from ._events import Hooks, checked_hooks

__all__ = [
    "Timeout",
    "CallTimeoutError",
    "DEFAULT_TIMEOUTS",
    "DEFAULT_TIMEOUT",
    "get_timeout",
    "set_timeout",
    "validate_timeout",
    "MIN_TIMEOUT",
    "MAX_TIMEOUT",
]

T = TypeVar("T")

_get_running_loop = running_loop_or_none
_get_ident = threading.get_ident
# The loop's current task in one C call where asyncio allows it (surefoot._compat.asyncio).
_task_of_loop = current_task_getter()

_log = structlog.get_logger("surefoot.resilience")


class CallTimeoutError(ServiceUnavailableError, TimeoutError):
    """A protected call did not finish in time (rendered as 504 Gateway Timeout).

    It is also a builtin :class:`TimeoutError`, so ``except TimeoutError`` catches it.

    Attributes:
        timeout: the limit that was exceeded, in seconds.
        name: the timeout's name (the dependency).
        abandoned: ``True`` when a sync call was left running in a worker thread.
    """

    status = 504
    code = "TIMEOUT"
    title = "Gateway Timeout"

    def __init__(self, name: str, timeout: float, *, abandoned: bool = False, detail: str | None = None) -> None:
        if detail is None:
            detail = f"{name}: no answer within {timeout:g}s"
            if abandoned:
                detail += " (the call was abandoned and may still complete in its thread)"
        super().__init__(detail)
        self.name = name
        self.timeout = timeout
        self.abandoned = abandoned

    def __reduce__(self) -> Any:
        return (type(self), (self.name, self.timeout), {"abandoned": self.abandoned, "detail": self.detail})


# --------------------------------------------------------------------------- the table

MIN_TIMEOUT = 0.1
MAX_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 30.0

DEFAULT_TIMEOUTS: Mapping[str, float] = {
    # network primitives
    "dns": 2.0,
    "connect": 5.0,
    "read": 30.0,
    "write": 30.0,
    # typical operations
    "http_request": 10.0,
    "api_call": 30.0,
    "webhook_delivery": 10.0,
    "database_query": 30.0,
    "database_connect": 10.0,
    "cache": 1.0,
    "health_check": 2.0,
    "message_publish": 10.0,
    "sms_send": 10.0,
    "email_send": 30.0,
    "file_upload": 120.0,
    "file_download": 120.0,
    # long-running work
    "agent_creation": 60.0,
    "agent_command": 120.0,
    "llm_completion": 120.0,
    "batch_job": 300.0,
}
"""Seconds per operation kind: network primitives short, provider calls medium, agents/LLM long."""

_overrides: dict[str, float] = {}
_table_lock = threading.Lock()


def validate_timeout(value: float | None, min_timeout: float = MIN_TIMEOUT, max_timeout: float = MAX_TIMEOUT) -> float:
    """Clamp ``value`` into ``[min_timeout, max_timeout]``.

    ``None`` gives :data:`DEFAULT_TIMEOUT` (clamped too).

    Raises:
        ConfigurationError: ``value`` is not a number (or NaN), or the bounds are inverted.
    """
    if min_timeout > max_timeout:
        raise ConfigurationError(f"validate_timeout: min {min_timeout} is above max {max_timeout}")
    if value is None:
        value = DEFAULT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigurationError(f"a timeout must be a number of seconds; got {value!r}")
    return float(min(max_timeout, max(min_timeout, value)))


def get_timeout(operation: str, default: float | None = None) -> float:
    """The timeout in seconds for ``operation`` (see :data:`DEFAULT_TIMEOUTS`).

    Unknown operations get ``default`` (or :data:`DEFAULT_TIMEOUT`).
    """
    value = _overrides.get(operation)
    if value is None:
        value = DEFAULT_TIMEOUTS.get(operation)
    if value is None:
        value = DEFAULT_TIMEOUT if default is None else default
    return value


def set_timeout(operation: str, seconds: float | None) -> None:
    """Override the table for ``operation`` in this process (``None`` restores the default)."""
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0
    ):
        raise ConfigurationError(
            f"set_timeout({operation!r}, ...) takes seconds > 0 (or None to restore the default); got {seconds!r}"
        )
    with _table_lock:
        if seconds is None:
            _overrides.pop(operation, None)
        else:
            _overrides[operation] = validate_timeout(seconds, 0.001, 24 * 3600.0)


def _reset_timeouts() -> None:
    with _table_lock:
        _overrides.clear()


STATE.own("resilience.timeouts", _overrides, reset=_reset_timeouts)


# --------------------------------------------------------------------------- Timeout


_PENDING, _DONE, _FIRED, _HANDLED = 0, 1, 2, 3
# An entry: [deadline, task, state, cancelling_at_entry, queue, handle, seconds]


class _TimerQueue:
    """The running calls of one Timeout on one event loop, in deadline order.

    All calls of a Timeout have the same duration, so they expire in the order they started:
    one loop timer for the oldest pending call serves them all, instead of one timer per call
    (a timer per call costs microseconds: heap pushes and cancelled handles piling up).
    """

    __slots__ = ("loop", "entries", "handle")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.entries: deque[list[Any]] = deque()
        self.handle: asyncio.TimerHandle | None = None

    def fire(self) -> None:
        self.handle = None
        now = self.loop.time()
        entries = self.entries
        while entries:
            entry = entries[0]
            if entry[2] != _PENDING:
                entries.popleft()
                continue
            if entry[0] > now:
                self.handle = self.loop.call_at(entry[0], self.fire)
                return
            entries.popleft()
            entry[2] = _FIRED
            entry[1].cancel()


def _fire_one(entry: list[Any]) -> None:
    if entry[2] == _PENDING:
        entry[2] = _FIRED
        entry[1].cancel()


class Timeout:
    """Bound how long a call may take.

    Args:
        seconds: the limit (> 0); or the name of an operation in the timeout table.
        name: the dependency (events, errors).
        sync_mode: ``"thread"`` or ``"check"`` for sync callables (see the module docs).
        max_workers: size of the worker pool of ``sync_mode="thread"`` (created on first use).
        clock: the clock used by ``sync_mode="check"``.
        hooks: listeners for ``timeout`` events.
        registry: Prometheus registry for ``resilience_events_total{component="timeout"}``.

    Raises:
        ConfigurationError: ``seconds`` is not positive or ``sync_mode`` is unknown.
    """

    def __init__(
        self,
        seconds: float | str,
        *,
        name: str = "timeout",
        sync_mode: Literal["thread", "check"] = "thread",
        max_workers: int = 8,
        clock: Any = None,
        hooks: Hooks | None = None,
        registry: Any = None,
    ) -> None:
        if isinstance(seconds, str):
            if seconds not in _overrides and seconds not in DEFAULT_TIMEOUTS:
                raise ConfigurationError(
                    f"Timeout: {seconds!r} is not an operation of the timeout table; give seconds, one of "
                    f"{sorted(DEFAULT_TIMEOUTS)}, or a name registered with set_timeout()"
                )
            seconds = get_timeout(seconds)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
            raise ConfigurationError(f"Timeout seconds must be a finite number > 0; got {seconds!r}")
        if sync_mode not in ("thread", "check"):
            raise ConfigurationError(f"sync_mode must be 'thread' or 'check'; got {sync_mode!r}")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigurationError(f"Timeout max_workers must be an int >= 1; got {max_workers!r}")
        self.seconds = float(seconds)
        self.name = name
        self.sync_mode = sync_mode
        self.max_workers = max_workers
        self.clock = SYSTEM_CLOCK if clock is None else clock
        self.hooks = checked_hooks(hooks, "Timeout")
        self._counter = DecisionCounter("timeout", name, registry)
        self._queues: weakref.WeakKeyDictionary[Any, _TimerQueue] = weakref.WeakKeyDictionary()
        self._last: tuple[Any, ...] = (None, None, None, None)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self.call = self._call_thread if sync_mode == "thread" else self._call_check

    def __repr__(self) -> str:
        return f"Timeout({self.seconds:g}, name={self.name!r}, sync_mode={self.sync_mode!r})"

    def _expired(self, seconds: float, abandoned: bool) -> CallTimeoutError:
        self._counter.inc("abandoned" if abandoned else "timeout")
        if self.hooks.active:
            self.hooks.emit("timeout", self.name, "timeout", timeout=seconds, abandoned=abandoned)
        return CallTimeoutError(self.name, seconds, abandoned=abandoned)

    # ----------------------------------------------------------------- async

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)``, cancelling it after :attr:`seconds`.

        Raises:
            CallTimeoutError: the time is up (``__cause__`` is the cancellation).
        """
        return await self._arun(self.seconds, fn, args, kwargs)

    async def acall_within(self, seconds: float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """:meth:`acall` with another limit (e.g. what is left of a retry's deadline).

        Raises:
            CallTimeoutError: ``seconds`` passed.
        """
        entry = self._enter(seconds)
        try:
            return await fn(*args, **kwargs)
        except asyncio.CancelledError as exc:
            self._cancelled(entry, exc)
            raise
        finally:
            self._exit(entry)

    def call_within(self, seconds: float, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call` (thread or check form) with another limit.

        Raises:
            CallTimeoutError: ``seconds`` passed.
        """
        if self.sync_mode == "thread":
            return self._run_thread(seconds, fn, args, kwargs)
        return self._run_check(seconds, fn, args, kwargs)

    async def _arun(self, seconds: float, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        entry = self._enter(seconds)
        try:
            return await fn(*args, **kwargs)
        except asyncio.CancelledError as exc:
            self._cancelled(entry, exc)
            raise
        finally:
            self._exit(entry)

    def _queue_for(self, loop: asyncio.AbstractEventLoop) -> _TimerQueue:
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _TimerQueue(loop)
        if hasattr(loop, "_thread_id"):
            # BaseEventLoop.time() is time.monotonic() behind a Python method call.
            clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
            self._last = (_get_ident(), loop, queue, clock)
        return queue

    # ---- the timer protocol: begin() before the awaited work, cancelled() on a
    # CancelledError, end() in a ``finally`` (what :meth:`acall`, :meth:`scope` and Policy use)

    def begin(self, seconds: float) -> list[Any]:
        """Start timing the current asyncio task: cancel it ``seconds`` from now.

        Returns an opaque handle for :meth:`cancelled` and :meth:`end`. Must run inside a task.

        Raises:
            RuntimeError: not inside a running event loop's task.
        """
        # asyncio.get_running_loop() costs ~0.2 us on Python 3.11; the loop last seen running
        # in this thread is still the running one while its _thread_id is this thread.
        ident = _get_ident()
        last = self._last
        loop = last[1]
        if last[0] == ident and loop._thread_id == ident:
            queue = last[2]
            now = last[3]()
        else:
            loop = _get_running_loop()
            if loop is None:
                raise RuntimeError("Timeout.acall must run inside a running event loop")
            queue = self._queue_for(loop)
            now = loop.time()
        task = _task_of_loop(loop)
        if task is None:  # pragma: no cover - only outside a task (callbacks)
            raise RuntimeError("Timeout.acall must run inside an asyncio task")
        deadline = now + seconds
        if seconds == self.seconds:
            entry = [deadline, task, _PENDING, task.cancelling(), queue, None, seconds]
            queue.entries.append(entry)
            if queue.handle is None:
                queue.handle = loop.call_at(deadline, queue.fire)
            return entry
        # A shrunk timeout (what is left of a retry deadline) does not keep the queue's order.
        entry = [deadline, task, _PENDING, task.cancelling(), None, None, seconds]
        entry[5] = loop.call_at(deadline, _fire_one, entry)
        return entry

    def cancelled(self, entry: list[Any], exc: BaseException) -> None:
        """On a ``CancelledError``: raise :class:`CallTimeoutError` if the cancellation was ours."""
        if entry[2] == _FIRED:
            entry[2] = _HANDLED
            # Ours only if no one else asked for a cancellation meanwhile (as asyncio.timeout).
            if entry[1].uncancel() <= entry[3]:
                raise self._expired(entry[6], False) from exc

    def end(self, entry: list[Any]) -> None:
        """Stop timing (always, in a ``finally``); a swallowed cancellation of ours is balanced."""
        state = entry[2]
        if state == _PENDING:
            entry[2] = _DONE
        elif state == _FIRED:  # the call swallowed our cancellation: balance the count
            entry[2] = _HANDLED
            entry[1].uncancel()
        queue = entry[4]
        if queue is None:
            entry[5].cancel()
            return
        entries = queue.entries
        while entries and entries[0][2]:
            entries.popleft()

    _enter = begin
    _cancelled = cancelled
    _exit = end

    # ----------------------------------------------------------------- sync

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            with self._executor_lock:
                executor = self._executor
                if executor is None:
                    executor = self._executor = concurrent.futures.ThreadPoolExecutor(
                        max_workers=self.max_workers, thread_name_prefix=f"surefoot-timeout-{self.name}"
                    )
        return executor

    def _call_thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a worker thread and stop waiting after :attr:`seconds`.

        Raises:
            CallTimeoutError: the time is up; ``abandoned`` is ``True`` when the call had
                started (it keeps running in its thread), ``False`` when it never started.
        """
        return self._run_thread(self.seconds, fn, args, kwargs)

    def _run_thread(self, seconds: float, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        if not is_sync_function(fn):
            refuse_call(fn, "Timeout", "timeout", generators=False)
        ctx = contextvars.copy_context()
        future = self._pool().submit(ctx.run, functools.partial(fn, *args, **kwargs))
        try:
            result = future.result(timeout=seconds)
        except concurrent.futures.TimeoutError as exc:
            abandoned = not future.cancel()
            if abandoned:
                future.add_done_callback(self._log_abandoned)
            raise self._expired(seconds, abandoned) from exc
        if type(result) in DEFERRED_TYPES:
            refuse_deferred(result, "Timeout", "timeout", generators=False)
        return result

    def _log_abandoned(self, future: concurrent.futures.Future[Any]) -> None:
        error = None if future.cancelled() else future.exception()
        _log.debug(
            "timeout_abandoned_call_finished", name=self.name,
            error_type=type(error).__name__ if error is not None else None,
        )

    def _call_check(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` inline; raise :class:`CallTimeoutError` afterwards if it was too slow."""
        return self._run_check(self.seconds, fn, args, kwargs)

    def _run_check(self, seconds: float, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        monotonic = self.clock.monotonic
        start = monotonic()
        result = fn(*args, **kwargs)
        if type(result) in DEFERRED_TYPES:
            refuse_deferred(result, "Timeout", "timeout", generators=False)
        if monotonic() - start > seconds:
            raise self._expired(seconds, False)
        return result

    def shutdown(self, wait: bool = False) -> None:
        """Release the worker pool of ``sync_mode="thread"`` (it is recreated on next use)."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    def scope(self) -> _Scope:
        """A context manager bounding a block: ``async with t.scope():`` / ``with t.scope():``.

        ``async with`` cancels the block at the deadline and raises :class:`CallTimeoutError`.
        ``with`` cannot interrupt a sync block: it raises :class:`CallTimeoutError` when the
        block ends late (``sync_mode="check"`` semantics, on this timeout's clock).
        """
        return _Scope(self)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a function or coroutine function.

        Raises:
            UnsupportedCallableError: ``fn`` is a generator or async generator function (a
                stream has no single call to bound: use ``async with timeout.scope():`` around
                the loop that consumes it, or bound the call that fetches each item).
        """
        return wrap_callable(
            fn, owner="Timeout", var="timeout", attribute="timeout", component=self,
            function=through(self.call),  # the thread or the check form
            coroutine=athrough(self.acall),
            refusal="a stream has no single call to bound; use `async with timeout.scope():` around the "
            "loop that consumes it, or bound the call that fetches each item",
        )


class _Scope:
    """One use of a :class:`Timeout` as a context manager (see :meth:`Timeout.scope`)."""

    __slots__ = ("_timeout", "_entry", "_start")

    def __init__(self, timeout: Timeout) -> None:
        self._timeout = timeout
        self._entry: list[Any] | None = None
        self._start = 0.0

    async def __aenter__(self) -> _Scope:
        self._entry = self._timeout._enter(self._timeout.seconds)
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        entry = self._entry
        try:
            if exc is not None and isinstance(exc, asyncio.CancelledError):
                self._timeout._cancelled(entry, exc)  # type: ignore[arg-type]
        finally:
            self._timeout._exit(entry)  # type: ignore[arg-type]

    def __enter__(self) -> _Scope:
        self._start = self._timeout.clock.monotonic()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None and self._timeout.clock.monotonic() - self._start > self._timeout.seconds:
            raise self._timeout._expired(self._timeout.seconds, False)
