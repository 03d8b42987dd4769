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

The chain is built once, at construction, as nested closures over the components that are
present: a call does no branching on which components exist.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ._bulkhead import Bulkhead
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
        chaos: Chaos | None = None,
    ) -> None:
        self.name = name
        self.timeout = _timeout(name, timeout)
        self.retry = _retry(name, retry)
        self.breaker = _breaker(name, breaker)
        self.bulkhead = _bulkhead(name, bulkhead)
        self.rate_limit = _rate_limit(name, rate_limit)
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
        """Call ``fn(*args, **kwargs)`` through the pipeline."""
        return self._sync(fn, args, kwargs)

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)`` through the pipeline."""
        return await self._async(fn, args, kwargs)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a function or a coroutine function.

        Raises:
            ConfigurationError: ``fn`` is a generator or async generator function (wrap the
                call that produces the data instead; a stream cannot be retried or timed as one call).
        """
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise ConfigurationError(
                f"Policy cannot wrap the generator function {fn.__qualname__}: protect the call that "
                f"fetches the data (or use Retry/CircuitBreaker, which support generators)"
            )
        if inspect.iscoroutinefunction(fn):
            run_async = self._async

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await run_async(fn, args, kwargs)

            async_wrapper.policy = self  # type: ignore[attr-defined]
            return async_wrapper
        run = self._sync

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return run(fn, args, kwargs)

        wrapper.policy = self  # type: ignore[attr-defined]
        return wrapper

    # ----------------------------------------------------------------- chain building

    def _build_sync(self) -> Stage:
        stage: Stage | None = None  # None: call fn directly

        chaos = self.chaos
        if chaos is not None and chaos.enabled:
            chaos_call = chaos.call

            def chaos_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return chaos_call(fn, *args, **kwargs)

            stage = chaos_stage

        timeout = self.timeout
        if timeout is not None:
            stage = _sync_timeout_stage(timeout, stage, deadline_aware=self._deadline_aware())

        breaker = self.breaker
        if breaker is not None:
            stage = _sync_breaker_stage(breaker, stage)

        bulkhead = self.bulkhead
        if bulkhead is not None:
            inner = stage or _direct
            acquire, release = bulkhead.acquire, bulkhead.release

            def bulkhead_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                acquire()
                try:
                    return inner(fn, args, kwargs)
                finally:
                    release()

            stage = bulkhead_stage

        limiter = self.rate_limit
        if limiter is not None:
            inner_rl = stage or _direct
            take = limiter.acquire

            def rate_limit_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                take()
                return inner_rl(fn, args, kwargs)

            stage = rate_limit_stage

        retry = self.retry
        if retry is not None:
            retry_call = retry.call
            if stage is None:

                def retry_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                    return retry_call(fn, *args, **kwargs)

            else:
                inner_r = stage

                def retry_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                    return retry_call(inner_r, fn, args, kwargs)

            stage = retry_stage

        return stage or _direct

    def _build_async(self) -> Stage:
        stage: Stage | None = None

        chaos = self.chaos
        if chaos is not None and chaos.enabled:
            chaos_acall = chaos.acall

            async def chaos_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return await chaos_acall(fn, *args, **kwargs)

            stage = chaos_stage

        timeout = self.timeout
        if timeout is not None:
            stage = _async_timeout_stage(timeout, stage, deadline_aware=self._deadline_aware())

        breaker = self.breaker
        if breaker is not None:
            stage = _async_breaker_stage(breaker, stage)

        bulkhead = self.bulkhead
        if bulkhead is not None:
            inner = stage or _adirect
            aacquire, release = bulkhead.aacquire, bulkhead.release

            async def bulkhead_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                await aacquire()
                try:
                    return await inner(fn, args, kwargs)
                finally:
                    release()

            stage = bulkhead_stage

        limiter = self.rate_limit
        if limiter is not None:
            inner_rl = stage or _adirect
            atake = limiter.aacquire

            async def rate_limit_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                await atake()
                return await inner_rl(fn, args, kwargs)

            stage = rate_limit_stage

        retry = self.retry
        if retry is not None:
            retry_acall = retry.acall
            if stage is None:

                async def retry_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                    return await retry_acall(fn, *args, **kwargs)

            else:
                inner_r = stage

                async def retry_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                    return await retry_acall(inner_r, fn, args, kwargs)

            stage = retry_stage

        return stage or _adirect

    def _deadline_aware(self) -> bool:
        return self.retry is not None and self.retry.deadline is not None


