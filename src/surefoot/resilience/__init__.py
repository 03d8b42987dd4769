"""Resilience: circuit breaker, retry, timeout, bulkhead, rate limiter and chaos as one policy."""

from ._events import Hooks, ResilienceEvent

__all__ = ["Hooks", "ResilienceEvent"]
