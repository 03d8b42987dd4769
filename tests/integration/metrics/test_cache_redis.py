"""CacheMetrics around a real Redis, sync and async, including a broken connection."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from surefoot.metrics import CacheMetrics
from surefoot.testing import metric_value

pytestmark = pytest.mark.redis


def _count(registry: CollectorRegistry, cache: str, result: str) -> float:
    return metric_value(registry, "cache_requests_total", {"cache": cache, "result": result})


def test_sync_redis_hits_misses_and_errors(redis_url: str, unique: str) -> None:
    import redis

    registry = CollectorRegistry()
    client = redis.Redis.from_url(redis_url)
    profiles = CacheMetrics("profiles", registry=registry)

    @profiles
    def get_profile(user: str) -> bytes | None:
        return client.get(f"{unique}:profile:{user}")

    try:
        client.set(f"{unique}:profile:ann", b"{}")
        assert get_profile("ann") == b"{}"
        assert get_profile("bob") is None
        assert profiles.call(client.get, f"{unique}:profile:ann") == b"{}"
        broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
        with pytest.raises(redis.exceptions.ConnectionError):
            profiles.call(broken.get, "x")
        assert _count(registry, "profiles", "hit") == 2
        assert _count(registry, "profiles", "miss") == 1
        assert _count(registry, "profiles", "error") == 1
        assert metric_value(registry, "cache_request_duration_seconds_count", {"cache": "profiles"}) == 4
    finally:
        client.delete(f"{unique}:profile:ann")
        client.close()


async def test_async_redis_under_concurrency(redis_url: str, unique: str) -> None:
    import redis.asyncio as aredis

    registry = CollectorRegistry()
    client = aredis.Redis.from_url(redis_url)
    sessions = CacheMetrics("sessions", registry=registry)

    @sessions
    async def get_session(i: int) -> bytes | None:
        return await client.get(f"{unique}:session:{i}")

    try:
        await client.mset({f"{unique}:session:{i}": b"s" for i in range(0, 50, 2)})
        results = await asyncio.gather(*(get_session(i) for i in range(50)))
        assert sum(r is not None for r in results) == 25
        assert _count(registry, "sessions", "hit") == 25
        assert _count(registry, "sessions", "miss") == 25
        assert await sessions.acall(client.get, f"{unique}:session:0") == b"s"
        assert _count(registry, "sessions", "hit") == 26
    finally:
        await client.delete(*[f"{unique}:session:{i}" for i in range(50)])
        await client.aclose()
