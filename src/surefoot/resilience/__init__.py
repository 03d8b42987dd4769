"""Resilience: circuit breaker, retry, timeout, bulkhead, rate limiter and chaos as one policy."""

from .._core.callables import UnsupportedCallableError
from ._breaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    exponential_open_duration,
    http_failure,
    retry_after_of,
)
from ._breaker_redis import RedisCircuitBreaker
from ._budget import RetryBudget, get_retry_budget, reset_retry_budgets
from ._bulkhead import Bulkhead, BulkheadFullError
from ._chaos import Chaos, ChaosError, ChaosSettings
from ._compat import circuit_breaker
from ._events import Hooks, ResilienceEvent
from ._policy import Policy
from ._ratelimit import RateLimitDecision, RateLimiter, RateLimitExceededError
from ._registry import (
    all_circuit_breakers,
    get_circuit_breaker,
    remove_circuit_breaker,
    reset_all_circuit_breakers,
)
from ._retry import (
    Backoff,
    Constant,
    DecorrelatedJitter,
    Exponential,
    FullJitter,
    Retry,
    RetryError,
)
from ._retry_iter import retrying
from ._retry_seed import (
    retry_api_call,
    retry_network_operation,
    retry_on_failure,
    retry_with_backoff,
)
from ._timeout import (
    DEFAULT_TIMEOUTS,
    CallTimeoutError,
    Timeout,
    get_timeout,
    set_timeout,
    validate_timeout,
)

__all__ = [
    "Hooks",
    "ResilienceEvent",
    # circuit breaker
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
    # retry
    "Retry",
    "RetryError",
    "RetryBudget",
    "get_retry_budget",
    "reset_retry_budgets",
    "Backoff",
    "FullJitter",
    "DecorrelatedJitter",
    "Exponential",
    "Constant",
    "retrying",
    "retry_with_backoff",
    "retry_on_failure",
    "retry_network_operation",
    "retry_api_call",
    # timeout
    "Timeout",
    "CallTimeoutError",
    "DEFAULT_TIMEOUTS",
    "get_timeout",
    "set_timeout",
    "validate_timeout",
    # bulkhead, rate limiting, chaos
    "Bulkhead",
    "BulkheadFullError",
    "RateLimiter",
    "RateLimitDecision",
    "RateLimitExceededError",
    "RedisRateLimiter",
    "rate_limit_dependency",
    "RateLimitMiddleware",
    "client_ip",
    "forwarded_ip",
    "header_key",
    "tenant_key",
    "Chaos",
    "ChaosError",
    "ChaosSettings",
    # pipeline and HTTP client
    "Policy",
    "UnsupportedCallableError",
    "ResilientTransport",
    "AsyncResilientTransport",
    "provider_client",
    "aprovider_client",
    "http_policy",
]

_LAZY = {
    # optional extras: imported on first access so `import surefoot.resilience` needs none of them
    "RedisRateLimiter": ("._ratelimit_redis", "RedisRateLimiter"),
    "rate_limit_dependency": ("._asgi", "rate_limit_dependency"),
    "RateLimitMiddleware": ("._asgi", "RateLimitMiddleware"),
    "client_ip": ("._asgi", "client_ip"),
    "forwarded_ip": ("._asgi", "forwarded_ip"),
    "header_key": ("._asgi", "header_key"),
    "tenant_key": ("._asgi", "tenant_key"),
    "ResilientTransport": ("._http", "ResilientTransport"),
    "AsyncResilientTransport": ("._http", "AsyncResilientTransport"),
    "provider_client": ("._http", "provider_client"),
    "aprovider_client": ("._http", "aprovider_client"),
    "http_policy": ("._http", "http_policy"),
}


from .._core.extras import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
