"""The circuit breaker: a permission protocol with windows, half-open trials and shadow mode.

Every way of using a breaker sits on one protocol (as in Resilience4j)::

    breaker.acquire()              # may raise CircuitOpenError(retry_after=...)
    t0 = clock.monotonic()
    try:
        result = fn()
    except BaseException as exc:
        breaker.on_error(clock.monotonic() - t0, exc)   # decides failure / ignored / not a failure
        raise
    breaker.on_result(clock.monotonic() - t0, result)   # result-based failures, 429 Retry-After

``release()`` gives a permission back when the call never ran (cancelled before running).

States (:class:`CircuitState`): ``closed`` → ``open`` when a trip rule fires; ``open`` →
``half_open`` when the open duration has passed (checked lazily by the next caller, no
timers); ``half_open`` → ``closed`` or back to ``open`` on the trial calls' outcomes. The
operational states ``disabled`` (always permit, no windows) and ``forced_open`` (always
reject) are entered by :meth:`CircuitBreaker.disable` / :meth:`CircuitBreaker.force_open`
and left by :meth:`CircuitBreaker.reset`; ``metrics_only=True`` runs the whole state machine
(metrics, events, logs) but never rejects a call (shadow mode).

Trip rules (any may be combined):

* ``failure_threshold=N`` — N *consecutive* failures (the seed 001 behaviour and the
  default: 5). A success resets the run; an ignored exception does not.
* ``failure_rate_threshold=r`` / ``slow_call_rate_threshold=r`` — over a sliding window
  (``window="count"`` of ``window_size`` calls, or ``window="time"`` of ``window_size``
  seconds) holding at least ``minimum_calls`` calls.
* ``latency_factor=k`` — P95 latency over ``latency_window`` seconds above k x a baseline
  learned from the breaker's healthy history (:class:`~._window.LatencyBaseline`).
* a failure carrying ``429``/``503`` + ``Retry-After`` (a result such as an
  ``httpx.Response`` or an exception with ``retry_after``) opens the breaker for that long.

Locking: one ``threading.Lock`` guards O(1) state updates only; it is never held across the
protected call, a hook or a log line. A closed-state success usually takes no lock at all:
it bumps a C-level ``itertools.count`` (atomic under the GIL), and a failure — under the
lock — restarts the run of consecutive failures when that count moved since the previous
failure, so no success is lost to a race. Window breakers skip the lock when the success
cannot change anything a decision reads (see :meth:`CircuitBreaker._closed_success`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from .._core.callables import DEFERRED_TYPES, guard_async_generator, refuse_deferred, wrap_callable
from ._breaker_core import BreakerCore
from ._breaker_rules import (  # noqa: F401 - re-exported: the breaker's vocabulary lives here too
    _STATE_ENUM,
    _STATE_INT,
    _STATE_NAMES,
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    OPEN,
    CircuitOpenError,
    CircuitState,
    exponential_open_duration,
    http_failure,
    retry_after_of,
)
from ._window import FAILURE, SLOW  # noqa: F401 - re-exported for the Redis breaker

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "exponential_open_duration",
    "http_failure",
    "retry_after_of",
]

F = TypeVar("F", bound=Callable[..., Any])
_DEFERRED = DEFERRED_TYPES


class _AsyncGenOutcome:
    """One guarded iteration of an async generator: a permit from start to its outcome."""

    __slots__ = ("breaker", "t0")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.t0 = 0.0

    async def start(self) -> None:
        await self.breaker.aacquire()
        self.t0 = self.breaker._mono()

    async def success(self) -> None:
        await self.breaker.aon_success(self.breaker._mono() - self.t0)

    async def error(self, exc: BaseException) -> None:
        await self.breaker.aon_error(self.breaker._mono() - self.t0, exc)

    async def closed(self) -> None:
        # Closed early by its consumer: neither a success nor a failure of the dependency.
        await self.breaker.arelease()


class CircuitBreaker(BreakerCore):
    """A circuit breaker (see the module docstring for the rules).

    Args:
        name: instance name for metrics, logs, events and :func:`get_circuit_breaker`.
        failure_threshold: open after this many consecutive failures. Defaults to 5 when no
            rate or latency rule is configured; ``None`` with a rate rule disables it.
        failure_rate_threshold: open when failures / calls in the window reach this
            fraction (0 < r <= 1, e.g. ``0.02`` for 2 %).
        slow_call_duration: seconds from which a call is slow (success or failure).
        slow_call_rate_threshold: open when slow calls / calls reach this fraction
            (default 1.0 when ``slow_call_duration`` is set).
        window: ``"count"`` (last ``window_size`` calls) or ``"time"`` (last
            ``window_size`` seconds, per-second buckets).
        window_size: calls or seconds; default 100 calls or 60 seconds.
        minimum_calls: calls the window must hold before a rate is judged (default: the
            window size for a count window, 20 for a time window).
        latency_factor: open when the window P95 latency exceeds this multiple of the
            learned baseline (seed 004: ``3.0``); see :class:`LatencyBaseline`.
        latency_window: seconds the P95 must stay above the bound (default 300 = 5 minutes).
        latency_min_calls: samples a slice (``latency_window / 10``) needs to be judged.
        latency_options: extra :class:`LatencyBaseline` options (``slices``, ``alpha``,
            ``warmup_slices``, ``quantile``).
        open_duration: seconds open, or a function of the number of consecutive openings
            (see :func:`exponential_open_duration`). Default 30.
        recovery_timeout: seed 001 name for a constant ``open_duration``.
        max_open_duration: cap applied to ``open_duration`` results.
        half_open_permits: trial calls admitted in half-open (a hard cap: the decision is
            taken over exactly these calls). Default 1 for consecutive-failures breakers, 10
            otherwise. ``success_threshold`` is the seed-style alias.
        half_open_traffic: instead of permits, admit this fraction of traffic (seed 004:
            ``0.10``) using ``rng``; close once ``half_open_window`` seconds have passed with
            at least ``half_open_min_calls`` trial calls and a failure rate below
            ``half_open_failure_rate``; reopen as soon as the rate reaches it.
        half_open_window: seconds of the traffic-percentage half-open (default 300).
        half_open_failure_rate: failure rate that reopens from half-open (default: the
            ``failure_rate_threshold``; with only consecutive failures, any failure; 0.01 in
            traffic mode).
        half_open_min_calls: trial calls needed before a traffic-mode decision (default
            ``ceil(1 / half_open_failure_rate)``, at least 10).
        half_open_max_wait: seconds, counted from the moment the last permit was handed
            out, after which a half-open breaker whose trials have not all finished (a hung
            probe) reopens, so it cannot stay wedged; ``None`` waits forever. Default 60.
        failure_exceptions: exception types that count as failures (default ``Exception``);
            other exceptions count as successes (the dependency answered).
            ``expected_exception`` is the alias used by other breaker libraries.
        ignore_exceptions: exception types that count as neither success nor failure.
        failure_predicate: ``exc -> bool`` deciding failures instead of
            ``failure_exceptions`` (ignored exceptions are checked first).
        result_failure: ``result -> bool``: a returned value that counts as a failure (for
            instance :func:`http_failure`).
        honor_retry_after: a failure carrying 429/503 + ``Retry-After`` opens the breaker
            for that long (capped by ``max_retry_after``).
        metrics_only: shadow mode: everything is measured and announced, nothing rejected.
        clock: time source (``monotonic()`` for windows and durations, ``time()`` for
            stats); default the system clock.
        rng: randomness for traffic-percentage admission (a ``random.Random``).
        registry: Prometheus registry (default: surefoot's process default); ``metrics=False``
            records no Prometheus metrics.
        hooks: :class:`Hooks` receiving every decision as an event.
        logger: structlog logger for state changes (default ``surefoot.resilience``).

    Raises:
        ConfigurationError: an option is out of range or options contradict each other.
    """

    __slots__ = ()

    # ------------------------------------------------------------------ call forms
    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` through the breaker and return its result.

        Raises:
            CircuitOpenError: the call was not permitted (``fn`` did not run).
            Exception: whatever ``fn`` raised, unchanged.
        """
        if self._state != CLOSED or self.hooks.active:
            err = self._permit()
            if err is not None:
                raise err
            return self._call_general(fn, args, kwargs)
        if self._fast:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self.on_error(0.0, exc)
                raise
            if type(result) in _DEFERRED:
                refuse_deferred(result, "CircuitBreaker", "breaker")
            rc = self._result_check
            if rc is not None and rc(result):
                self.on_result(0.0, result)
            else:
                self._inc_success()
            return result
        if not self._timed:  # no slow-call or latency rule: no duration, at most one clock read
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self.on_error(0.0, exc)
                raise
            if type(result) in _DEFERRED:
                refuse_deferred(result, "CircuitBreaker", "breaker")
            rc = self._result_check
            if rc is not None and rc(result):
                self.on_result(0.0, result)
            else:
                self._closed_success(0.0, self._mono() if self._time_window else 0.0)
            return result
        mono = self._mono
        t0 = mono()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.on_error(mono() - t0, exc)
            raise
        if type(result) in _DEFERRED:
            refuse_deferred(result, "CircuitBreaker", "breaker")
        t1 = mono()
        rc = self._result_check
        if rc is not None and rc(result):
            self.on_result(t1 - t0, result)
        else:
            self._closed_success(t1 - t0, t1)
        return result

    def _call_general(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """The permitted call outside the closed fast path (permission already taken)."""
        mono = self._mono
        t0 = mono()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.on_error(mono() - t0, exc)
            raise
        if type(result) in _DEFERRED:
            self.release()  # the permission taken was not used
            refuse_deferred(result, "CircuitBreaker", "breaker")
        self.on_result(mono() - t0, result)
        return result

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)`` through the breaker and return its result.

        Raises:
            CircuitOpenError: the call was not permitted (``fn`` did not run).
            Exception: whatever ``fn`` raised, unchanged.
        """
        if not self._sync_io:
            return await self._acall_io(fn, args, kwargs)
        if self._state != CLOSED or self.hooks.active:
            err = self._permit()
            if err is not None:
                raise err
        elif self._fast:
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self.on_error(0.0, exc)
                raise
            rc = self._result_check
            if rc is not None and rc(result):
                self.on_result(0.0, result)
            else:
                self._inc_success()
            return result
        elif not self._timed:
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self.on_error(0.0, exc)
                raise
            rc = self._result_check
            if rc is not None and rc(result):
                self.on_result(0.0, result)
            else:
                self._closed_success(0.0, self._mono() if self._time_window else 0.0)
            return result
        mono = self._mono
        t0 = mono()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.on_error(mono() - t0, exc)
            raise
        self.on_result(mono() - t0, result)
        return result

    async def _acall_io(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        await self.aacquire()
        mono = self._mono
        t0 = mono()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self.aon_error(mono() - t0, exc)
            raise
        await self.aon_result(mono() - t0, result)
        return result

    def __call__(self, fn: F) -> F:
        """Decorate a function, coroutine function, generator or async generator function.

        For generators the protected call is the whole iteration: permission is asked when
        iteration starts and the outcome recorded when it ends (closing a generator early
        gives the permission back). The wrapper exposes the breaker as ``.breaker``.
        """
        return wrap_callable(  # type: ignore[return-value]
            fn, owner="CircuitBreaker", var="breaker", attribute="breaker", component=self,
            function=self._wrap_function, coroutine=self._wrap_coroutine,
            generator=self._wrap_gen, async_generator=self._wrap_asyncgen,
        )

    def _wrap_coroutine(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        breaker = self
        acall = self.acall

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The closed fast paths of acall(), inlined to save one coroutine per call.
            st = breaker._state
            if st != CLOSED or not breaker._plain or breaker.hooks.active:
                if breaker._sync_io and (st == FORCED_OPEN or (st == OPEN and not breaker._shadow)):
                    # The fast-fail, inlined: no extra coroutine, no lock.
                    if st == FORCED_OPEN:
                        ra, shown = breaker._forced_ra, "forced_open"
                    else:
                        ra, shown = breaker._open_until - breaker._mono(), "open"
                    if ra > 0:
                        breaker._c_rejected.inc()
                        if breaker.hooks.active:
                            breaker.hooks.emit(
                                "circuit_breaker", breaker.name, "not_permitted", state=shown, retry_after=ra
                            )
                        raise CircuitOpenError(breaker.name, ra, shown)
                return await acall(fn, *args, **kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                breaker.on_error(0.0, exc)
                raise
            rc = breaker._result_check
            if rc is not None and rc(result):
                breaker.on_result(0.0, result)
            elif breaker._fast:
                breaker._inc_success()
            else:
                breaker._closed_success(0.0, breaker._mono() if breaker._time_window else 0.0)
            return result

        return wrapper

    def _wrap_function(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        breaker = self
        call = self.call

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The closed fast paths of call(), inlined to save one argument repacking.
            st = breaker._state
            if st != CLOSED or not breaker._plain or breaker.hooks.active:
                if breaker._sync_io and st != CLOSED:
                    if st == FORCED_OPEN or (st == OPEN and not breaker._shadow):
                        # The fast-fail, inlined: no extra frame, no lock.
                        if st == FORCED_OPEN:
                            ra, shown = breaker._forced_ra, "forced_open"
                        else:
                            ra, shown = breaker._open_until - breaker._mono(), "open"
                        if ra > 0:
                            breaker._c_rejected.inc()
                            if breaker.hooks.active:
                                breaker.hooks.emit(
                                    "circuit_breaker", breaker.name, "not_permitted", state=shown, retry_after=ra
                                )
                            raise CircuitOpenError(breaker.name, ra, shown)
                    err = breaker._permit()
                    if err is not None:
                        raise err
                    return breaker._call_general(fn, args, kwargs)
                return call(fn, *args, **kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                breaker.on_error(0.0, exc)
                raise
            if type(result) in _DEFERRED:  # e.g. a sync wrapper around an async function
                refuse_deferred(result, "CircuitBreaker", "breaker")
            rc = breaker._result_check
            if rc is not None and rc(result):
                breaker.on_result(0.0, result)
            elif breaker._fast:
                breaker._inc_success()
            else:
                breaker._closed_success(0.0, breaker._mono() if breaker._time_window else 0.0)
            return result

        return wrapper

    def _wrap_gen(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        breaker = self

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            breaker.acquire()
            mono = breaker._mono
            t0 = mono()
            try:
                result = yield from fn(*args, **kwargs)
            except GeneratorExit:
                breaker.release()
                raise
            except BaseException as exc:
                breaker.on_error(mono() - t0, exc)
                raise
            breaker.on_success(mono() - t0)
            return result

        return wrapper

    def _wrap_asyncgen(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return guard_async_generator(fn, lambda: _AsyncGenOutcome(self))

    # ------------------------------------------------------------------ context managers
    def __enter__(self) -> CircuitBreaker:
        self.acquire()
        self._cm_stack.set((self._mono(), self._cm_stack.get()))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        t0, previous = self._cm_stack.get()
        self._cm_stack.set(previous)
        duration = self._mono() - t0
        if exc is None:
            self.on_success(duration)
        else:
            self.on_error(duration, exc)

    async def __aenter__(self) -> CircuitBreaker:
        await self.aacquire()
        self._cm_stack.set((self._mono(), self._cm_stack.get()))
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        t0, previous = self._cm_stack.get()
        self._cm_stack.set(previous)
        duration = self._mono() - t0
        if exc is None:
            await self.aon_success(duration)
        else:
            await self.aon_error(duration, exc)

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {_STATE_NAMES[self._state]}>"
