"""Retry with backoff, jitter, budgets, deadlines and ``Retry-After``.

Vocabulary, used everywhere in surefoot: an **attempt** is one call of the protected
function; a **retry** is every attempt after the first. ``max_attempts=3`` means one call and
at most two retries.

What happens on a failure (an exception matching ``on``/``retry_if``, or a result matching
``retry_on_result``):

1. the retry budget (shared per name) is charged one token;
2. surefoot gives up when the attempts are used up, the budget is exhausted, the server asked
   to wait (``Retry-After``) longer than ``max_retry_after``, or the next wait would cross the
   overall ``deadline``;
3. otherwise it waits ``max(backoff delay, Retry-After)`` and tries again.

When it gives up on an **exception**, the caller gets that last exception itself — re-raised
with its traceback, plus a note (PEP 678, shown in tracebacks) saying how many attempts were
made and why surefoot stopped — so ``except httpx.ConnectError`` keeps working. When it gives
up on a **result**, :class:`RetryError` is raised carrying ``last_result`` (or, with
``return_last_result=True``, the last result is returned, as the HTTP client does with a
final 503 response). A call never silently returns ``None``.

**Nested retries do not multiply.** While a retry is running, a context variable marks the
context; a retry entered inside it (a retried function calling another retried function)
makes a single attempt and lets the outer retry decide. Three nested layers of 3 attempts
therefore make 3 calls, not 27. Tasks started inside a retried call inherit the marker (asyncio
copies context variables into new tasks), so a long-lived task should be started outside the
retried call (or in a fresh ``contextvars.Context()``) if its own retries must retry.

The iterator form lives in :mod:`._retry_iter`, the seed-style helpers in :mod:`._retry_seed`.
This module is over 600 lines on purpose: :class:`Retry` builds its sync and async entry
points once per instance (simple and general variants, so the success path has no optional
branches), and those fast paths read best next to the slow paths they hand over to.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import math
import random
import time as _time
from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog

from .._core.backoff import Backoff, Constant, DecorrelatedJitter, Exponential, FullJitter
from .._core.callables import (
    DEFERRED_TYPES,
    UnsupportedCallableError,
    guard_sync,
    refuse_deferred,
    wrap_callable,
)
from .._core.clock import SYSTEM_CLOCK
from .._core.retry_after import parse_retry_after
from ..errors import ConfigurationError, ExternalServiceError
from . import _waits
from ._budget import RetryBudget, get_retry_budget
from ._events import Hooks, checked_hooks

if TYPE_CHECKING:
    from . import _retry_iter

__all__ = [
    "Retry",
    "RetryError",
    "Backoff",
    "FullJitter",
    "DecorrelatedJitter",
    "Exponential",
    "Constant",
    "retry_after_of",
    "time_left",
    "NETWORK_ERRORS",
    "RETRYABLE_STATUS",
]

T = TypeVar("T")

_log = structlog.get_logger("surefoot.resilience")

# True while a retry runs in this context: an inner retry then makes a single attempt.
_in_retry: contextvars.ContextVar[bool] = contextvars.ContextVar("surefoot_in_retry", default=False)
# (deadline, clock) of the innermost retry that has an overall deadline; per-attempt timeouts
# in a Policy shrink to what is left of it.
_deadline: contextvars.ContextVar[tuple[float, Any] | None] = contextvars.ContextVar(
    "surefoot_retry_deadline", default=None
)


def time_left(limit: float) -> float:
    """``limit``, shrunk to what is left of the deadline of the retry running this call.

    Outside a retry with a ``deadline`` it is ``limit`` itself. An attempt only starts before
    the deadline, so the result is never below a millisecond.
    """
    current = _deadline.get()
    if current is None:
        return limit
    deadline, clock = current
    left = deadline - clock.monotonic()
    return limit if limit < left else max(left, 0.001)

RETRYABLE_STATUS: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: timeouts, too-early, rate limited and transient server errors."""

NETWORK_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)
"""Exceptions that mean the network, not the request, failed (``httpx.TransportError`` is
added by the helpers when httpx is in use)."""


# --------------------------------------------------------------------------- backoff


