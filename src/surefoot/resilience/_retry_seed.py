"""The seed-style retry helpers: thin layers over :class:`Retry`.

    @retry_with_backoff(max_retries=3, base_delay=1.0)
    @retry_on_failure(max_attempts=3)
    retry_network_operation(fn, *args)
    retry_api_call(fn, *args)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .._core.callables import COROUTINE, callable_kind
from ..errors import ConfigurationError
from ._retry import NETWORK_ERRORS, RETRYABLE_STATUS, Retry

__all__ = ["retry_with_backoff", "retry_on_failure", "retry_network_operation", "retry_api_call"]


def _attempts_from(max_attempts: int | None, max_retries: int | None, default: int = 3) -> int:
    if max_attempts is not None and max_retries is not None:
        raise ConfigurationError(
            "give max_attempts (counts the first call) or max_retries (does not), not both"
        )
    if max_retries is not None:
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0; got {max_retries}")
        return max_retries + 1
    return default if max_attempts is None else max_attempts


def retry_with_backoff(
    max_attempts: int | None = None,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    exponential_base: float = 2.0,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    jitter: bool = True,
    *,
    max_retries: int | None = None,
    name: str | None = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: retry with exponential backoff (full jitter unless ``jitter=False``).

    Args:
        max_attempts: attempts including the first (default 3). Alternatively ``max_retries``
            counts only the retries (``max_retries=2`` == ``max_attempts=3``).
        base_delay: first wait cap in seconds.
        max_delay: the largest wait.
        exponential_base: growth per retry.
        exceptions: what is retried.
        jitter: full jitter (default) or plain exponential waits.
        name: budget/metric name (default: the function's qualified name).
        **options: any other :class:`Retry` argument (``deadline``, ``clock``, ``hooks`` ...).
    """
    attempts = _attempts_from(max_attempts, max_retries)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        retry = Retry(
            name=name or getattr(fn, "__qualname__", "retry"),
            max_attempts=attempts,
            on=exceptions,
            backoff="full_jitter" if jitter else "exponential",
            base_delay=base_delay,
            max_delay=max_delay,
            multiplier=exponential_base,
            **options,
        )
        return retry(fn)

    return decorate


def retry_on_failure(
    fn: Callable[..., Any],
    *args: Any,
    max_attempts: int | None = None,
    max_retries: int | None = None,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    exceptions: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    retry: Retry | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``fn(*args, **kwargs)`` with retries (functional form).

    A coroutine function returns an awaitable: ``await retry_on_failure(async_fn, ...)``.
    The retry options are keyword-only and reserved; everything else goes to ``fn``.

    Args:
        fn: the function to call.
        max_attempts / max_retries: see :func:`retry_with_backoff`.
        base_delay, max_delay, exceptions: see :func:`retry_with_backoff`.
        retry: a configured :class:`Retry` to use instead of the options.
    """
    if retry is None:
        retry = Retry(
            name=getattr(fn, "__qualname__", "retry"),
            max_attempts=_attempts_from(max_attempts, max_retries),
            on=exceptions,
            base_delay=base_delay,
            max_delay=max_delay,
        )
    if callable_kind(fn) is COROUTINE:
        return retry.acall(fn, *args, **kwargs)
    return retry.call(fn, *args, **kwargs)


def _network_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = NETWORK_ERRORS
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        errors = (*errors, httpx.TransportError)
    return errors


def _status_of(outcome: Any) -> int | None:
    for obj in (outcome, getattr(outcome, "response", None)):
        if obj is None:
            continue
        for attr in ("status_code", "status"):
            value = getattr(obj, attr, None)
            if isinstance(value, int):
                return value
    return None


_network_retries: dict[str, Retry] = {}
_api_retries: dict[str, Retry] = {}


def retry_network_operation(fn: Callable[..., Any], *args: Any, name: str = "network", **kwargs: Any) -> Any:
    """Call ``fn`` retrying network failures: 3 attempts, full jitter from 0.5 s, cap 10 s.

    Retried: ``ConnectionError``, ``TimeoutError``, ``OSError`` and ``httpx.TransportError``
    (when httpx is in use). Coroutine functions return an awaitable.
    """
    retry = _network_retries.get(name)
    if retry is None:
        retry = _network_retries[name] = Retry(
            name=name, max_attempts=3, on=_network_errors(), base_delay=0.5, max_delay=10.0
        )
    if callable_kind(fn) is COROUTINE:
        return retry.acall(fn, *args, **kwargs)
    return retry.call(fn, *args, **kwargs)


def _api_retryable_exception(exc: BaseException) -> bool:
    if isinstance(exc, _network_errors()):
        return True
    status = _status_of(exc)
    return status is not None and status in RETRYABLE_STATUS


def _api_retryable_result(result: Any) -> bool:
    status = _status_of(result)
    return status is not None and status in RETRYABLE_STATUS


def retry_api_call(fn: Callable[..., Any], *args: Any, name: str = "api", **kwargs: Any) -> Any:
    """Call an HTTP API with retries: network failures and 408/425/429/5xx (exceptions or results).

    3 attempts, full jitter from 1 s, cap 30 s, ``Retry-After`` honoured up to 30 s. A result
    that is still a retryable response after the last attempt is returned (the caller checks
    its status, as with any HTTP response); a retryable exception is re-raised.
    """
    retry = _api_retries.get(name)
    if retry is None:
        retry = _api_retries[name] = Retry(
            name=name, max_attempts=3, on=Exception, retry_if=_api_retryable_exception,
            retry_on_result=_api_retryable_result, base_delay=1.0, max_delay=30.0,
            return_last_result=True,
        )
    if callable_kind(fn) is COROUTINE:
        return retry.acall(fn, *args, **kwargs)
    return retry.call(fn, *args, **kwargs)
