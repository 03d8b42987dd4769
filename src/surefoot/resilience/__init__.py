"""Resilience: circuit breaker, retry, timeout, bulkhead, rate limiter and chaos as one policy."""

from ._breaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    exponential_open_duration,
    http_failure,
    retry_after_of,
)
from ._breaker_redis import RedisCircuitBreaker
from ._compat import circuit_breaker
from ._events import Hooks, ResilienceEvent
from ._registry import (
    all_circuit_breakers,
    get_circuit_breaker,
    remove_circuit_breaker,
    reset_all_circuit_breakers,
)

__all__ = [
    "Hooks",
    "ResilienceEvent",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "RedisCircuitBreaker",
    "circuit_breaker",
    "exponential_open_duration",
    "get_circuit_breaker",
    "http_failure",
    "reset_all_circuit_breakers",
    "all_circuit_breakers",
    "remove_circuit_breaker",
    "retry_after_of",
]