_BACKOFFS: dict[str, Callable[[float, float, float], Backoff]] = {
    "full_jitter": lambda base, mult, cap: FullJitter(base, multiplier=mult, max_delay=cap),
    "decorrelated_jitter": lambda base, mult, cap: DecorrelatedJitter(base, max_delay=cap),
    "exponential": lambda base, mult, cap: Exponential(base, multiplier=mult, max_delay=cap),
    "constant": lambda base, mult, cap: Constant(base),
}


# --------------------------------------------------------------------------- Retry-After


def _parse_retry_after(value: Any, now: float) -> float | None:
    # The one parser (surefoot._core.retry_after); ``max_retry_after`` is the retry's own cap.
    return parse_retry_after(value, now=now, max_delay=math.inf)


def retry_after_of(outcome: Any, now: float | None = None) -> float | None:
    """How long the server asked to wait, in seconds, or ``None``.

    Looks at ``outcome.retry_after`` (surefoot errors, ``CircuitOpenError``), then at a
    ``Retry-After`` header in ``outcome.headers`` or ``outcome.response.headers`` (httpx
    responses and ``HTTPStatusError``). Both delta-seconds and HTTP-date forms are accepted.

    Args:
        outcome: an exception or a result.
        now: wall time for HTTP dates (default: ``time.time()``).
    """
    if now is None:
        now = _time.time()
    value = getattr(outcome, "retry_after", None)
    if value is not None:
        return _parse_retry_after(value, now)  # seconds, or an HTTP date relative to now
    headers = getattr(outcome, "headers", None)
    if headers is None:
        response = getattr(outcome, "response", None)
        headers = getattr(response, "headers", None) if response is not None else None
    if headers is None or not hasattr(headers, "get"):
        return None
    raw = headers.get("Retry-After")
    if raw is None:
        raw = headers.get("retry-after")
    if raw is None:
        return None
    return _parse_retry_after(raw, now)


# --------------------------------------------------------------------------- errors


class RetryError(ExternalServiceError):
    """Every attempt returned a result that asked for a retry (502).

    Raised only for result-based retries (for exceptions the last exception itself is
    re-raised, with a note), and not at all with ``return_last_result=True``.

    Attributes:
        name: the retry's name.
        attempts: how many attempts were made.
        reason: ``attempts_exhausted``, ``budget_exhausted``, ``deadline`` or ``retry_after_too_long``.
        last_result: the last result returned by the protected function.
    """

    code = "RETRY_EXHAUSTED"

    def __init__(self, name: str, attempts: int, reason: str, last_result: Any = None) -> None:
        super().__init__(
            f"{name}: gave up after {attempts} attempt(s) ({reason}); the last result still asked "
            f"for a retry: {last_result!r:.200}",
            service=name,
        )
        self.name = name
        self.attempts = attempts
        self.reason = reason
        self.last_result = last_result


# --------------------------------------------------------------------------- Retry


class _CallState:
    """Per-call state of the slow path (created only after a first failure)."""

    __slots__ = ("attempt", "delays", "start", "deadline", "max_attempts", "reason")

    def __init__(self, retry: Retry, start: float | None) -> None:
        self.attempt = 1
        self.delays = retry.backoff.delays(retry.rng)
        self.start = retry.clock.monotonic() if start is None else start
        self.deadline = None if retry.deadline is None else self.start + retry.deadline
        cap = _waits.testing_attempts()
        self.max_attempts = retry.max_attempts if cap is None else min(cap, retry.max_attempts)
        self.reason = ""


