from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from surefoot.errors import ConfigurationError
from surefoot.health import Health, http_check, redis_check, sqlalchemy_check, tcp_check


def _health() -> Health:
    return Health(service="s", version="v")


async def _status(check, timeout: float = 5.0):
    health = _health()
    health.add("x", check, timeout=timeout)
    return (await health.run()).components["x"]


async def test_sqlalchemy_sync_engine(db_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        result = await _status(sqlalchemy_check(engine))
    finally:
        engine.dispose()
    assert result.status == "healthy" and result.details["dialect"] in ("sqlite", "postgresql")


async def test_sqlalchemy_async_engine(db_url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    url = db_url.replace("sqlite:", "sqlite+aiosqlite:", 1)
    engine = create_async_engine(url)
    try:
        result = await _status(sqlalchemy_check(engine))
    finally:
        await engine.dispose()
    assert result.status == "healthy"


async def test_sqlalchemy_unreachable_database_is_unhealthy_without_traceback() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    result = await _status(sqlalchemy_check(engine))
    assert result.status == "unhealthy" and "OperationalError" in result.error
    assert "Traceback" not in result.error and len(result.error) < 260


def test_sqlalchemy_check_refuses_other_objects() -> None:
    with pytest.raises(ConfigurationError, match="Engine"):
        sqlalchemy_check(object())


async def test_redis_check(redis_url: str) -> None:
    check = redis_check(redis_url)
    assert (await _status(check)).status == "healthy"
    import redis.asyncio

    client = redis.asyncio.from_url(redis_url)
    try:
        assert (await _status(redis_check(client))).status == "healthy"
    finally:
        await client.aclose()


async def test_redis_check_down() -> None:
    result = await _status(redis_check("redis://127.0.0.1:1/0"))
    assert result.status == "unhealthy"


async def test_tcp_check_open_and_closed() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert (await _status(tcp_check("127.0.0.1", port))).status == "healthy"
    finally:
        server.close()
        await server.wait_closed()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    assert (await _status(tcp_check("127.0.0.1", closed_port))).status == "unhealthy"
    with pytest.raises(ConfigurationError):
        tcp_check("h", 0)


async def test_http_check() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if request.url.path == "/ok" else 500)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    try:
        ok = await _status(http_check("http://dep/ok", client=client))
        bad = await _status(http_check("http://dep/bad", client=client))
        accepted = await _status(http_check("http://dep/bad", client=client, expect_status={500}))
    finally:
        await client.aclose()
    assert ok.status == "healthy" and ok.details == {"status_code": 200}
    assert bad.status == "unhealthy" and bad.error == "ConnectionError: GET http://dep/bad answered 500"
    assert accepted.status == "healthy"
