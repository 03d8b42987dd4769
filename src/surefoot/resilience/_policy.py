"""One pipeline for every resilience component, composed in one fixed order.

::

    retry ─► rate_limit ─► bulkhead ─► breaker ─► timeout ─► chaos ─► your call
    (outermost)                                                   (innermost)

Why this order:

* **retry** is outermost and owns the overall ``deadline``: every attempt goes through all the
  stages below it, so each attempt is admitted, recorded by the breaker and bounded by its
  own timeout. A ``CircuitOpenError``, ``BulkheadFullError`` or ``RateLimitExceededError`` is
  retried like any failure when ``on`` covers it, honouring its ``retry_after`` — and given up
  at once when that is longer than ``max_retry_after`` or past the deadline.
* **rate_limit** is per attempt because providers count every request, retries included; it
  sits outside the breaker so a local refusal never counts as a failure of the dependency.
* **bulkhead** holds a slot only while an attempt runs — never during backoff sleeps or rate
  waits — and is outside the breaker for the same reason as the rate limiter.
* **breaker** records each attempt's outcome, including timeouts (the timeout is inside it).
* **timeout** bounds each attempt, shrunk to what is left of the retry's deadline, so the
  overall deadline holds even while an attempt is running (async; see :class:`Timeout` for
  what sync calls can and cannot do).
* **chaos** is innermost: it stands for the dependency, so everything above reacts to
  injected faults exactly as to real ones.

The chain is built once, at construction: the retry runner around one attempt function
generated from the components present (rate limit, bulkhead, breaker, timeout and chaos fused
in one frame), so a call does no branching on which components exist and pays no frame per
stage. ``policy.attempt_source(is_async)`` shows the generated code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ._bulkhead import Bulkhead
from ._callables import DEFERRED_TYPES, is_sync_function, refuse_call, refuse_deferred, wrap_callable
from ._chaos import Chaos
from ._ratelimit import RateLimiter
from ._retry import Retry, _deadline
from ._timeout import Timeout

__all__ = ["Policy"]

T = TypeVar("T")

Stage = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


def _direct(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)


async def _adirect(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return await fn(*args, **kwargs)


class Policy:
    """Timeout, retry, circuit breaker, bulkhead, rate limiter and chaos as one callable.

    Each argument takes the component or a shorthand:

    * ``timeout``: a :class:`Timeout`, seconds, or an operation name of the timeout table;
    * ``retry``: a :class:`Retry`, an int (``max_attempts``) or a dict of :class:`Retry` options;
    * ``breaker``: a ``CircuitBreaker`` (or anything with its permission protocol:
      ``acquire/release/on_success/on_error/on_result`` and the ``a``-prefixed twins), or a
      dict of ``CircuitBreaker`` options;
    * ``bulkhead``: a :class:`Bulkhead` or an int (``max_concurrent``);
    * ``rate_limit``: a :class:`RateLimiter`/``RedisRateLimiter`` or a number (permits per second);
      ``rate_limit_key`` (a callable with no arguments, e.g. reading the tenant from
      :mod:`surefoot.context`) gives each key its own quota (default: one shared bucket);
    * ``chaos``: a :class:`Chaos` (left out of the chain entirely when not enabled).

    Shorthands are named after ``name``. Use :meth:`call`, :meth:`acall`, or the policy as a
    decorator (functions and coroutine functions).

    Args:
        name: the dependency, e.g. ``"twilio"``.

    Raises:
        ConfigurationError: a component has an unusable type.
    """

    def __init__(
        self,
        *,
        name: str = "policy",
        timeout: Timeout | float | str | None = None,
        retry: Retry | int | dict[str, Any] | None = None,
        breaker: Any = None,
        bulkhead: Bulkhead | int | None = None,
        rate_limit: Any = None,
        rate_limit_key: Callable[[], Any] | None = None,
        chaos: Chaos | None = None,
    ) -> None:
        self.name = name
        self.timeout = _timeout(name, timeout)
        self.retry = _retry(name, retry)
        self.breaker = _breaker(name, breaker)
        self.bulkhead = _bulkhead(name, bulkhead)
        self.rate_limit = _rate_limit(name, rate_limit)
        if rate_limit_key is not None and not callable(rate_limit_key):
            raise ConfigurationError(f"rate_limit_key must be a callable returning a key; got {rate_limit_key!r}")
        self.rate_limit_key = rate_limit_key
        if chaos is not None and not isinstance(chaos, Chaos):
            raise ConfigurationError(f"chaos must be a Chaos; got {chaos!r}")
        self.chaos = chaos
        self._sync: Stage = self._build_sync()
        self._async: Stage = self._build_async()

    def __repr__(self) -> str:
        parts = [
            f"{label}={component!r}"
            for label, component in (
                ("retry", self.retry), ("rate_limit", self.rate_limit), ("bulkhead", self.bulkhead),
                ("breaker", self.breaker), ("timeout", self.timeout), ("chaos", self.chaos),
            )
            if component is not None
        ]
        return f"Policy({self.name!r}, {', '.join(parts)})"

    def attempt_source(self, is_async: bool = True) -> str:
        """The Python source of the generated per-attempt function (for debugging)."""
        attempt = _generate_attempt(self, is_async, None)
        return "" if attempt is None else attempt.__source__

    @property
    def stages(self) -> list[str]:
        """The components present, outermost first (the order calls go through)."""
        order = [
            ("retry", self.retry), ("rate_limit", self.rate_limit), ("bulkhead", self.bulkhead),
            ("breaker", self.breaker), ("timeout", self.timeout),
            ("chaos", self.chaos if self.chaos is not None and self.chaos.enabled else None),
        ]
        return [label for label, component in order if component is not None]

    # ----------------------------------------------------------------- entry points

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` through the pipeline.

        Raises:
            UnsupportedCallableError: ``fn`` is async or a generator function (nothing ran;
                use ``await policy.acall(fn)`` for async code), or it returned a coroutine.
        """
        if not is_sync_function(fn):
            refuse_call(fn, "Policy", "policy", generators=False)
        result = self._sync(fn, args, kwargs)
        if type(result) in DEFERRED_TYPES:
            refuse_deferred(result, "Policy", "policy", generators=False)
        return result

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)`` through the pipeline."""
        return await self._async(fn, args, kwargs)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a function or a coroutine function.

        Raises:
            UnsupportedCallableError: ``fn`` is a generator or async generator function (wrap the
                call that produces the data instead; a stream cannot be retried or timed as one
                call). It is a ``ConfigurationError`` and a ``TypeError``.
        """
        return wrap_callable(
            fn, owner="Policy", var="policy", attribute="policy", component=self,
            function=lambda f: self._decorate(f, False), coroutine=lambda f: self._decorate(f, True),
            refusal="protect the call that fetches the data (or use Retry, CircuitBreaker, Bulkhead or "
            "RateLimiter, which support generators)",
        )

    def _decorate(self, fn: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        # The chain is rebuilt with ``fn`` bound: a decorated call costs one frame less.
        wrapper = self._build(is_async, bound=fn)
        if wrapper is not fn:
            return wrapper  # type: ignore[no-any-return]
        # No component at all: still return a distinct wrapper carrying .policy.
        if is_async:
            async def passthrough_async(*args: Any, **kwargs: Any) -> Any:
                return await fn(*args, **kwargs)

            return passthrough_async

        def passthrough(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return passthrough

    # ----------------------------------------------------------------- chain building

    def _build_sync(self) -> Stage:
        return self._build(False)

    def _build_async(self) -> Stage:
        return self._build(True)

    def _build(self, is_async: bool, bound: Callable[..., Any] | None = None) -> Any:
        """Build the entry point: the retry runner around one generated attempt function.

        The attempt function fuses rate limit, bulkhead, breaker, timeout and chaos into one
        frame, generated from the components present (as dataclasses generates ``__init__``),
        so a call pays neither a frame per stage nor a branch per absent component.
        """
        attempt = _generate_attempt(self, is_async, bound)
        retry = self.retry
        if retry is None:
            if attempt is not None:
                return attempt
            if bound is not None:
                return bound
            return _adirect if is_async else _direct
        if attempt is None:
            if bound is not None:
                return retry._runner(bound, is_async)
            if is_async:
                acall = retry.acall

                async def retry_only_async(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                    return await acall(fn, *args, **kwargs)

                return retry_only_async
            call = retry.call

            def retry_only(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return call(fn, *args, **kwargs)

            return retry_only
        return retry._runner(attempt, is_async)

    def _deadline_aware(self) -> bool:
        return self.retry is not None and self.retry.deadline is not None


# --------------------------------------------------------------------------- generation


def _remaining(seconds: float) -> float:
    current = _deadline.get()
    if current is None:
        return seconds
    deadline, clock = current
    left = deadline - clock.monotonic()
    # An attempt only starts before the deadline, but give it a sliver rather than zero.
    return seconds if seconds < left else max(left, 0.001)


def _generate_attempt(policy: Policy, is_async: bool, bound: Callable[..., Any] | None) -> Any:
    """Generate one attempt: rate limit -> bulkhead -> breaker -> timeout -> chaos -> call.

    Returns ``None`` when no per-attempt component is present.
    """
    chaos = policy.chaos if policy.chaos is not None and policy.chaos.enabled else None
    limiter, bulkhead, breaker, timeout = policy.rate_limit, policy.bulkhead, policy.breaker, policy.timeout
    if limiter is None and bulkhead is None and breaker is None and timeout is None and chaos is None:
        return None

    aw = "await " if is_async else ""
    ns: dict[str, Any] = {"CancelledError": asyncio.CancelledError, "_remaining": _remaining}
    if bound is not None:
        ns["FN"] = bound
        signature = "*args, **kwargs"
        fn_ref = "FN"
    else:
        signature = "fn, args, kwargs"
        fn_ref = "fn"

    seconds = "_remaining(SECONDS)" if policy._deadline_aware() else "SECONDS"
    if timeout is not None:
        ns["SECONDS"] = timeout.seconds

    # the innermost call
    if chaos is not None:
        ns["chaos_call"] = chaos.acall if is_async else chaos.call
        target, target_args = "chaos_call", f"{fn_ref}, *args"
    else:
        target, target_args = fn_ref, "*args"
    lines: list[tuple[int, str]] = []

    def core(ind: int) -> list[tuple[int, str]]:
        if timeout is not None and not is_async:
            ns["tm_run"] = timeout._run_thread if timeout.sync_mode == "thread" else timeout._run_check
            packed = f"({target_args},)" if target_args != "*args" else "args"
            return [(ind, f"result = tm_run({seconds}, {target}, {packed}, kwargs)")]
        return [(ind, f"result = {aw}{target}({target_args}, **kwargs)")]

    def with_timeout(ind: int) -> list[tuple[int, str]]:
        if timeout is None or not is_async:
            return core(ind)
        ns["tm_enter"], ns["tm_cancelled"], ns["tm_exit"] = timeout._enter, timeout._cancelled, timeout._exit
        return [
            (ind, f"entry = tm_enter({seconds})"),
            (ind, "try:"), *core(ind + 1),
            (ind, "except CancelledError as exc:"), (ind + 1, "tm_cancelled(entry, exc)"), (ind + 1, "raise"),
            (ind, "finally:"), (ind + 1, "tm_exit(entry)"),
        ]

    def with_breaker(ind: int) -> list[tuple[int, str]]:
        if breaker is None:
            return with_timeout(ind)
        ns["mono"] = breaker.clock.monotonic
        # A breaker whose decisions do no I/O (``local_decisions``) is driven through its sync
        # protocol even in async code: no coroutine per decision.
        if not is_async or getattr(breaker, "local_decisions", False):
            ns["br_acquire"], ns["br_on_error"], ns["br_on_result"] = (
                breaker.acquire, breaker.on_error, breaker.on_result,
            )
            acquire, on_error, on_result = "br_acquire()", "br_on_error", "br_on_result"
        else:
            ns["br_acquire"], ns["br_on_error"], ns["br_on_result"] = (
                breaker.aacquire, breaker.aon_error, breaker.aon_result,
            )
            acquire, on_error, on_result = "await br_acquire()", "await br_on_error", "await br_on_result"
        if getattr(breaker, "times_calls", True):
            start, duration = [(ind, "t0 = mono()")], "mono() - t0"
        else:
            # The breaker declares that call durations play no part in its decisions (no slow
            # calls, no latency rule): skip the two clock reads, as its own fast path does.
            start, duration = [], "0.0"
        return [
            (ind, acquire), *start,
            (ind, "try:"), *with_timeout(ind + 1),
            (ind, "except BaseException as exc:"), (ind + 1, f"{on_error}({duration}, exc)"), (ind + 1, "raise"),
            (ind, f"{on_result}({duration}, result)"),
        ]

    def with_bulkhead(ind: int) -> list[tuple[int, str]]:
        if bulkhead is None:
            return with_breaker(ind)
        ns["bh_release"] = bulkhead.release
        if is_async:
            ns["bh_try"], ns["bh_aacquire"] = bulkhead.try_acquire, bulkhead.aacquire
            acquire = [(ind, "if not bh_try():"), (ind + 1, "await bh_aacquire()")]
        else:
            ns["bh_acquire"] = bulkhead.acquire
            acquire = [(ind, "bh_acquire()")]
        return [*acquire, (ind, "try:"), *with_breaker(ind + 1), (ind, "finally:"), (ind + 1, "bh_release()")]

    def with_rate_limit(ind: int) -> list[tuple[int, str]]:
        if limiter is None:
            return with_bulkhead(ind)
        key = ""
        if policy.rate_limit_key is not None:
            ns["rl_key"] = policy.rate_limit_key
            key = "rl_key()"
        if not is_async:
            ns["rl_acquire"] = limiter.acquire
            take = [(ind, f"rl_acquire({key})")]
        elif isinstance(limiter, RateLimiter):
            # local limiter: decide synchronously, await only an actual reservation
            ns["rl_reserve"], ns["rl_wait"] = limiter.reserve, limiter.await_reserved
            take = [(ind, f"wait = rl_reserve({key})"), (ind, "if wait > 0.0:"), (ind + 1, "await rl_wait(wait)")]
        else:
            ns["rl_acquire"] = limiter.aacquire
            take = [(ind, f"await rl_acquire({key})")]
        return [*take, *with_bulkhead(ind)]

    lines = with_rate_limit(1)
    header = f"{'async ' if is_async else ''}def attempt({signature}):"
    source = "\n".join([header, *("    " * ind + text for ind, text in lines), "    return result", ""])
    exec(compile(source, f"<surefoot.resilience.Policy {policy.name!r} attempt>", "exec"), ns)  # noqa: S102
    attempt = ns["attempt"]
    attempt.__source__ = source  # for debugging: what this policy runs per attempt
    return attempt


# --------------------------------------------------------------------------- shorthands


def _timeout(name: str, value: Any) -> Timeout | None:
    if value is None or isinstance(value, Timeout):
        return value
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return Timeout(value, name=name)
    raise ConfigurationError(f"timeout must be a Timeout, seconds or an operation name; got {value!r}")


def _retry(name: str, value: Any) -> Retry | None:
    if value is None or isinstance(value, Retry):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Retry(name=name, max_attempts=value)
    if isinstance(value, dict):
        return Retry(**{"name": name, **value})
    raise ConfigurationError(f"retry must be a Retry, an int (max_attempts) or a dict of options; got {value!r}")


_PROTOCOL = ("acquire", "release", "on_success", "on_error", "on_result",
             "aacquire", "arelease", "aon_success", "aon_error", "aon_result")


def _breaker(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        from . import _breaker as breaker_module  # type: ignore[attr-defined]

        return breaker_module.CircuitBreaker(**{"name": name, **value})
    missing = [m for m in _PROTOCOL if not callable(getattr(value, m, None))]
    if missing:
        raise ConfigurationError(
            f"breaker must follow the circuit-breaker permission protocol; {value!r} lacks {missing}"
        )
    if not callable(getattr(getattr(value, "clock", None), "monotonic", None)):
        raise ConfigurationError(f"breaker {value!r} needs a clock with monotonic() (for call durations)")
    return value


def _bulkhead(name: str, value: Any) -> Bulkhead | None:
    if value is None or isinstance(value, Bulkhead):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Bulkhead(value, name=name)
    raise ConfigurationError(f"bulkhead must be a Bulkhead or an int (max_concurrent); got {value!r}")


def _rate_limit(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return RateLimiter(value, name=name)
    if callable(getattr(value, "acquire", None)) and callable(getattr(value, "aacquire", None)):
        return value
    raise ConfigurationError(
        f"rate_limit must be a RateLimiter/RedisRateLimiter or permits per second; got {value!r}"
    )
