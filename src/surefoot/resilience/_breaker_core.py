"""The decision core of the circuit breaker (see :mod:`._breaker` for the rules).

This module is over 600 lines on purpose: the state machine (permission, outcomes, windows,
transitions, stats) is one unit guarded by one lock, and its invariants (when the lock is
taken, which counters a decision reads) are easier to keep in one place than across files.
The sync and async runners live in :mod:`._breaker`, the vocabulary in :mod:`._breaker_rules`,
the metrics in :mod:`._breaker_metrics`.
"""

from __future__ import annotations

import contextvars
import math
import random
import threading
from collections.abc import Callable
from typing import Any, Literal

from .._core.callables import UnsupportedCallableError
from .._core.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigurationError
from ._breaker_metrics import _AtomicCounter, _flusher_for, _Metrics, _multiprocess_metrics
from ._breaker_rules import (
    _STATE_ENUM,
    _STATE_NAMES,
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    OPEN,
    CircuitOpenError,
    CircuitState,
    _log,
    _may_push_back,
    _types,
    retry_after_of,
)
from ._events import Hooks, checked_hooks
from ._window import FAILURE, SLOW, CountWindow, LatencyBaseline, TimeWindow

__all__ = ["BreakerCore"]

_NOT_FAILURES = (Exception,)  # anything that is not an Exception (cancellation, exit) is no failure


