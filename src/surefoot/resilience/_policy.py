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

The chain is built once, at construction, from the components present: the retry (its
decorator form) around one attempt that drives every component through its public methods in
one frame; which components exist is a handful of flags fixed at construction, and no code is
generated. ``policy.attempt_source(is_async)`` outlines what an attempt runs.
"""

from __future__ import annotations

from asyncio import CancelledError
from collections.abc import Callable
from typing import Any, TypeVar

from .._core.callables import (
    DEFERRED_TYPES,
    is_sync_function,
    refuse_call,
    refuse_deferred,
    wrap_callable,
)
from ..errors import ConfigurationError
from ._bulkhead import Bulkhead
from ._chaos import Chaos
from ._ratelimit import RateLimiter
from ._retry import Retry, time_left
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
        """An outline, as Python-like text, of what one attempt runs (for debugging).

        Lists the steps of the stages present, outermost first (``rl_``, ``bh_``, ``br_``,
        ``tm_`` for rate limit, bulkhead, breaker and timeout); empty when no per-attempt
        component is present.
        """
        return "\n".join(_outline(self, is_async))

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
        result: T = self._sync(fn, args, kwargs)
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
            return wrapper
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

    def _build(self, is_async: bool, bound: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """Build the entry point: the retry (its decorator form) around one attempt.

        Which components exist is decided here, once; the attempt then runs them in one frame.
        """
        attempt = _attempt(self, is_async, bound)
        retry = self.retry
        if retry is None:
            if attempt is not None:
                return attempt
            if bound is not None:
                return bound
            return _adirect if is_async else _direct
        if attempt is None:
            attempt = bound if bound is not None else _adirect if is_async else _direct
        return retry(attempt)

    def _deadline_aware(self) -> bool:
        return self.retry is not None and self.retry.deadline is not None

    def _attempt_breaker(self) -> Any:
        """The breaker the attempt drives (``self.breaker``; the HTTP policy adapts it)."""
        return self.breaker


# --------------------------------------------------------------------------- the attempt


def _attempt(policy: Policy, is_async: bool, bound: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """One attempt: rate limit -> bulkhead -> breaker -> timeout -> chaos -> call, in one frame.

    Each component is driven through its public methods, bound here once; which ones are
    present is a handful of flags fixed here, so a call pays a few boolean tests for absent
    components and no frame per stage. With ``bound`` the attempt takes the call's own
    arguments (a decorated function); otherwise ``(fn, args, kwargs)``. ``None`` when no
    per-attempt component is present.
    """
    chaos = policy.chaos if policy.chaos is not None and policy.chaos.enabled else None
    limiter, bulkhead, timeout = policy.rate_limit, policy.bulkhead, policy.timeout
    breaker = policy._attempt_breaker()
    if limiter is None and bulkhead is None and breaker is None and timeout is None and chaos is None:
        return None
    is_bound = bound is not None
    target: Callable[..., Any] = bound if bound is not None else _direct
    key = policy.rate_limit_key
    aware = policy._deadline_aware()
    has_rl, has_bh, has_br, has_tm, has_ch = (
        limiter is not None, bulkhead is not None, breaker is not None, timeout is not None, chaos is not None,
    )
    rl_local = isinstance(limiter, RateLimiter)
    seconds = timeout.seconds if timeout is not None else 0.0
    timed = has_br and bool(getattr(breaker, "times_calls", True))
    mono = breaker.clock.monotonic if breaker is not None else None
    _nothing = _no_component

    if is_async:
        br_local = has_br and bool(getattr(breaker, "local_decisions", False))
        rl_reserve = limiter.reserve if rl_local else _nothing
        rl_wait = limiter.await_reserved if rl_local else _nothing
        rl_aacquire = limiter.aacquire if has_rl else _nothing
        bh_try = bulkhead.try_acquire if has_bh else _nothing  # type: ignore[union-attr]
        bh_aacquire = bulkhead.aacquire if has_bh else _nothing  # type: ignore[union-attr]
        bh_release = bulkhead.release if has_bh else _nothing  # type: ignore[union-attr]
        br_acquire = (breaker.acquire if br_local else breaker.aacquire) if has_br else _nothing
        br_on_error = (breaker.on_error if br_local else breaker.aon_error) if has_br else _nothing
        br_on_result = (breaker.on_result if br_local else breaker.aon_result) if has_br else _nothing
        tm_begin = timeout.begin if has_tm else _nothing  # type: ignore[union-attr]
        tm_cancelled = timeout.cancelled if has_tm else _nothing  # type: ignore[union-attr]
        tm_end = timeout.end if has_tm else _nothing  # type: ignore[union-attr]
        ch_acall = chaos.acall if has_ch else _nothing  # type: ignore[union-attr]

        async def attempt(*call_args: Any, **call_kwargs: Any) -> Any:
            if is_bound:
                fn, args, kwargs = target, call_args, call_kwargs
            else:
                fn, args, kwargs = call_args
            if has_rl:
                if rl_local:
                    wait = rl_reserve() if key is None else rl_reserve(key())
                    if wait > 0.0:
                        await rl_wait(wait)
                elif key is None:
                    await rl_aacquire()
                else:
                    await rl_aacquire(key())
            if has_bh and not bh_try():
                await bh_aacquire()
            try:
                if has_br:
                    if br_local:
                        br_acquire()
                    else:
                        await br_acquire()
                    t0 = mono() if timed else 0.0  # type: ignore[misc]
                try:
                    if has_tm:
                        entry = tm_begin(time_left(seconds) if aware else seconds)
                        try:
                            result = await (ch_acall(fn, *args, **kwargs) if has_ch else fn(*args, **kwargs))
                        except CancelledError as exc:
                            tm_cancelled(entry, exc)
                            raise
                        finally:
                            tm_end(entry)
                    elif has_ch:
                        result = await ch_acall(fn, *args, **kwargs)
                    else:
                        result = await fn(*args, **kwargs)
                except BaseException as exc:
                    if has_br:
                        duration = mono() - t0 if timed else 0.0  # type: ignore[misc]
                        if br_local:
                            br_on_error(duration, exc)
                        else:
                            await br_on_error(duration, exc)
                    raise
                if has_br:
                    duration = mono() - t0 if timed else 0.0  # type: ignore[misc]
                    if br_local:
                        br_on_result(duration, result)
                    else:
                        await br_on_result(duration, result)
                return result
            finally:
                if has_bh:
                    bh_release()

        return attempt

    rl_acquire = limiter.acquire if has_rl else _nothing
    bh_acquire = bulkhead.acquire if has_bh else _nothing  # type: ignore[union-attr]
    bh_release_sync = bulkhead.release if has_bh else _nothing  # type: ignore[union-attr]
    br_acquire_sync = breaker.acquire if has_br else _nothing
    br_on_error_sync = breaker.on_error if has_br else _nothing
    br_on_result_sync = breaker.on_result if has_br else _nothing
    tm_call_within = timeout.call_within if has_tm else _nothing  # type: ignore[union-attr]
    ch_call = chaos.call if has_ch else _nothing  # type: ignore[union-attr]

    def attempt_sync(*call_args: Any, **call_kwargs: Any) -> Any:
        if is_bound:
            fn, args, kwargs = target, call_args, call_kwargs
        else:
            fn, args, kwargs = call_args
        if has_rl:
            if key is None:
                rl_acquire()
            else:
                rl_acquire(key())
        if has_bh:
            bh_acquire()
        try:
            if has_br:
                br_acquire_sync()
                t0 = mono() if timed else 0.0  # type: ignore[misc]
            try:
                if has_tm:
                    limit = time_left(seconds) if aware else seconds
                    if has_ch:
                        result = tm_call_within(limit, ch_call, fn, *args, **kwargs)
                    else:
                        result = tm_call_within(limit, fn, *args, **kwargs)
                elif has_ch:
                    result = ch_call(fn, *args, **kwargs)
                else:
                    result = fn(*args, **kwargs)
                    if type(result) in DEFERRED_TYPES:
                        # Refused here, before the breaker could take it for an answer: a misused
                        # call form gives the permission back and is never retried.
                        refuse_deferred(result, "Policy", "policy", generators=False)
            except BaseException as exc:
                if has_br:
                    br_on_error_sync(mono() - t0 if timed else 0.0, exc)  # type: ignore[misc]
                raise
            if has_br:
                br_on_result_sync(mono() - t0 if timed else 0.0, result)  # type: ignore[misc]
            return result
        finally:
            if has_bh:
                bh_release_sync()

    return attempt_sync


def _no_component(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError("a stage without its component was run")


def _outline(policy: Policy, is_async: bool) -> list[str]:
    """What one attempt runs, outermost first, as Python-like text (``Policy.attempt_source``)."""
    chaos = policy.chaos if policy.chaos is not None and policy.chaos.enabled else None
    limiter, bulkhead, breaker, timeout = policy.rate_limit, policy.bulkhead, policy.breaker, policy.timeout
    if limiter is None and bulkhead is None and breaker is None and timeout is None and chaos is None:
        return []
    aw = "await " if is_async else ""
    call = f"chaos.{'acall' if is_async else 'call'}(fn, *args, **kwargs)" if chaos is not None else "fn(*args, **kwargs)"
    if timeout is not None:
        seconds = "time_left(SECONDS)" if policy._deadline_aware() else "SECONDS"
        if is_async:
            body = [f"entry = tm_begin({seconds})", "try:", f"    result = await {call}",
                    "except CancelledError as exc:", "    tm_cancelled(entry, exc)", "    raise",
                    "finally:", "    tm_end(entry)"]
        else:
            target = "chaos.call, fn" if chaos is not None else "fn"
            body = [f"result = tm_call_within({seconds}, {target}, *args, **kwargs)"]
    else:
        body = [f"result = {aw}{call}"]
    if breaker is not None:
        local = not is_async or bool(getattr(breaker, "local_decisions", False))
        timed = bool(getattr(breaker, "times_calls", True))
        baw = "" if local else "await "
        duration = "mono() - t0" if timed else "0.0"
        body = [
            f"{baw}br_acquire()", *(["t0 = mono()"] if timed else []), "try:", *("    " + line for line in body),
            "except BaseException as exc:", f"    {baw}br_on_error({duration}, exc)", "    raise",
            f"{baw}br_on_result({duration}, result)",
        ]
    if bulkhead is not None:
        take = ["if not bh_try():", "    await bh_aacquire()"] if is_async else ["bh_acquire()"]
        body = [*take, "try:", *("    " + line for line in body), "finally:", "    bh_release()"]
    if limiter is not None:
        k = "rl_key()" if policy.rate_limit_key is not None else ""
        if not is_async:
            body = [f"rl_acquire({k})", *body]
        elif isinstance(limiter, RateLimiter):
            body = [f"wait = rl_reserve({k})", "if wait > 0.0:", "    await rl_wait(wait)", *body]
        else:
            body = [f"await rl_acquire({k})", *body]
    return [f"{'async ' if is_async else ''}def attempt(fn, args, kwargs):", *("    " + line for line in body),
            "    return result", ""]


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
        try:
            return Retry(**{"name": name, **value})
        except TypeError as exc:  # an unknown option: say which argument it came from
            raise ConfigurationError(f"Policy retry options {value!r}: {exc}") from None
    raise ConfigurationError(f"retry must be a Retry, an int (max_attempts) or a dict of options; got {value!r}")


_PROTOCOL = ("acquire", "release", "on_success", "on_error", "on_result",
             "aacquire", "arelease", "aon_success", "aon_error", "aon_result")


def _breaker(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        from . import _breaker as breaker_module

        try:
            return breaker_module.CircuitBreaker(**{"name": name, **value})
        except TypeError as exc:  # an unknown option: say which argument it came from
            raise ConfigurationError(f"Policy breaker options {value!r}: {exc}") from None
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