# --------------------------------------------------------------------------- stages


def _remaining(seconds: float) -> float:
    current = _deadline.get()
    if current is None:
        return seconds
    deadline, clock = current
    left = deadline - clock.monotonic()
    # An attempt only starts before the deadline, but give it a sliver rather than zero.
    return seconds if seconds < left else max(left, 0.001)


def _sync_timeout_stage(timeout: Timeout, inner: Stage | None, *, deadline_aware: bool) -> Stage:
    run = timeout._run_thread if timeout.sync_mode == "thread" else timeout._run_check
    seconds = timeout.seconds
    if inner is None:
        if deadline_aware:
            def stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return run(_remaining(seconds), fn, args, kwargs)
        else:
            def stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return run(seconds, fn, args, kwargs)
        return stage
    if deadline_aware:
        def stage_i(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return run(_remaining(seconds), inner, (fn, args, kwargs), {})
    else:
        def stage_i(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return run(seconds, inner, (fn, args, kwargs), {})
    return stage_i


def _async_timeout_stage(timeout: Timeout, inner: Stage | None, *, deadline_aware: bool) -> Stage:
    run = timeout._arun
    seconds = timeout.seconds
    if inner is None:
        if deadline_aware:
            async def stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return await run(_remaining(seconds), fn, args, kwargs)
        else:
            async def stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return await run(seconds, fn, args, kwargs)
        return stage
    if deadline_aware:
        async def stage_i(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return await run(_remaining(seconds), inner, (fn, args, kwargs), {})
    else:
        async def stage_i(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return await run(seconds, inner, (fn, args, kwargs), {})
    return stage_i


def _sync_breaker_stage(breaker: Any, inner: Stage | None) -> Stage:
    call = getattr(breaker, "call", None)
    if call is not None:
        # The breaker's own call form carries its fast paths; it runs the protocol itself.
        if inner is None:
            def stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return call(fn, *args, **kwargs)
            return stage
        inner_b = inner

        def stage_i(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return call(inner_b, fn, args, kwargs)
        return stage_i

    run = inner or _direct
    acquire, on_error, on_result = breaker.acquire, breaker.on_error, breaker.on_result
    monotonic = breaker.clock.monotonic

    def protocol_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        acquire()
        start = monotonic()
        try:
            result = run(fn, args, kwargs)
        except BaseException as exc:
            on_error(monotonic() - start, exc)
            raise
        on_result(monotonic() - start, result)
        return result

    return protocol_stage


def _async_breaker_stage(breaker: Any, inner: Stage | None) -> Stage:
    acall = getattr(breaker, "acall", None)
    if acall is not None:
        if inner is None:
            async def stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                return await acall(fn, *args, **kwargs)
            return stage
        inner_b = inner

        async def stage_i(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return await acall(inner_b, fn, args, kwargs)
        return stage_i

    run = inner or _adirect
    aacquire, aon_error, aon_result = breaker.aacquire, breaker.aon_error, breaker.aon_result
    monotonic = breaker.clock.monotonic

    async def protocol_stage(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        await aacquire()
        start = monotonic()
        try:
            result = await run(fn, args, kwargs)
        except BaseException as exc:
            await aon_error(monotonic() - start, exc)
            raise
        await aon_result(monotonic() - start, result)
        return result

    return protocol_stage


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
    if (getattr(value, "call", None) is None or getattr(value, "acall", None) is None) and getattr(
        value, "clock", None
    ) is None:
        raise ConfigurationError(f"breaker {value!r} needs a clock (for call durations)")
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
