"""Built-in health checks: a SQLAlchemy engine, Redis, a TCP port, an HTTP URL.

Each factory returns an async callable to give to :meth:`surefoot.health.Health.add`. Backends
are imported when the check is created, so a missing one fails at start-up with the extra
to install, not on the first probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Container
from typing import Any

from .._core.extras import require
from ..errors import ConfigurationError

__all__ = ["sqlalchemy_check", "redis_check", "tcp_check", "http_check"]

CheckFunc = Callable[[], Awaitable[Any]]


def sqlalchemy_check(engine: Any, *, query: str = "SELECT 1") -> CheckFunc:
    """Check a SQLAlchemy engine (sync ``Engine`` or ``AsyncEngine``) by running ``query``.

    A sync engine is used from a worker thread so a slow database never blocks the event loop.

    Args:
        engine: the engine of the service.
        query: the statement to run (default ``SELECT 1``).

    Returns:
        An async check returning ``{"dialect": ...}``.

    Raises:
        MissingExtraError: SQLAlchemy is not installed (extra ``sql``).
        ConfigurationError: ``engine`` is not a SQLAlchemy engine.
    """
    sa = require("sqlalchemy", "sql")
    statement = sa.text(query)
    dialect = getattr(getattr(engine, "dialect", None), "name", None)
    if dialect is None:
        raise ConfigurationError(
            f"sqlalchemy_check needs an Engine or AsyncEngine; got {type(engine).__name__}"
        )
    details = {"dialect": dialect}

    if hasattr(engine, "sync_engine"):  # AsyncEngine

        async def check_async_engine() -> dict[str, Any]:
            async with engine.connect() as conn:
                await conn.execute(statement)
            return details

        return check_async_engine

    def run_sync() -> None:
        with engine.connect() as conn:
            conn.execute(statement)

    async def check_engine() -> dict[str, Any]:
        await asyncio.to_thread(run_sync)
        return details

    return check_engine


def redis_check(client_or_url: Any) -> CheckFunc:
    """Check Redis with ``PING``.

    Args:
        client_or_url: a ``redis.asyncio.Redis`` client, or a ``redis://`` URL (then each
            round of checks opens and closes its own connection).

    Returns:
        An async check.

    Raises:
        MissingExtraError: redis-py is not installed (extra ``redis``).
    """
    redis_asyncio = require("redis.asyncio", "redis")

    async def check_redis() -> None:
        if isinstance(client_or_url, str):
            # A connection per probe round: it tests connecting, and a client is never
            # carried over to another event loop.
            async with redis_asyncio.from_url(client_or_url) as client:
                answered = await client.ping()
        else:
            answered = await client_or_url.ping()
        if not answered:
            raise ConnectionError("redis did not answer PING")

    return check_redis


def tcp_check(host: str, port: int) -> CheckFunc:
    """Check that a TCP connection to ``host:port`` can be opened (then closes it).

    Raises:
        ConfigurationError: ``port`` is not a valid port number.
    """
    if not 0 < int(port) < 65536:
        raise ConfigurationError(f"tcp_check port must be 1-65535; got {port!r}")

    async def check_tcp() -> dict[str, Any]:
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()
        return {"address": f"{host}:{port}"}

    return check_tcp


def http_check(
    url: str,
    *,
    expect_status: Container[int] | None = None,
    client: Any = None,
    method: str = "GET",
) -> CheckFunc:
    """Check an HTTP dependency: healthy when it answers with an expected status.

    Args:
        url: the URL to request.
        expect_status: accepted statuses (default: 200–399).
        client: an ``httpx.AsyncClient`` to reuse (default: one per round of checks).
        method: the HTTP method.

    Returns:
        An async check returning ``{"status_code": ...}``.

    Raises:
        MissingExtraError: httpx is not installed (extra ``http``).
    """
    httpx = require("httpx", "http")
    accepted = expect_status if expect_status is not None else range(200, 400)

    async def check_http() -> dict[str, Any]:
        if client is None:
            async with httpx.AsyncClient(follow_redirects=False) as own:
                response = await own.request(method, url)
        else:
            response = await client.request(method, url)
        if response.status_code not in accepted:
            raise ConnectionError(f"{method} {url} answered {response.status_code}")
        return {"status_code": response.status_code}

    return check_http
