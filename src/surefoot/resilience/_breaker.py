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

import contextvars
import functools
import itertools
import math
import random
import threading
import weakref
from collections.abc import Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import structlog

from .._clock import SYSTEM_CLOCK, Clock
from .._retry_after import parse_retry_after
from ..errors import ConfigurationError, ServiceUnavailableError
from ._callables import DEFERRED_TYPES, UnsupportedCallableError, refuse_deferred, wrap_callable
from ._events import Hooks
from ._window import FAILURE, SLOW, CountWindow, LatencyBaseline, TimeWindow

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "exponential_open_duration",
    "http_failure",
    "retry_after_of",
]

F = TypeVar("F", bound=Callable[..., Any])

# States as ints: the hot path compares ints, never Enum members.
CLOSED, OPEN, HALF_OPEN, DISABLED, FORCED_OPEN = 0, 1, 2, 3, 4


class CircuitState(str, Enum):
    """The state of a breaker (values as in seed 001, plus the operational states)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"
    FORCED_OPEN = "forced_open"


_STATE_ENUM = (
    CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN,
    CircuitState.DISABLED, CircuitState.FORCED_OPEN,
)
_STATE_NAMES = tuple(s.value for s in _STATE_ENUM)
_STATE_INT = {s: i for i, s in enumerate(_STATE_ENUM)}

_log = structlog.get_logger("surefoot.resilience")


class CircuitOpenError(ServiceUnavailableError):
    """A call was not permitted because the circuit breaker is open (503).

    Attributes:
        name: the breaker's name.
        state: ``"open"``, ``"half_open"`` (no trial permit left) or ``"forced_open"``.
        retry_after: seconds until the breaker may admit a call again (also sent as the
            ``Retry-After`` header when the error reaches an HTTP response).

    What to do: fail fast (serve a fallback or a cached answer), or retry after
    ``retry_after`` seconds.

    Constructed positionally (it is built on every rejection, so construction is the
    C-level exception init): ``CircuitOpenError(name, retry_after, state="open")``.
    """

    code = "CIRCUIT_OPEN"

    # Built on every rejection, so construction is the C-level BaseException init storing
    # (name, retry_after, state) in ``args``; the message, headers and problem members are
    # derived on first access (__getattr__).
    __init__ = BaseException.__init__  # type: ignore[assignment]

    if TYPE_CHECKING:  # pragma: no cover

        def __init__(self, name: str, retry_after: float, state: str = "open") -> None: ...

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.args[0]  # type: ignore[no-any-return]

    @property
    def retry_after(self) -> float:  # type: ignore[override]
        return self.args[1]  # type: ignore[no-any-return]

    @property
    def state(self) -> str:
        return self.args[2] if len(self.args) > 2 else "open"  # type: ignore[no-any-return]

    def __getattr__(self, item: str) -> Any:
        if item == "detail":
            value: Any = (
                f"circuit breaker {self.name!r} is {self.state}; "
                f"calls are not permitted for {self.retry_after:.3f} s"
            )
        elif item == "headers":
            value = {"Retry-After": str(max(0, int(-(-self.retry_after // 1))))}
        elif item == "extra":
            value = {}
        elif item == "errors":
            value = None
        else:
            raise AttributeError(item)
        setattr(self, item, value)
        return value

    def __str__(self) -> str:
        return str(self.detail)


def exponential_open_duration(
    base: float, *, factor: float = 2.0, max_duration: float = 600.0
) -> Callable[[int], float]:
    """Open duration growing with consecutive openings: ``base * factor**(n-1)``, capped.

    Args:
        base: seconds open after the first opening.
        factor: growth per consecutive opening (a half-open trial that fails reopens).
        max_duration: cap in seconds.

    Returns:
        a function of the number of consecutive openings (1 for the first).
    """
    if base <= 0 or factor < 1 or max_duration < base:
        raise ConfigurationError(
            "exponential_open_duration needs base > 0, factor >= 1 and max_duration >= base; "
            f"got base={base!r}, factor={factor!r}, max_duration={max_duration!r}"
        )

    def duration(openings: int) -> float:
        exponent = max(0, openings - 1)
        if exponent > 64:
            return max_duration
        return min(max_duration, base * factor**exponent)

    return duration


def http_failure(result: object) -> bool:
    """A result predicate: HTTP 5xx and 429 responses (anything with ``status_code``) fail."""
    status = getattr(result, "status_code", None)
    return isinstance(status, int) and (status >= 500 or status == 429)


def _parse_retry_after(value: Any, now_wall: float) -> float | None:
    # The one parser (surefoot._retry_after); only a positive delay forces the breaker open.
    seconds = parse_retry_after(value, now=now_wall, max_delay=math.inf)
    return seconds if seconds is not None and seconds > 0 else None


def retry_after_of(obj: object, now_wall: float) -> float | None:
    """Seconds a result or exception asks us to stay away, or ``None``.

    Recognised: an object with ``status_code`` (or ``status``) 429 or 503 and a
    ``Retry-After`` header in ``headers`` (seconds or an HTTP date), like
    ``httpx.Response``; an exception with a positive numeric ``retry_after`` (surefoot's
    ``RateLimitError``) or with such a ``response`` (``httpx.HTTPStatusError``). A
    :class:`CircuitOpenError` from another breaker never counts (it is our own fail-fast).

    Args:
        obj: a returned value or a raised exception.
        now_wall: the current wall time (for HTTP-date values).
    """
    if isinstance(obj, CircuitOpenError):
        return None
    if isinstance(obj, BaseException):
        ra = getattr(obj, "retry_after", None)
        if isinstance(ra, (int, float)) and not isinstance(ra, bool) and ra > 0:
            return float(ra)
        response = getattr(obj, "response", None)
        return None if response is None else retry_after_of(response, now_wall)
    status = getattr(obj, "status_code", None)
    if status is None:
        status = getattr(obj, "status", None)
    if status != 429 and status != 503:
        return None
    headers = getattr(obj, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("Retry-After")
        if value is None:
            value = headers.get("retry-after")
    except (AttributeError, TypeError):
        return None
    return _parse_retry_after(value, now_wall)


def _may_push_back(result: object) -> bool:
    """Cheap pre-check: could ``result`` carry a 429/503 Retry-After?"""
    status = getattr(result, "status_code", None)
    if status is None:
        status = getattr(result, "status", None)
    return status == 429 or status == 503


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
        self.breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()

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
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


class _Metrics:
    __slots__ = ("children", "state_children", "counters", "flushed", "lock")

    def __init__(self, name: str, registry: Any, counters: tuple[_AtomicCounter, ...]) -> None:
        from ..metrics._catalogue import CIRCUIT_BREAKER_CALLS, CIRCUIT_BREAKER_STATE

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


_NOT_FAILURES = (Exception,)  # anything that is not an Exception (cancellation, exit) is no failure


class CircuitBreaker:
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
        self.hooks = hooks if hooks is not None else Hooks()
        self.rng = rng if rng is not None else random.Random()
        self._log = logger if logger is not None else _log
        self._lock = threading.Lock()

        # --- trip rules
        if failure_rate_threshold is not None and not 0.0 < failure_rate_threshold <= 1.0:
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
        if not callable(od) and (not isinstance(od, (int, float)) or od < 0):
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
            from .._config import default_registry

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
        elif st == CLOSED or st == DISABLED:
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
        calls = w.calls
        fr, sr = self._fr, self._sr
        if fr is not None and w.failures and w.failures >= fr * calls:
            return "failure_rate"
        if sr is not None and w.slow and w.slow >= sr * calls:
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
                if self._ho_failures and self._ho_failures >= fr * done:
                    self._trip_details("half_open_failure_rate")
                    self._transition(OPEN, now, "half_open_failure_rate", pending)
                elif now - self._ho_since >= self._ho_window:
                    self._transition(CLOSED, now, "half_open_trial_passed", pending)
            return
        n = self._permits
        # The rate over the N trials can only grow from here: decide as soon as it is certain.
        if self._ho_failures and self._ho_failures >= fr * n:
            self._trip_details("half_open_failure")
            self._transition(OPEN, now, "half_open_failure", pending)
        elif self._sr is not None and self._ho_slow and self._ho_slow >= self._sr * n:
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
        self._ho_issued = 0
        self._ho_done = 0
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
        breaker = self

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            await breaker.aacquire()
            mono = breaker._mono
            t0 = mono()
            agen = fn(*args, **kwargs)
            try:
                try:
                    value = await agen.__anext__()
                except StopAsyncIteration:
                    await breaker.aon_success(mono() - t0)
                    return
                while True:
                    try:
                        sent = yield value
                    except GeneratorExit:
                        await agen.aclose()
                        await breaker.arelease()
                        raise
                    except BaseException as thrown:
                        try:
                            value = await agen.athrow(thrown)
                        except StopAsyncIteration:
                            await breaker.aon_success(mono() - t0)
                            return
                    else:
                        try:
                            value = await agen.asend(sent)
                        except StopAsyncIteration:
                            await breaker.aon_success(mono() - t0)
                            return
            except GeneratorExit:
                raise
            except BaseException as exc:
                await breaker.aon_error(mono() - t0, exc)
                raise

        return wrapper

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


_DEFERRED = DEFERRED_TYPES


def _types(value: Any, what: str) -> tuple[type[BaseException], ...]:
    items: Iterable[Any] = value if isinstance(value, tuple) else (value,)
    out = tuple(items)
    for t in out:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise ConfigurationError(f"{what} must be exception types, got {t!r}")
    return out