class Retry:
    """Retry a callable on failures, with backoff, a budget and an overall deadline.

    Use it as a decorator (functions, coroutine functions, generators and async generators),
    with :meth:`call` / :meth:`acall`, or in the iterator form :meth:`attempts`::

        retry = Retry(name="twilio", on=httpx.TransportError, max_attempts=4, deadline=10)

        @retry
        async def send(): ...

        for attempt in retry.attempts():
            with attempt:
                do_it()

    Args:
        name: the dependency; names the shared budget, metrics, events and log lines
            (unnamed: ``"retry"`` in metrics, and a budget of its own).
        max_attempts: attempts **including the first** (``1`` = no retry). Default 3.
        on: exception type(s) that are retried (default ``Exception``).
        retry_if: optional predicate on a caught ``on`` exception; ``False`` means re-raise now.
        retry_on_result: optional predicate on a returned value; ``True`` means retry.
        backoff: ``"full_jitter"`` (default), ``"decorrelated_jitter"`` (Polly v2),
            ``"exponential"``, ``"constant"`` or a :class:`Backoff`.
        base_delay: first wait (cap for full jitter, median for decorrelated jitter), seconds.
        max_delay: the largest backoff wait, seconds.
        multiplier: exponential growth per retry.
        deadline: overall seconds for all attempts and waits, measured from the call; surefoot
            never starts a wait that would end past it (``None`` = no deadline).
        respect_retry_after: wait at least what the server asked (``Retry-After``).
        max_retry_after: give up instead when the server asks for more than this (default:
            ``max_delay``).
        budget: ``True`` (default) draws from the budget shared by every retry with the same
            ``name`` (see :class:`RetryBudget` for the numbers), a :class:`RetryBudget` to use
            that one, ``False``/``None`` for none.
        return_last_result: when results keep asking for a retry, return the last one instead
            of raising :class:`RetryError`.
        clock: time source (``monotonic``, ``sleep``, ``asleep``); tests pass a FakeClock.
        rng: random source for jitter.
        hooks: listeners for ``retry`` events (``retry``, ``success``, ``gave_up``,
            ``budget_exhausted``, ``not_retryable``).
        registry: Prometheus registry for ``retry_attempts_total{name,outcome}``.

    Raises:
        ConfigurationError: an argument is out of range.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        max_attempts: int = 3,
        on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        retry_if: Callable[[BaseException], bool] | None = None,
        retry_on_result: Callable[[Any], bool] | None = None,
        backoff: str | Backoff = "full_jitter",
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        multiplier: float = 2.0,
        deadline: float | None = None,
        respect_retry_after: bool = True,
        max_retry_after: float | None = None,
        budget: bool | RetryBudget | None = True,
        return_last_result: bool = False,
        clock: Any = None,
        rng: random.Random | None = None,
        hooks: Hooks | None = None,
        registry: Any = None,
    ) -> None:
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(
                f"max_attempts counts the first call too and must be an int >= 1; got {max_attempts!r}"
            )
        on_tuple = on if isinstance(on, tuple) else (on,)
        if not on_tuple or not all(isinstance(t, type) and issubclass(t, BaseException) for t in on_tuple):
            raise ConfigurationError(f"on must be an exception type or a tuple of them; got {on!r}")
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not deadline > 0
        ):
            raise ConfigurationError(f"deadline must be > 0 seconds or None; got {deadline!r}")
        if max_retry_after is not None and (
            isinstance(max_retry_after, bool) or not isinstance(max_retry_after, (int, float))
            or not max_retry_after >= 0
        ):
            raise ConfigurationError(
                f"max_retry_after must be seconds >= 0 (or None for max_delay); got {max_retry_after!r}"
            )
        for option, value in (("retry_if", retry_if), ("retry_on_result", retry_on_result)):
            if value is not None and not callable(value):
                raise ConfigurationError(f"{option} must be a function (or None); got {value!r}")
        if isinstance(backoff, str):
            factory = _BACKOFFS.get(backoff)
            if factory is None:
                raise ConfigurationError(f"unknown backoff {backoff!r}; use one of {sorted(_BACKOFFS)} or a Backoff")
            backoff = factory(base_delay, multiplier, max_delay)
        elif not isinstance(backoff, Backoff):
            raise ConfigurationError(f"backoff must be a name or a Backoff instance; got {backoff!r}")
        self.name = name if name is not None else "retry"
        self.max_attempts = max_attempts
        self.on = on_tuple
        self.retry_if = retry_if
        self.retry_on_result = retry_on_result
        self.backoff = backoff
        self.deadline = deadline
        self.respect_retry_after = respect_retry_after
        self.max_retry_after = max_delay if max_retry_after is None else max_retry_after
        if budget is True:
            # Named retries share their dependency's budget; an unnamed one gets its own.
            self.budget: RetryBudget | None = get_retry_budget(name) if name is not None else RetryBudget()
        elif isinstance(budget, RetryBudget):
            self.budget = budget
        elif budget in (False, None):
            self.budget = None
        else:
            raise ConfigurationError(f"budget must be True, False, None or a RetryBudget; got {budget!r}")
        self.return_last_result = return_last_result
        self.clock = SYSTEM_CLOCK if clock is None else clock
        self.rng = random.Random() if rng is None else rng
        self.hooks = checked_hooks(hooks, "Retry")
        self._registry = registry
        self._counters: dict[str, Any] | None = None
        self.call = self._build_call()
        self.acall = self._build_acall()

    def __repr__(self) -> str:
        return f"Retry(name={self.name!r}, max_attempts={self.max_attempts}, backoff={self.backoff!r})"

    # ----------------------------------------------------------------- fast paths

    def _build_call(self) -> Callable[..., Any]:
        """Build the sync entry point once, so the success path has no optional branches."""
        in_retry_get, in_retry_set, in_retry_reset = _in_retry.get, _in_retry.set, _in_retry.reset
        on = self.on
        slow = self._slow_call
        check = self.retry_on_result
        # without a budget, deposits go to a throw-away C counter: no branch, no Python frame
        deposit = self.budget.on_success if self.budget is not None else itertools.count().__next__
        deadline = self.deadline
        monotonic = self.clock.monotonic
        clock = self.clock

        if deadline is None and check is None:

            def call(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
                if in_retry_get():
                    return _checked(fn(*args, **kwargs))
                token = in_retry_set(True)
                try:
                    result = fn(*args, **kwargs)
                except on as exc:
                    return cast(T, slow(fn, args, kwargs, exc, None, None))
                finally:
                    in_retry_reset(token)
                if type(result) in _DEFERRED:
                    refuse_deferred(result, "Retry", "retry")
                deposit()
                return result

            return call

        def call(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:  # type: ignore[no-redef]
            """Call ``fn(*args, **kwargs)`` with retries."""
            if in_retry_get():
                return _checked(fn(*args, **kwargs))
            start = monotonic() if deadline is not None else None
            token = in_retry_set(True)
            dtoken = _deadline.set((start + deadline, clock)) if start is not None and deadline is not None else None
            try:
                try:
                    result = fn(*args, **kwargs)
                except on as exc:
                    return cast(T, slow(fn, args, kwargs, exc, None, start))
                if check is not None and check(result):
                    return cast(T, slow(fn, args, kwargs, None, result, start))
            finally:
                if dtoken is not None:
                    _deadline.reset(dtoken)
                in_retry_reset(token)
            if type(result) in _DEFERRED:
                refuse_deferred(result, "Retry", "retry")
            deposit()
            return result

        return call

    def _build_acall(self) -> Callable[..., Any]:
        in_retry_get, in_retry_set, in_retry_reset = _in_retry.get, _in_retry.set, _in_retry.reset
        on = self.on
        slow = self._aslow_call
        check = self.retry_on_result
        # without a budget, deposits go to a throw-away C counter: no branch, no Python frame
        deposit = self.budget.on_success if self.budget is not None else itertools.count().__next__
        deadline = self.deadline
        monotonic = self.clock.monotonic
        clock = self.clock

        if deadline is None and check is None:

            async def acall(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
                if in_retry_get():
                    return await fn(*args, **kwargs)
                token = in_retry_set(True)
                try:
                    result = await fn(*args, **kwargs)
                except on as exc:
                    return await slow(fn, args, kwargs, exc, None, None)
                finally:
                    in_retry_reset(token)
                deposit()
                return result

            return acall

        async def acall(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
            """Await ``fn(*args, **kwargs)`` with retries."""
            if in_retry_get():
                return await fn(*args, **kwargs)
            start = monotonic() if deadline is not None else None
            token = in_retry_set(True)
            dtoken = _deadline.set((start + deadline, clock)) if start is not None and deadline is not None else None
            try:
                try:
                    result = await fn(*args, **kwargs)
                except on as exc:
                    return await slow(fn, args, kwargs, exc, None, start)
                if check is not None and check(result):
                    return await slow(fn, args, kwargs, None, result, start)
            finally:
                if dtoken is not None:
                    _deadline.reset(dtoken)
                in_retry_reset(token)
            deposit()
            return result

        return acall

    def _runner(self, target: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        """A function running ``target(*args, **kwargs)`` with retries (decorators, Policy).

        The same logic as :attr:`call`/:attr:`acall`, with ``target`` bound so a decorated
        call costs one frame less.
        """
        in_retry_get, in_retry_set, in_retry_reset = _in_retry.get, _in_retry.set, _in_retry.reset
        on = self.on
        check = self.retry_on_result
        # without a budget, deposits go to a throw-away C counter: no branch, no Python frame
        deposit = self.budget.on_success if self.budget is not None else itertools.count().__next__
        deadline = self.deadline
        monotonic = self.clock.monotonic
        clock = self.clock
        simple = deadline is None and check is None

        if is_async:
            aslow = self._aslow_call
            if simple:

                async def arun(*args: Any, **kwargs: Any) -> Any:
                    if in_retry_get():
                        return await target(*args, **kwargs)
                    token = in_retry_set(True)
                    try:
                        result = await target(*args, **kwargs)
                    except on as exc:
                        return await aslow(target, args, kwargs, exc, None, None)
                    finally:
                        in_retry_reset(token)
                    deposit()
                    return result

                return arun

            async def arun_general(*args: Any, **kwargs: Any) -> Any:
                if in_retry_get():
                    return await target(*args, **kwargs)
                start = monotonic() if deadline is not None else None
                token = in_retry_set(True)
                dtoken = _deadline.set((start + deadline, clock)) if start is not None and deadline is not None else None
                try:
                    try:
                        result = await target(*args, **kwargs)
                    except on as exc:
                        return await aslow(target, args, kwargs, exc, None, start)
                    if check is not None and check(result):
                        return await aslow(target, args, kwargs, None, result, start)
                finally:
                    if dtoken is not None:
                        _deadline.reset(dtoken)
                    in_retry_reset(token)
                deposit()
                return result

            return arun_general

        slow = self._slow_call
        if simple:

            def run(*args: Any, **kwargs: Any) -> Any:
                if in_retry_get():
                    return _checked(target(*args, **kwargs))
                token = in_retry_set(True)
                try:
                    result = target(*args, **kwargs)
                except on as exc:
                    return slow(target, args, kwargs, exc, None, None)
                finally:
                    in_retry_reset(token)
                if type(result) in _DEFERRED:
                    refuse_deferred(result, "Retry", "retry")
                deposit()
                return result

            return run

        def run_general(*args: Any, **kwargs: Any) -> Any:
            if in_retry_get():
                return _checked(target(*args, **kwargs))
            start = monotonic() if deadline is not None else None
            token = in_retry_set(True)
            dtoken = _deadline.set((start + deadline, clock)) if start is not None and deadline is not None else None
            try:
                try:
                    result = target(*args, **kwargs)
                except on as exc:
                    return slow(target, args, kwargs, exc, None, start)
                if check is not None and check(result):
                    return slow(target, args, kwargs, None, result, start)
            finally:
                if dtoken is not None:
                    _deadline.reset(dtoken)
                in_retry_reset(token)
            if type(result) in _DEFERRED:
                refuse_deferred(result, "Retry", "retry")
            deposit()
            return result

        return run_general

    # ----------------------------------------------------------------- decisions

    def _retryable(self, exc: BaseException) -> bool:
        # Cancellation, interpreter exits and a misused call form (a bug in the caller, the
        # same on every attempt) are never retried, whatever ``on`` says.
        if not isinstance(exc, Exception) or type(exc) is UnsupportedCallableError:
            return False
        if self.retry_if is None:
            return True
        return bool(self.retry_if(exc))

    def _next_delay(self, state: _CallState, outcome: Any) -> float | None:
        """Charge the budget and return the wait before the next attempt, or ``None`` to give up."""
        budget = self.budget
        if budget is not None:
            budget.on_failure()
        if state.attempt >= state.max_attempts:
            state.reason = "attempts_exhausted"
            return None
        if budget is not None and not budget.can_retry():
            state.reason = "budget_exhausted"
            return None
        delay = next(state.delays)
        if self.respect_retry_after:
            asked = retry_after_of(outcome, self.clock.time())
            if asked is not None:
                if asked > self.max_retry_after:
                    state.reason = "retry_after_too_long"
                    return None
                if asked > delay:
                    delay = asked
        if state.deadline is not None and self.clock.monotonic() + delay >= state.deadline:
            state.reason = "deadline"
            return None
        return delay

    def _counter(self, outcome: str) -> Any:
        counters = self._counters
        if counters is None:
            from .._core.catalogue import RETRY_ATTEMPTS

            family = RETRY_ATTEMPTS.get(self._registry)
            counters = self._counters = {
                o: family.labels(self.name, o)
                for o in ("retry", "success_after_retry", "gave_up", "budget_exhausted", "not_retryable")
            }
        return counters[outcome]

    def _on_retry(self, state: _CallState, outcome: Any, delay: float, is_exc: bool) -> None:
        self._counter("retry").inc()
        if self.hooks.active:
            self.hooks.emit(
                "retry", self.name, "retry", attempt=state.attempt, delay=delay,
                error=outcome if is_exc else None, result=None if is_exc else outcome,
            )

    def _on_success_after_retry(self, state: _CallState) -> None:
        if self.budget is not None:
            self.budget.on_success()
        self._counter("success_after_retry").inc()
        if self.hooks.active:
            self.hooks.emit("retry", self.name, "success", attempt=state.attempt)

    def _on_not_retryable(self, state: _CallState | None, exc: BaseException) -> None:
        self._counter("not_retryable").inc()
        if self.hooks.active:
            self.hooks.emit("retry", self.name, "not_retryable", attempt=state.attempt if state else 1, error=exc)

    def _give_up(self, state: _CallState, outcome: Any, is_exc: bool) -> Any:
        """Report the end of a call and raise (or return) what the caller gets."""
        reason = state.reason
        elapsed = self.clock.monotonic() - state.start
        outcome_label = "budget_exhausted" if reason == "budget_exhausted" else "gave_up"
        self._counter(outcome_label).inc()
        log_fields: dict[str, Any] = {
            "name": self.name, "attempts": state.attempt, "reason": reason, "elapsed_s": round(elapsed, 6),
        }
        if is_exc:
            log_fields["error_type"] = type(outcome).__name__
            log_fields["error_message"] = str(outcome)[:200]
        else:
            log_fields["result"] = repr(outcome)[:200]
        if reason == "budget_exhausted":
            _log.warning("retry_budget_exhausted", **log_fields)
        else:
            _log.warning("retry_gave_up", **log_fields)
        if self.hooks.active:
            self.hooks.emit(
                "retry", self.name, outcome_label, attempt=state.attempt, reason=reason, elapsed=elapsed,
                error=outcome if is_exc else None, result=None if is_exc else outcome,
            )
        if is_exc:
            outcome.add_note(
                f"surefoot retry {self.name!r}: gave up after {state.attempt} attempt(s) "
                f"in {elapsed:.3f}s ({reason})"
            )
            raise outcome
        if self.return_last_result:
            return outcome
        raise RetryError(self.name, state.attempt, reason, outcome)

    # ----------------------------------------------------------------- slow paths

    def _slow_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        exc: BaseException | None, result: Any, start: float | None,
    ) -> Any:
        if exc is not None and not self._retryable(exc):
            self._on_not_retryable(None, exc)
            raise exc
        state = _CallState(self, start)
        token = _in_retry.set(True)
        dtoken = _deadline.set((state.deadline, self.clock)) if state.deadline is not None else None
        check = self.retry_on_result
        try:
            while True:
                is_exc = exc is not None
                outcome = exc if is_exc else result
                delay = self._next_delay(state, outcome)
                if delay is None:
                    return self._give_up(state, outcome, is_exc)
                self._on_retry(state, outcome, delay, is_exc)
                exc = result = None
                outcome = None
                if delay > 0 and not _waits.is_testing():
                    self.clock.sleep(delay)
                state.attempt += 1
                try:
                    result = fn(*args, **kwargs)
                except self.on as caught:
                    if not self._retryable(caught):
                        self._on_not_retryable(state, caught)
                        raise
                    exc = caught
                    continue
                if check is not None and check(result):
                    continue
                self._on_success_after_retry(state)
                return result
        finally:
            if dtoken is not None:
                _deadline.reset(dtoken)
            _in_retry.reset(token)

    async def _aslow_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        exc: BaseException | None, result: Any, start: float | None,
    ) -> Any:
        if exc is not None and not self._retryable(exc):
            self._on_not_retryable(None, exc)
            raise exc
        state = _CallState(self, start)
        token = _in_retry.set(True)
        dtoken = _deadline.set((state.deadline, self.clock)) if state.deadline is not None else None
        check = self.retry_on_result
        try:
            while True:
                is_exc = exc is not None
                outcome = exc if is_exc else result
                delay = self._next_delay(state, outcome)
                if delay is None:
                    return self._give_up(state, outcome, is_exc)
                self._on_retry(state, outcome, delay, is_exc)
                exc = result = None
                outcome = None
                if delay > 0 and not _waits.is_testing():
                    await self.clock.asleep(delay)
                state.attempt += 1
                try:
                    result = await fn(*args, **kwargs)
                except self.on as caught:
                    if not self._retryable(caught):
                        self._on_not_retryable(state, caught)
                        raise
                    exc = caught
                    continue
                if check is not None and check(result):
                    continue
                self._on_success_after_retry(state)
                return result
        finally:
            if dtoken is not None:
                _deadline.reset(dtoken)
            _in_retry.reset(token)

    # ----------------------------------------------------------------- other forms

    def get_delay(self, retry_number: int) -> float:
        """Sample the wait before retry ``retry_number`` (1 = the wait after the first attempt)."""
        if retry_number < 1:
            raise ConfigurationError(f"retry_number starts at 1; got {retry_number}")
        delays = self.backoff.delays(self.rng)
        for _ in range(retry_number - 1):
            next(delays)
        return next(delays)

    def attempts(self) -> _retry_iter.Retrying:
        """The iterator form: ``for attempt in retry.attempts(): with attempt: ...``.

        Also ``async for attempt in retry.attempts(): with attempt: ...`` (waits are awaited).
        Only exceptions are retried in this form; after the last attempt the exception
        propagates out of the ``with`` block (with a note saying why retrying stopped).
        """
        from ._retry_iter import Retrying

        return Retrying(self)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate ``fn``; dispatches on function, coroutine function, generator and async generator.

        Generators are retried only while they fail before yielding their first item: once a
        value has reached the caller, a failure propagates (it cannot be replayed).
        """
        return wrap_callable(
            fn, owner="Retry", var="retry", attribute="retry", component=self,
            function=lambda f: self._runner(f, False), coroutine=lambda f: self._runner(f, True),
            generator=lambda f: _wrap_gen(self, f), async_generator=lambda f: _wrap_asyncgen(self, f),
        )


_EMPTY = object()
_DEFERRED = DEFERRED_TYPES
_checked = guard_sync("Retry", "retry")


def _wrap_gen(
    retry: Retry, fn: Callable[..., Generator[Any, Any, Any]]
) -> Callable[..., Generator[Any, Any, Any]]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        def start() -> tuple[Generator[Any, Any, Any], Any]:
            gen = fn(*args, **kwargs)
            try:
                return gen, next(gen)
            except StopIteration as stop:
                return gen, (_EMPTY, stop.value)

        gen, first = retry.call(start)
        if isinstance(first, tuple) and len(first) == 2 and first[0] is _EMPTY:
            return first[1]
        yield first
        return (yield from gen)

    wrapper.retry = retry  # type: ignore[attr-defined]
    return wrapper


def _wrap_asyncgen(retry: Retry, fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async def start() -> tuple[Any, Any]:
            agen = fn(*args, **kwargs)
            try:
                return agen, await agen.__anext__()
            except StopAsyncIteration:
                return agen, _EMPTY

        agen, first = await retry.acall(start)
        if first is _EMPTY:
            return
        yield first
        async for item in agen:
            yield item

    wrapper.retry = retry  # type: ignore[attr-defined]
    return wrapper