class BreakerCore:
    """The decision core of :class:`CircuitBreaker`: options, state machine, windows, stats.

    It holds the permission protocol (``acquire``/``release``/``on_success``/``on_error``/
    ``on_result`` and the ``a``-prefixed twins) and does no calling of its own; the sync and
    async runners (``call``, ``acall``, decorators, context managers) are
    :class:`CircuitBreaker`'s. The options are documented on :class:`CircuitBreaker`.
    """

    __slots__ = (
        "name", "clock", "hooks", "rng", "_mono", "_lock", "_state", "_shadow", "_fast",
        "_needs_time", "_check_results", "_consec", "_threshold", "_fr", "_sr", "_slow",
        "_window", "_min_calls", "_latency", "_open_duration", "_max_open", "_open_until",
        "_openings", "_state_since", "_changed_at", "_permits", "_traffic", "_ho_window",
        "_ho_fr", "_ho_min", "_ho_max_wait", "_ho_since", "_ho_issued", "_ho_done", "_ho_full_since",
        "_ho_failures", "_ho_slow", "_failure_types", "_ignore_types", "_failure_predicate",
        "_result_failure", "_honor_ra", "_max_ra", "_log", "_c_success", "_c_failed",
        "_c_slow", "_c_ignored", "_c_rejected", "_inc_success", "_metrics",
        "_last_failure_wall", "_last_trip", "_cm_stack", "_time_window", "_result_check", "_registry",
        "_stats_base", "_timed", "_succ_seen", "_forced_ra", "_plain",
        "__weakref__",
    )

    def __init__(
        self,
        name: str | None = None,
        *,
        failure_threshold: int | None = None,
        failure_rate_threshold: float | None = None,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float | None = None,
        window: Literal["count", "time"] = "count",
        window_size: int | None = None,
        minimum_calls: int | None = None,
        latency_factor: float | None = None,
        latency_window: float = 300.0,
        latency_min_calls: int = 10,
        latency_options: dict[str, Any] | None = None,
        open_duration: float | Callable[[int], float] | None = None,
        recovery_timeout: float | None = None,
        max_open_duration: float | None = None,
        half_open_permits: int | None = None,
        success_threshold: int | None = None,
        half_open_traffic: float | None = None,
        half_open_window: float = 300.0,
        half_open_failure_rate: float | None = None,
        half_open_min_calls: int | None = None,
        half_open_max_wait: float | None = 60.0,
        failure_exceptions: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        expected_exception: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        ignore_exceptions: type[BaseException] | tuple[type[BaseException], ...] = (),
        failure_predicate: Callable[[BaseException], bool] | None = None,
        result_failure: Callable[[Any], bool] | None = None,
        honor_retry_after: bool = True,
        max_retry_after: float = 3600.0,
        metrics_only: bool = False,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        registry: Any = None,
        metrics: bool = True,
        hooks: Hooks | None = None,
        logger: Any = None,
    ) -> None:
        self.name = name if name is not None else f"breaker-{id(self):x}"
        self.clock = clock if clock is not None else SYSTEM_CLOCK
        self._mono = self.clock.monotonic
        self.hooks = checked_hooks(hooks, "CircuitBreaker")
        self.rng = rng if rng is not None else random.Random()
        self._log = logger if logger is not None else _log
        self._lock = threading.Lock()

        # --- trip rules
        if failure_rate_threshold is not None and (
            not isinstance(failure_rate_threshold, (int, float)) or not 0.0 < failure_rate_threshold <= 1.0
        ):
            raise ConfigurationError(
                f"failure_rate_threshold is a fraction in (0, 1] (0.02 = 2 %), got {failure_rate_threshold!r}"
            )
        if slow_call_duration is not None and slow_call_duration <= 0:
            raise ConfigurationError(f"slow_call_duration must be > 0 seconds, got {slow_call_duration!r}")
        if slow_call_rate_threshold is not None:
            if slow_call_duration is None:
                raise ConfigurationError("slow_call_rate_threshold needs slow_call_duration (seconds)")
            if not 0.0 < slow_call_rate_threshold <= 1.0:
                raise ConfigurationError(
                    f"slow_call_rate_threshold is a fraction in (0, 1], got {slow_call_rate_threshold!r}"
                )
        elif slow_call_duration is not None:
            slow_call_rate_threshold = 1.0
        rate_rules = failure_rate_threshold is not None or slow_call_rate_threshold is not None
        if failure_threshold is None and not rate_rules and latency_factor is None:
            failure_threshold = 5
        if failure_threshold is not None and (
            not isinstance(failure_threshold, int) or failure_threshold < 1
        ):
            raise ConfigurationError(f"failure_threshold must be an int >= 1, got {failure_threshold!r}")
        self._threshold = failure_threshold
        self._fr = failure_rate_threshold
        self._sr = slow_call_rate_threshold
        self._slow = slow_call_duration

        if window not in ("count", "time"):
            raise ConfigurationError(f"window must be 'count' or 'time', got {window!r}")
        if rate_rules:
            size = window_size if window_size is not None else (100 if window == "count" else 60)
            if not isinstance(size, int) or size < 1:
                raise ConfigurationError(f"window_size must be an int >= 1, got {window_size!r}")
            self._window: CountWindow | TimeWindow | None = (
                CountWindow(size) if window == "count" else TimeWindow(size)
            )
            mc = minimum_calls if minimum_calls is not None else (size if window == "count" else 20)
            if not isinstance(mc, int) or mc < 1:
                raise ConfigurationError(f"minimum_calls must be an int >= 1, got {minimum_calls!r}")
            if window == "count" and mc > size:
                raise ConfigurationError(
                    f"minimum_calls={mc} is more than a count window of window_size={size} calls can "
                    f"hold, so the rate would never be judged; lower minimum_calls or raise window_size"
                )
            self._min_calls = mc
        else:
            self._window = None
            self._min_calls = 0

        if latency_factor is not None:
            try:
                self._latency: LatencyBaseline | None = LatencyBaseline(
                    factor=latency_factor, window=latency_window, min_calls=latency_min_calls,
                    **(latency_options or {}),
                )
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"latency options: {exc}") from None
        else:
            self._latency = None

        # --- open duration
        if open_duration is not None and recovery_timeout is not None:
            raise ConfigurationError("give open_duration or recovery_timeout (its seed 001 name), not both")
        od = open_duration if open_duration is not None else recovery_timeout
        if od is None:
            od = 30.0
        if not callable(od) and (not isinstance(od, (int, float)) or isinstance(od, bool) or not 0 <= od < math.inf):
            raise ConfigurationError(f"open_duration must be seconds >= 0 or a function, got {od!r}")
        self._open_duration = od
        if max_open_duration is not None and max_open_duration <= 0:
            raise ConfigurationError(f"max_open_duration must be > 0, got {max_open_duration!r}")
        self._max_open = max_open_duration

        # --- half-open
        if half_open_permits is not None and success_threshold is not None:
            raise ConfigurationError("give half_open_permits or success_threshold (its alias), not both")
        permits = half_open_permits if half_open_permits is not None else success_threshold
        if half_open_traffic is not None:
            if not 0.0 < half_open_traffic <= 1.0:
                raise ConfigurationError(
                    f"half_open_traffic is a fraction in (0, 1] (0.1 = 10 %), got {half_open_traffic!r}"
                )
            if half_open_window <= 0:
                raise ConfigurationError(f"half_open_window must be > 0 seconds, got {half_open_window!r}")
        if permits is None:
            permits = 1 if (not rate_rules and latency_factor is None) else 10
        if not isinstance(permits, int) or permits < 1:
            raise ConfigurationError(f"half_open_permits must be an int >= 1, got {permits!r}")
        self._permits = permits
        self._traffic = half_open_traffic
        self._ho_window = float(half_open_window)
        if half_open_failure_rate is None:
            if half_open_traffic is not None:
                half_open_failure_rate = 0.01
            elif failure_rate_threshold is not None:
                half_open_failure_rate = failure_rate_threshold
            else:
                half_open_failure_rate = 0.0  # any trial failure reopens
        if not 0.0 <= half_open_failure_rate <= 1.0:
            raise ConfigurationError(
                f"half_open_failure_rate is a fraction in [0, 1], got {half_open_failure_rate!r}"
            )
        self._ho_fr = half_open_failure_rate
        if half_open_min_calls is None:
            half_open_min_calls = max(10, math.ceil(1.0 / half_open_failure_rate)) if half_open_failure_rate > 0 else 10
        if not isinstance(half_open_min_calls, int) or half_open_min_calls < 1:
            raise ConfigurationError(f"half_open_min_calls must be an int >= 1, got {half_open_min_calls!r}")
        self._ho_min = half_open_min_calls
        if half_open_max_wait is not None and half_open_max_wait <= 0:
            raise ConfigurationError(f"half_open_max_wait must be > 0 seconds or None, got {half_open_max_wait!r}")
        self._ho_max_wait = half_open_max_wait

        # --- classification
        if expected_exception is not None:
            if failure_exceptions is not Exception:
                raise ConfigurationError(
                    "give failure_exceptions or expected_exception (its alias), not both"
                )
            failure_exceptions = expected_exception
        self._failure_types = _types(failure_exceptions, "failure_exceptions")
        self._ignore_types = _types(ignore_exceptions, "ignore_exceptions")
        for option, value in (("failure_predicate", failure_predicate), ("result_failure", result_failure)):
            if value is not None and not callable(value):
                raise ConfigurationError(f"{option} must be a function (or None), got {value!r}")
        if isinstance(max_retry_after, bool) or not isinstance(max_retry_after, (int, float)) or not max_retry_after >= 0:
            raise ConfigurationError(f"max_retry_after must be seconds >= 0, got {max_retry_after!r}")
        self._failure_predicate = failure_predicate
        self._result_failure = result_failure
        self._honor_ra = bool(honor_retry_after)
        self._max_ra = float(max_retry_after)
        rf = result_failure
        if rf is not None and self._honor_ra:
            self._result_check: Callable[[Any], bool] | None = lambda r: rf(r) or _may_push_back(r)
        elif rf is not None:
            self._result_check = rf
        elif self._honor_ra:
            self._result_check = _may_push_back
        else:
            self._result_check = None

        # --- hot-path decisions made once
        self._fast = self._window is None and self._latency is None and self._slow is None
        self._needs_time = (
            self._latency is not None or self._slow is not None or isinstance(self._window, TimeWindow)
        )
        self._time_window = isinstance(self._window, TimeWindow)
        self._timed = self._latency is not None or self._slow is not None  # durations matter
        # Decorators run the call themselves (no duration needed, local state).
        self._plain = not self._timed and self._sync_io

        # --- counters and metrics
        self._c_success = _AtomicCounter()
        self._c_failed = _AtomicCounter()
        self._c_slow = _AtomicCounter()
        self._c_ignored = _AtomicCounter()
        self._c_rejected = _AtomicCounter()
        self._inc_success = self._c_success.inc
        if metrics:
            from .._core.state import default_registry

            reg = registry if registry is not None else default_registry()
            self._registry = reg
            flusher = _flusher_for(reg)
            self._metrics: _Metrics | None = _Metrics(
                self.name, reg,
                (self._c_success, self._c_failed, self._c_slow, self._c_ignored, self._c_rejected),
            )
            flusher.breakers.add(self)
            if _multiprocess_metrics():
                # Scrapes read other processes' files, so a scrape-time flush never runs
                # here: push on every success instead (exact, at the cost of one counter
                # increment per call; other kinds follow at the next success or state change).
                inc, flush = self._c_success.inc, self._metrics.flush

                def inc_and_flush() -> int:
                    n = inc()
                    flush()
                    return n

                self._inc_success = inc_and_flush
        else:
            self._metrics = None
            self._registry = None
        self._cm_stack: contextvars.ContextVar[tuple[float, Any]] = contextvars.ContextVar(
            f"surefoot_breaker_{self.name}", default=(0.0, None)
        )

        self._stats_base = (0, 0, 0, 0, 0)
        self._shadow = bool(metrics_only)
        self._state = CLOSED
        self._consec = 0
        self._succ_seen = 0
        self._openings = 0
        self._forced_ra = self._base_open_duration()
        self._open_until = 0.0
        self._last_failure_wall: float | None = None
        self._last_trip: dict[str, Any] = {}
        self._reset_half_open(0.0)
        self._state_since = self._mono()
        self._changed_at = self.clock.time()
        if self._latency is not None:
            self._latency.restart(self._state_since)
        if self._metrics is not None:
            self._metrics.show_state(CLOSED)

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> CircuitState:
        """The current state; an open breaker whose open duration has passed reads (and
        becomes) ``half_open``, as seed 001 callers expect after the recovery timeout."""
        return self.current_state()

    @property
    def metrics_only(self) -> bool:
        """True in shadow mode (transitions happen, nothing is rejected)."""
        return self._shadow

    def current_state(self) -> CircuitState:
        """The state, first moving ``open`` to ``half_open`` if the open duration has passed."""
        if self._state == OPEN:
            now = self._mono()
            pending: list[tuple[Any, ...]] = []
            with self._lock:
                if self._state == OPEN and now >= self._open_until:
                    self._transition(HALF_OPEN, now, "open_duration_elapsed", pending)
            self._announce(pending)
        return _STATE_ENUM[self._state]

    # ------------------------------------------------------------------ permission
    def acquire(self) -> None:
        """Ask permission for one call.

        Raises:
            CircuitOpenError: the breaker is open (or half-open with no permit left, or
                forced open); ``retry_after`` says when to come back.
        """
        if self._state != CLOSED:
            err = self._permit()
            if err is not None:
                raise err

    def _permit(self) -> CircuitOpenError | None:
        """Decide a non-closed permission: ``None`` (permitted) or the error to raise."""
        st = self._state
        if st == OPEN and not self._shadow:
            # Lock-free rejection: a racing transition makes this a rejection that happened
            # just before it, which is a valid order.
            ra = self._open_until - self._mono()
            if ra > 0:
                self._c_rejected.inc()
                if self.hooks.active:
                    self.hooks.emit("circuit_breaker", self.name, "not_permitted", state="open", retry_after=ra)
                return CircuitOpenError(self.name, ra, "open")
        elif st == FORCED_OPEN:
            self._c_rejected.inc()
            ra = self._forced_ra
            if self.hooks.active:
                self.hooks.emit("circuit_breaker", self.name, "not_permitted", state="forced_open", retry_after=ra)
            return CircuitOpenError(self.name, ra, "forced_open")
        elif st in (CLOSED, DISABLED):
            return None
        return self._permit_locked()

    def _reject(self, retry_after: float, shown: str) -> CircuitOpenError:
        self._c_rejected.inc()
        if self.hooks.active:
            self.hooks.emit("circuit_breaker", self.name, "not_permitted", state=shown, retry_after=retry_after)
        return CircuitOpenError(self.name, retry_after, shown)

    def _permit_locked(self) -> CircuitOpenError | None:
        now = self._mono()
        pending: list[tuple[Any, ...]] = []
        retry_after: float | None = None
        shown = "open"
        with self._lock:
            st = self._state
            if st == OPEN:
                if now >= self._open_until:
                    self._transition(HALF_OPEN, now, "open_duration_elapsed", pending)
                    st = HALF_OPEN
                elif not self._shadow:
                    retry_after = self._open_until - now
            elif st == FORCED_OPEN:
                retry_after = self._forced_ra
                shown = "forced_open"
            if st == HALF_OPEN:
                retry_after = self._half_open_admit(now, pending)
                shown = "half_open" if self._state == HALF_OPEN else "open"
                if retry_after is not None and self._shadow:
                    retry_after = None
        if pending:
            self._announce(pending)
        if retry_after is not None:
            return self._reject(retry_after, shown)
        return None

    def _half_open_admit(self, now: float, pending: list[tuple[Any, ...]]) -> float | None:
        """Under the lock: admit a trial call (None) or return the retry-after."""
        if self._traffic is not None:
            if self._ho_done >= self._ho_min and now - self._ho_since >= self._ho_window:
                self._transition(CLOSED, now, "half_open_trial_passed", pending)
                return None
            if self.rng.random() < self._traffic:
                self._ho_issued += 1
                return None
            return 1.0
        if self._ho_issued < self._permits:
            self._ho_issued += 1
            if self._ho_issued == self._permits:
                self._ho_full_since = now
            return None
        mw = self._ho_max_wait
        if mw is not None:
            # Counted from the moment the last permit was handed out: slow traffic filling
            # the permits is not a hung probe.
            waited = now - self._ho_full_since
            if waited >= mw:
                # Trials are hung: a dependency that does not answer is not healthy. Reopen
                # (a late answer from the abandoned probe is then ignored).
                self._trip_details("half_open_max_wait", waited=waited)
                self._transition(OPEN, now, "half_open_max_wait", pending)
                return self._open_until - now
            return mw - waited
        return 1.0

    def release(self) -> None:
        """Give back a permission whose call never ran (cancelled before running)."""
        if self._state != HALF_OPEN:
            return
        with self._lock:
            if self._state == HALF_OPEN and self._ho_issued > self._ho_done:
                self._ho_issued -= 1

    # ------------------------------------------------------------------ outcomes
    def on_success(self, duration: float) -> None:
        """Record a successful call that took ``duration`` seconds."""
        if self._state == CLOSED and not self.hooks.active:
            if self._fast:
                self._inc_success()
                return
            self._closed_success(duration, self._mono() if self._needs_time else 0.0)
            return
        self._outcome(0, duration, None, None)

    def _closed_success(self, duration: float, now: float) -> None:
        """A success in a closed window breaker (count or time window, no hooks)."""
        slow = self._slow
        if (slow is not None and duration >= slow) or self._latency is not None:
            self._outcome(0, duration, None, None, now)
            return
        self._inc_success()
        w = self._window
        if w is not None and not w.failures and not w.slow and self._state == CLOSED:
            # No failure or slow call in the window, so this success cannot trip anything;
            # record it without the lock when that is exact. (A racing failure recorded
            # under the lock is equivalent to this success having come first.)
            if self._time_window:
                if int(now) == w._head:  # type: ignore[union-attr]
                    w.note_success()  # type: ignore[union-attr]
                    return
            elif w.calls == w.size:
                # A full count window of successes: one more success overwrites a success,
                # so neither the totals nor the order of future evictions change.
                return
        pending: list[tuple[Any, ...]] | None = None
        with self._lock:
            if self._state == CLOSED and w is not None:
                self._consec = 0
                if self._time_window:
                    if int(now) == w._head:  # type: ignore[union-attr]
                        # TimeWindow.record(0) inlined for the current second.
                        w._calls[w._head % w.size] += 1  # type: ignore[union-attr]
                        w.calls += 1
                    else:
                        w.record(0, now)
                else:
                    # CountWindow.record(0) inlined: this is the hot path of rate breakers.
                    ring = w._ring  # type: ignore[union-attr]
                    pos = w._pos  # type: ignore[union-attr]
                    old = ring[pos]
                    if old < 0:
                        w.calls += 1
                    elif old:
                        w.failures -= old & 1
                        w.slow -= old >> 1
                    ring[pos] = 0
                    pos += 1
                    w._pos = 0 if pos == w.size else pos  # type: ignore[union-attr]
                # A success can complete the minimum-calls gate while the rate is high.
                if (w.failures or w.slow) and w.calls >= self._min_calls:
                    pending = []
                    self._check_window(now, pending)
            elif self._state == HALF_OPEN:
                pending = []
                self._record_half_open(0, now, pending)
        if pending:
            self._announce(pending)

    def on_error(self, duration: float, exc: BaseException) -> None:
        """Record a call that raised ``exc`` after ``duration`` seconds.

        Cancellation and interpreter exits (anything not an ``Exception``), a misused call
        form (:class:`UnsupportedCallableError`) and ignored exceptions give the permission back and count as neither success nor failure; an
        exception that is not a failure (per ``failure_exceptions`` /
        ``failure_predicate``) counts as a success.
        """
        if not isinstance(exc, Exception) or type(exc) is UnsupportedCallableError:
            # (a misused call form is a bug in the caller, not an outcome of the dependency)
            self._neither(duration, exc, "released")
            return
        if self._ignore_types and isinstance(exc, self._ignore_types):
            self._c_ignored.inc()
            self._neither(duration, exc, "ignored")
            return
        pred = self._failure_predicate
        failed = bool(pred(exc)) if pred is not None else isinstance(exc, self._failure_types)
        if not failed:
            self._outcome(0, duration, None, exc)
            return
        ra = retry_after_of(exc, self.clock.time()) if self._honor_ra else None
        self._outcome(FAILURE, duration, ra, exc)

    def on_result(self, duration: float, result: object) -> None:
        """Record a call that returned ``result`` after ``duration`` seconds.

        The result is a failure when ``result_failure(result)`` is true, or when it
        carries 429/503 + ``Retry-After`` (which also opens the breaker for that long).
        """
        rc = self._result_check
        if rc is not None and rc(result):
            ra = retry_after_of(result, self.clock.time()) if self._honor_ra else None
            rf = self._result_failure
            if ra is not None or (rf is not None and rf(result)):
                self._outcome(FAILURE, duration, ra, result)
                return
        self.on_success(duration)

    def _failed_result(self, duration: float, result: object) -> None:
        """Record a returned value as a failed call, whatever ``result_failure`` says (the
        HTTP client's 429/5xx answers); a 429/503 ``Retry-After`` still opens the breaker."""
        ra = retry_after_of(result, self.clock.time()) if self._honor_ra else None
        self._outcome(FAILURE, duration, ra, result)

    async def _afailed_result(self, duration: float, result: object) -> None:
        """Async twin of :meth:`_failed_result`."""
        self._failed_result(duration, result)

    def _neither(self, duration: float, exc: BaseException, kind: str) -> None:
        if self._state == HALF_OPEN:
            with self._lock:
                if self._state == HALF_OPEN and self._ho_issued > self._ho_done:
                    self._ho_issued -= 1
        if self.hooks.active:
            self.hooks.emit(
                "circuit_breaker", self.name, kind, duration=duration, exception=type(exc).__name__
            )

    def _outcome(
        self, bits: int, duration: float, retry_after: float | None, cause: object, now: float | None = None
    ) -> None:
        slow = self._slow
        if slow is not None and duration >= slow:
            bits |= SLOW
            self._c_slow.inc()
        if bits & FAILURE:
            self._c_failed.inc()
            self._last_failure_wall = self.clock.time()
        else:
            self._inc_success()
        # A closed consecutive-failures breaker needs the time only when it may trip.
        if now is None:
            now = (
                self._mono()
                if (self._needs_time or bits & FAILURE or retry_after is not None or self._state != CLOSED)
                else 0.0
            )
        pending: list[tuple[Any, ...]] = []
        with self._lock:
            st = self._state
            if retry_after is not None and st != DISABLED and st != FORCED_OPEN:
                ra = min(retry_after, self._max_ra)
                if st == OPEN:
                    self._open_until = max(self._open_until, now + ra)
                else:
                    self._trip_details(None, retry_after=ra)
                    self._transition(OPEN, now, "retry_after", pending, duration=ra)
            elif st == CLOSED:
                self._record_closed(bits, duration, now, pending)
            elif st == HALF_OPEN:
                self._record_half_open(bits, now, pending)
        if self.hooks.active:
            self.hooks.emit(
                "circuit_breaker", self.name, "failure" if bits & FAILURE else "success",
                duration=duration, slow=bool(bits & SLOW),
                cause=type(cause).__name__ if cause is not None else None,
            )
        if pending:
            self._announce(pending)

    def _record_closed(self, bits: int, duration: float, now: float, pending: list[tuple[Any, ...]]) -> None:
        reason = None
        if self._threshold is not None:
            if bits & FAILURE:
                # "Consecutive" = failures since the last success. Successes are counted
                # lock-free (an atomic C-level counter); a changed count means one landed
                # since the previous failure, so the run restarts. No lost updates.
                seen = self._c_success.value()
                if seen != self._succ_seen:
                    self._succ_seen = seen
                    self._consec = 0
                self._consec += 1
                if self._consec >= self._threshold:
                    reason = "consecutive_failures"
            else:
                self._consec = 0
        w = self._window
        if w is not None:
            w.record(bits, now)
            if reason is None and w.calls >= self._min_calls:
                reason = self._window_reason(w)
        lat = self._latency
        if lat is not None and lat.record(duration, now) and reason is None:
            reason = "latency"
        if reason is not None:
            self._trip_details(reason)
            self._transition(OPEN, now, reason, pending)

    def _window_reason(self, w: CountWindow | TimeWindow) -> str | None:
        # Rates are compared as rates (``failures / calls``): ``fr * calls`` carries a rounding
        # error (0.07 * 100 is 7.000000000000001), which would let a rate that reaches the
        # threshold exactly (7 failures in 100 calls) pass for one below it.
        calls = w.calls
        fr, sr = self._fr, self._sr
        if fr is not None and w.failures and w.failures / calls >= fr:
            return "failure_rate"
        if sr is not None and w.slow and w.slow / calls >= sr:
            return "slow_call_rate"
        return None

    def _check_window(self, now: float, pending: list[tuple[Any, ...]]) -> None:
        """Under the lock, closed: trip when the window's rates say so."""
        w = self._window
        if w is not None:
            reason = self._window_reason(w)
            if reason is not None:
                self._trip_details(reason)
                self._transition(OPEN, now, reason, pending)

    def _record_half_open(self, bits: int, now: float, pending: list[tuple[Any, ...]]) -> None:
        if self._ho_done >= self._ho_issued and not self._shadow:
            return  # a late outcome of a call admitted before this trial began
        self._ho_done += 1
        self._ho_failures += bits & FAILURE
        self._ho_slow += bits >> 1
        fr = self._ho_fr
        if self._traffic is not None:
            done = self._ho_done
            if done >= self._ho_min:
                if self._ho_failures and self._ho_failures / done >= fr:
                    self._trip_details("half_open_failure_rate")
                    self._transition(OPEN, now, "half_open_failure_rate", pending)
                elif now - self._ho_since >= self._ho_window:
                    self._transition(CLOSED, now, "half_open_trial_passed", pending)
            return
        n = self._permits
        # The rate over the N trials can only grow from here: decide as soon as it is certain.
        if self._ho_failures and self._ho_failures / n >= fr:
            self._trip_details("half_open_failure")
            self._transition(OPEN, now, "half_open_failure", pending)
        elif self._sr is not None and self._ho_slow and self._ho_slow / n >= self._sr:
            self._trip_details("half_open_slow_calls")
            self._transition(OPEN, now, "half_open_slow_calls", pending)
        elif self._ho_done >= n:
            self._transition(CLOSED, now, "half_open_trial_passed", pending)

    # ------------------------------------------------------------------ transitions
    def _base_open_duration(self) -> float:
        return self._open_duration_for(max(1, self._openings))

    def _open_duration_for(self, openings: int) -> float:
        od = self._open_duration
        seconds = float(od(openings)) if callable(od) else float(od)
        if self._max_open is not None:
            seconds = min(seconds, self._max_open)
        return max(0.0, seconds)

    def _reset_half_open(self, now: float) -> None:
        self._ho_since = now
        self._ho_full_since = now
        self._ho_issued: int = 0
        self._ho_done: int = 0
        self._ho_failures = 0
        self._ho_slow = 0

    def _trip_details(self, reason: str | None, **extra: Any) -> None:
        details: dict[str, Any] = dict(extra)
        w = self._window
        if w is not None and w.calls:
            details["failure_rate"] = w.failures / w.calls
            details["slow_call_rate"] = w.slow / w.calls
            details["window_calls"] = w.calls
        if self._threshold is not None:
            details["consecutive_failures"] = self._consec
        if self._state == HALF_OPEN:
            details["trial_calls"] = self._ho_done
            details["trial_failures"] = self._ho_failures
        lat = self._latency
        if lat is not None:
            details["latency_baseline"] = lat.baseline
            details["latency_p95"] = lat.last_slice_p95
        self._last_trip = details

    def _transition(
        self, to: int, now: float, reason: str, pending: list[tuple[Any, ...]], duration: float | None = None
    ) -> None:
        """Under the lock: move to ``to`` and queue the announcement."""
        frm = self._state
        extra: dict[str, Any] = {}
        if to == OPEN:
            if duration is None:
                self._openings += 1
                duration = self._open_duration_for(self._openings)
            self._open_until = now + duration
            extra = dict(self._last_trip)
            extra["open_for"] = duration
            extra["openings"] = self._openings
        elif to == HALF_OPEN:
            self._reset_half_open(now)
        elif to == CLOSED:
            self._openings = 0
            self._consec = 0
            if self._window is not None:
                self._window.reset()
            if self._latency is not None:
                self._latency.restart(now)
            self._reset_half_open(now)
        self._state = to
        self._state_since = now
        self._changed_at = self.clock.time()
        pending.append((frm, to, reason, extra))

    def _announce(self, pending: list[tuple[Any, ...]]) -> None:
        """Outside the lock: metrics, log line and events for queued transitions."""
        m = self._metrics
        if m is not None:
            m.show_state(self._state)
            m.flush()
        for frm, to, reason, extra in pending:
            event = {OPEN: "circuit_opened", HALF_OPEN: "circuit_half_opened", CLOSED: "circuit_closed",
                     DISABLED: "circuit_disabled", FORCED_OPEN: "circuit_forced_open"}[to]
            level = self._log.warning if to in (OPEN, FORCED_OPEN) else self._log.info
            level(
                event, name=self.name, from_state=_STATE_NAMES[frm], to_state=_STATE_NAMES[to],
                reason=reason, metrics_only=self._shadow, **extra,
            )
            if self.hooks.active:
                self.hooks.emit(
                    "circuit_breaker", self.name, "state_change", from_state=_STATE_NAMES[frm],
                    to_state=_STATE_NAMES[to], reason=reason, **extra,
                )

    def _manual(self, to: int, reason: str) -> None:
        now = self._mono()
        pending: list[tuple[Any, ...]] = []
        with self._lock:
            if to == CLOSED:
                self._openings = 0
                self._transition(CLOSED, now, reason, pending)
            else:
                self._transition(to, now, reason, pending, duration=0.0 if to == OPEN else None)
        self._announce(pending)

    def reset(self) -> None:
        """Close the breaker, forget its windows and restart the counts of :meth:`get_stats`
        (Prometheus counters keep counting); also leaves disabled / forced-open."""
        self._stats_base = self._totals()
        self._last_failure_wall = None
        self._manual(CLOSED, "reset")

    def _totals(self) -> tuple[int, int, int, int, int]:
        return (
            self._c_success.value(), self._c_failed.value(), self._c_slow.value(),
            self._c_ignored.value(), self._c_rejected.value(),
        )

    def disable(self) -> None:
        """Permit every call and record nothing in the windows until :meth:`reset`."""
        self._manual(DISABLED, "disabled")

    def force_open(self) -> None:
        """Reject every call (isolate the dependency) until :meth:`reset`; rejections carry
        the base open duration as ``retry_after``."""
        self._forced_ra = self._base_open_duration()
        self._manual(FORCED_OPEN, "forced_open")

    def set_metrics_only(self, enabled: bool = True) -> None:
        """Switch shadow mode on or off at run time."""
        self._shadow = bool(enabled)

    # ------------------------------------------------------------------ stats
    def get_stats(self) -> dict[str, Any]:
        """A snapshot for dashboards and seed 001 callers.

        Returns:
            ``name``, ``state``, ``metrics_only``, ``failure_count`` / ``success_count`` /
            ``slow_count`` / ``ignored_count`` / ``not_permitted_count`` and ``total_calls``
            (successes + failures) since creation or the last :meth:`reset`,
            ``consecutive_failures``, ``failure_threshold``, ``window_calls``,
            ``failure_rate``, ``slow_call_rate`` (over the current window, which restarts
            when the breaker closes), ``latency_baseline``, ``openings`` (consecutive),
            ``last_failure_time`` and ``last_state_change`` (wall seconds), ``retry_after``
            (seconds, when open) and ``half_open_trials``.
        """
        self.current_state()  # an elapsed open duration reads as half-open, as in .state
        if self._metrics is not None:
            self._metrics.flush()
        now = self._mono()
        with self._lock:
            w = self._window
            if isinstance(w, TimeWindow):
                w.advance(now)
            successes, failures, slow, ignored, rejected = (
                now_v - base for now_v, base in zip(self._totals(), self._stats_base, strict=True)
            )
            stats: dict[str, Any] = {
                "name": self.name,
                "state": _STATE_NAMES[self._state],
                "metrics_only": self._shadow,
                "failure_count": failures,
                "success_count": successes,
                "total_calls": failures + successes,
                "slow_count": slow,
                "ignored_count": ignored,
                "not_permitted_count": rejected,
                "consecutive_failures": (
                    self._consec if self._c_success.value() == self._succ_seen else 0
                ),
                "failure_threshold": self._threshold,
                "window_calls": w.calls if w is not None else None,
                "failure_rate": (w.failures / w.calls) if w is not None and w.calls else None,
                "slow_call_rate": (w.slow / w.calls) if w is not None and w.calls else None,
                "latency_baseline": self._latency.baseline if self._latency is not None else None,
                "openings": self._openings,
                "last_failure_time": self._last_failure_wall,
                "last_state_change": self._changed_at,
                "retry_after": max(0.0, self._open_until - now) if self._state == OPEN else None,
                "half_open_trials": self._ho_done if self._state == HALF_OPEN else None,
            }
        return stats

    def _flush_metrics(self) -> None:
        if self._metrics is not None:
            self._metrics.flush()

    # ------------------------------------------------------------------ async twins
    # A local breaker does no I/O, so the async twins are the sync methods; a breaker
    # whose state lives elsewhere (Redis) overrides them and sets ``_sync_io = False``.
    _sync_io = True

    @property
    def local_decisions(self) -> bool:
        """True when permission and outcome decisions do no I/O.

        Async callers (such as :class:`Policy`) may then drive the sync protocol
        (``acquire``/``on_error``/``on_result``) and save a coroutine per decision; a breaker
        whose state lives elsewhere (:class:`RedisCircuitBreaker`) is ``False``.
        """
        return self._sync_io

    @property
    def times_calls(self) -> bool:
        """False when call durations play no part in decisions (no slow-call or latency rule):
        callers may then report a duration of ``0.0`` and skip the clock reads."""
        return self._timed

    async def aacquire(self) -> None:
        """Async twin of :meth:`acquire`."""
        if self._state != CLOSED:
            err = self._permit()
            if err is not None:
                raise err

    async def arelease(self) -> None:
        """Async twin of :meth:`release`."""
        self.release()

    async def aon_success(self, duration: float) -> None:
        """Async twin of :meth:`on_success`."""
        self.on_success(duration)

    async def aon_error(self, duration: float, exc: BaseException) -> None:
        """Async twin of :meth:`on_error`."""
        self.on_error(duration, exc)

    async def aon_result(self, duration: float, result: object) -> None:
        """Async twin of :meth:`on_result`."""
        self.on_result(duration, result)
