"""Rate limiting at the edge of an ASGI/FastAPI service.

* :func:`rate_limit_dependency` — a FastAPI dependency (``Depends(...)``) per route or router.
  A refused request raises :class:`RateLimitExceededError` (a
  :class:`surefoot.errors.RateLimitError`): surefoot's error envelope renders it as an RFC 9457
  ``429`` with ``Retry-After``. Allowed requests get ``RateLimit-Limit``,
  ``RateLimit-Remaining`` and ``RateLimit-Reset`` response headers.
* :class:`RateLimitMiddleware` — pure ASGI, for a whole app; it answers the 429 problem
  document itself (a middleware's exception would not reach FastAPI's exception handlers).

Keys separate clients: :func:`client_ip` (default), :func:`forwarded_ip` behind trusted
proxies, :func:`header_key` (API key) and :func:`tenant_key`. Any callable
``(request) -> str`` (or async) works.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any

from .. import context as _context
from .._core.extras import require
from .._core.problem import problem_from_exception, send_problem
from ..errors import ConfigurationError
from ._ratelimit import RateLimitDecision, RateLimitExceededError, _bad_cost

__all__ = [
    "rate_limit_dependency",
    "RateLimitMiddleware",
    "client_ip",
    "forwarded_ip",
    "header_key",
    "tenant_key",
]

KeyFunc = Callable[[Any], "str | Awaitable[str]"]  # noqa: UP037 - evaluated at runtime


def client_ip(request: Any) -> str:
    """The peer address of the connection (``"unknown"`` when the server gives none)."""
    client = request.client
    return client.host if client is not None and client.host else "unknown"


def forwarded_ip(trusted_hops: int = 1) -> Callable[[Any], str]:
    """Key by the client address in ``X-Forwarded-For``, trusting ``trusted_hops`` proxies.

    The address ``trusted_hops`` entries from the right is used (entries further left can be
    forged by the client). Without the header the peer address is used.
    """
    if isinstance(trusted_hops, bool) or not isinstance(trusted_hops, int) or trusted_hops < 1:
        raise ConfigurationError(
            f"forwarded_ip(trusted_hops) counts the proxies in front of the service: an int >= 1; "
            f"got {trusted_hops!r}"
        )

    def key(request: Any) -> str:
        raw = request.headers.get("x-forwarded-for")
        if raw:
            hops: list[str] = [h.strip() for h in raw.split(",") if h.strip()]
            if len(hops) >= trusted_hops:
                return hops[-trusted_hops]
        return client_ip(request)

    return key


def header_key(header: str = "X-API-Key", *, fallback: KeyFunc | None = client_ip) -> Callable[[Any], str]:
    """Key by a request header (an API key); without it, by ``fallback`` (default: IP).

    The value is used as given: hash it in your own key function if keys are secrets you do
    not want in Redis.
    """

    def key(request: Any) -> str:
        value = request.headers.get(header)
        if value:
            return f"{header.lower()}:{value}"
        if fallback is None:
            return "anonymous"
        return f"ip:{fallback(request)}"

    return key


def tenant_key(request: Any) -> str:
    """Key by the tenant bound in :mod:`surefoot.context` (or the ``X-Tenant-ID`` header), else IP."""
    tenant = _context.get_tenant_id() or request.headers.get("x-tenant-id")
    return f"tenant:{tenant}" if tenant else f"ip:{client_ip(request)}"


async def _decide(limiter: Any, key: str, cost: float) -> RateLimitDecision:
    atry = getattr(limiter, "atry_acquire", None)
    decision: RateLimitDecision
    if atry is not None:
        decision = await atry(key, cost)
    else:
        decision = limiter.try_acquire(key, cost)
    return decision


def _headers(limiter: Any, decision: RateLimitDecision) -> dict[str, str]:
    return {
        "RateLimit-Limit": f"{limiter.burst:g}",
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(max(0, math.ceil(decision.reset_after))),
    }


def _check_cost(cost: Any) -> None:
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not cost > 0:
        raise _bad_cost(cost)


async def _key_of(key: KeyFunc, request: Any) -> str:
    value = key(request)
    if inspect.isawaitable(value):
        value = await value
    return str(value)


def rate_limit_dependency(limiter: Any, *, key: KeyFunc = client_ip, cost: float = 1.0) -> Callable[..., Any]:
    """A FastAPI dependency that limits requests per client key.

    Usage::

        limiter = RateLimiter(100, per=60, name="api")          # or RedisRateLimiter(...)
        @app.post("/sms", dependencies=[Depends(rate_limit_dependency(limiter, key=header_key()))])

    Args:
        limiter: a :class:`RateLimiter` or :class:`RedisRateLimiter`.
        key: how to tell clients apart.
        cost: permits per request.

    Raises (from the dependency):
        RateLimitExceededError: 429 with ``Retry-After`` and ``RateLimit-*`` headers.
    """
    _check_cost(cost)
    starlette_requests = require("starlette.requests", "fastapi")
    starlette_responses = require("starlette.responses", "fastapi")

    async def dependency(request: Any, response: Any) -> None:
        client = await _key_of(key, request)
        decision = await _decide(limiter, client, cost)
        headers = _headers(limiter, decision)
        if not decision.allowed:
            error = RateLimitExceededError(limiter.name, client, decision.retry_after)
            error.headers.update(headers)
            raise error
        response.headers.update(headers)

    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=starlette_requests.Request),
            inspect.Parameter("response", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              annotation=starlette_responses.Response),
        ],
        return_annotation=None,
    )
    return dependency


class RateLimitMiddleware:
    """Pure ASGI middleware limiting every HTTP request of an app per client key.

    Args:
        app: the ASGI app.
        limiter: a :class:`RateLimiter` or :class:`RedisRateLimiter`.
        key: how to tell clients apart (receives a ``starlette.requests.HTTPConnection``).
        cost: permits per request.
        exclude_paths: paths never limited (health probes, metrics).
    """

    def __init__(
        self,
        app: Any,
        *,
        limiter: Any,
        key: KeyFunc = client_ip,
        cost: float = 1.0,
        exclude_paths: tuple[str, ...] = ("/livez", "/readyz", "/health", "/metrics"),
    ) -> None:
        _check_cost(cost)
        self.app = app
        self.limiter = limiter
        self.key = key
        self.cost = cost
        self.exclude_paths = frozenset(exclude_paths)
        self._connection = require("starlette.requests", "fastapi").HTTPConnection

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        client = await _key_of(self.key, self._connection(scope))
        decision = await _decide(self.limiter, client, self.cost)
        headers = _headers(self.limiter, decision)
        if decision.allowed:
            async def send_with_headers(message: Any) -> None:
                if message["type"] == "http.response.start":
                    raw = list(message.get("headers", []))
                    raw.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
                    message = {**message, "headers": raw}
                await send(message)

            await self.app(scope, receive, send_with_headers)
            return
        error = RateLimitExceededError(self.limiter.name, client, decision.retry_after)
        error.headers.update(headers)
        await send_problem(send, problem_from_exception(error, instance=scope.get("path")))
