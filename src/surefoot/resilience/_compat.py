"""The seed 001 surface as a thin layer over :class:`CircuitBreaker`.

    @circuit_breaker(failure_threshold=5, recovery_timeout=30, name="api")
    def call_api(): ...

    breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=30)
    breaker.call(api_function, arg1, arg2)

    breaker = get_circuit_breaker("gemini_api")
    breaker.get_stats(); breaker.reset(); reset_all_circuit_breakers()

``failure_threshold`` counts *consecutive* failures and ``recovery_timeout`` is the open
duration in seconds; every other :class:`CircuitBreaker` option may be passed too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from ._breaker import CircuitBreaker
from ._registry import get_circuit_breaker

__all__ = ["circuit_breaker"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def circuit_breaker(fn: F, /) -> F: ...


@overload
def circuit_breaker(
    *, failure_threshold: int | None = ..., recovery_timeout: float | None = ..., name: str | None = ...,
    **config: Any,
) -> Callable[[F], F]: ...


def circuit_breaker(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    failure_threshold: int | None = None,
    recovery_timeout: float | None = None,
    name: str | None = None,
    **config: Any,
) -> Any:
    """Protect a function (sync, async, generator or async generator) with a breaker.

    With ``name`` the breaker is the process-shared one (:func:`get_circuit_breaker`), so
    every function decorated with the same name trips together; without it each decorated
    function gets its own breaker named after it. The wrapper exposes it as ``.breaker``.

    Args:
        fn: the function, when used as a bare ``@circuit_breaker``.
        failure_threshold: consecutive failures that open the breaker (default 5).
        recovery_timeout: seconds the breaker stays open before a trial call (default 30).
        name: the shared breaker's name.
        **config: any other :class:`CircuitBreaker` option.
    """
    if failure_threshold is not None:
        config["failure_threshold"] = failure_threshold
    if recovery_timeout is not None:
        config["recovery_timeout"] = recovery_timeout

    def decorate(func: F) -> F:
        if name is not None:
            breaker = get_circuit_breaker(name, **config)
        else:
            label = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
            breaker = CircuitBreaker(label, **config)
        return breaker(func)

    if fn is not None:
        return decorate(fn)
    return decorate
