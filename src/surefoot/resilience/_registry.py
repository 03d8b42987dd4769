"""Named, process-shared circuit breakers (``get_circuit_breaker``).

A service usually wants one breaker per dependency, shared by every caller in the process:
``get_circuit_breaker("twilio", ...)`` creates it on first use and returns the same instance
afterwards.
"""

from __future__ import annotations

import threading
from typing import Any

from .._core.state import STATE
from ..errors import ConfigurationError
from ._breaker import CircuitBreaker

__all__ = [
    "get_circuit_breaker",
    "reset_all_circuit_breakers",
    "all_circuit_breakers",
    "remove_circuit_breaker",
]

_lock = threading.Lock()
_breakers: dict[str, tuple[CircuitBreaker, dict[str, Any]]] = {}


def get_circuit_breaker(name: str, /, **config: Any) -> CircuitBreaker:
    """Return the process-shared breaker called ``name``, creating it with ``config``.

    Args:
        name: the dependency's name (``"twilio"``); it labels metrics and logs.
        **config: :class:`CircuitBreaker` options, used when the breaker is created. A later
            call may repeat the same options or give none.

    Raises:
        ConfigurationError: the breaker exists with different options (two call sites
            disagree on how to protect one dependency; make them agree or use two names).
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a shared circuit breaker needs a non-empty name, got {name!r}")
    with _lock:
        found = _breakers.get(name)
        if found is None:
            breaker = CircuitBreaker(name, **config)
            _breakers[name] = (breaker, dict(config))
            return breaker
    breaker, created_with = found
    if config and config != created_with:
        raise ConfigurationError(
            f"circuit breaker {name!r} already exists with options {created_with!r}; "
            f"got {config!r}. Pass the same options (or none) to share it, or use another name."
        )
    return breaker


def all_circuit_breakers() -> dict[str, CircuitBreaker]:
    """A snapshot of the shared breakers by name."""
    with _lock:
        return {name: b for name, (b, _) in _breakers.items()}


def reset_all_circuit_breakers() -> None:
    """Close every shared breaker and forget their windows (they stay registered)."""
    for breaker in all_circuit_breakers().values():
        breaker.reset()


def remove_circuit_breaker(name: str | None = None) -> None:
    """Forget one shared breaker (or all of them with ``None``); for tests and reloads."""
    with _lock:
        if name is None:
            _breakers.clear()
        else:
            _breakers.pop(name, None)


STATE.own("resilience.breakers", _breakers, reset=remove_circuit_breaker)
