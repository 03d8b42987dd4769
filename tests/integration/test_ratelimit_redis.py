"""Redis GCRA rate limiter against the real Redis: atomicity across clients and processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("redis", reason="needs surefoot[redis]")

from surefoot.resilience import RateLimitExceededError, RedisRateLimiter
from surefoot.testing import FakeClock

pytestmark = pytest.mark.redis


def test_burst_then_refusal_with_retry_after(redis_url, unique):
    limiter = RedisRateLimiter(10, per=60, burst=3, url=redis_url, name=f"t-{unique}", fallback=None)
    try:
        decisions = [limiter.try_acquire("client") for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
        assert 5.0 < decisions[3].retry_after <= 6.0  # one permit every 6 s
        assert limiter.try_acquire("other").allowed  # keys are independent
        with pytest.raises(RateLimitExceededError) as info:
            limiter.acquire("client")
        assert info.value.headers["Retry-After"] == "6"
        limiter.reset("client")
        assert limiter.try_acquire("client").allowed
    finally:
        limiter.reset("client")
        limiter.reset("other")
        limiter.close()


def test_keys_expire_when_the_bucket_is_full_again(redis_url, unique):
    import redis

    limiter = RedisRateLimiter(1, per=10, burst=1, url=redis_url, name=f"t-{unique}", fallback=None)
    limiter.try_acquire("k")
    ttl = redis.Redis.from_url(redis_url).pttl(f"surefoot:ratelimit:t-{unique}:k")
    assert 9000 < ttl <= 10000  # ms until one permit is back: the bucket is full, the key goes
    limiter.close()


def test_max_wait_reserves_spaced_slots(redis_url, unique):
    clock = FakeClock()
    limiter = RedisRateLimiter(10, per=1, burst=1, max_wait=1.0, url=redis_url, name=f"t-{unique}",
                               clock=clock, fallback=None)
    try:
        for _ in range(4):
            limiter.acquire("k")
        # the first is free, then 0.1 s, 0.2 s, 0.3 s (Redis time moves a little meanwhile)
        assert len(clock.sleeps) == 3
        assert all(0.05 < s <= 0.31 for s in clock.sleeps) and clock.sleeps == sorted(clock.sleeps)
    finally:
        limiter.reset("k")
        limiter.close()


async def test_many_concurrent_clients_never_over_admit(redis_url, unique):
    import redis.asyncio as aredis

    clients = [aredis.Redis.from_url(redis_url) for _ in range(8)]
    limiters = [
        RedisRateLimiter(1, per=3600, burst=25, aclient=c, name=f"t-{unique}", fallback=None) for c in clients
    ]
    try:
        results = await asyncio.gather(*(limiters[i % 8].atry_acquire("shared") for i in range(200)))
        assert sum(d.allowed for d in results) == 25
    finally:
        await limiters[0].areset("shared")
        for c in clients:
            await c.aclose()


def test_two_processes_share_one_limit(redis_url, unique, subprocess_env):
    script = textwrap.dedent(
        f"""
        from surefoot.resilience import RedisRateLimiter
        limiter = RedisRateLimiter(1, per=3600, burst=40, url={redis_url!r}, name="t-{unique}", fallback=None)
        print(sum(limiter.try_acquire("shared").allowed for _ in range(100)))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=subprocess_env)
        for _ in range(2)
    ]
    counts = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        counts.append(int(out.strip()))
    assert sum(counts) == 40
    RedisRateLimiter(1, url=redis_url, name=f"t-{unique}").reset("shared")


def test_unreachable_redis_falls_back_to_a_local_limiter(unique):
    import structlog

    limiter = RedisRateLimiter(1, per=60, burst=2, url="redis://127.0.0.1:1/0", name=f"t-{unique}")
    with structlog.testing.capture_logs() as logs:
        assert [limiter.try_acquire("k").allowed for _ in range(3)] == [True, True, False]
    warnings = [line for line in logs if line["event"] == "rate_limiter_redis_unavailable"]
    assert len(warnings) == 1  # throttled, not one per call
    strict = RedisRateLimiter(1, url="redis://127.0.0.1:1/0", name=f"t-{unique}", fallback=None)
    import redis

    with pytest.raises(redis.exceptions.ConnectionError):
        strict.try_acquire("k")


async def test_fastapi_dependency_with_redis(redis_url, unique):
    import httpx
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse

    from surefoot.errors import HTTPError
    from surefoot.resilience import rate_limit_dependency

    limiter = RedisRateLimiter(1, per=60, burst=1, url=redis_url, name=f"t-{unique}", fallback=None)
    app = FastAPI()

    @app.exception_handler(HTTPError)
    async def problem(request: Request, exc: HTTPError):
        return JSONResponse(exc.problem(), status_code=exc.status, headers=exc.headers)

    @app.get("/x", dependencies=[Depends(rate_limit_dependency(limiter))])
    async def x():
        return {}

    transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{len(unique)}", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/x")).status_code == 200
        limited = await client.get("/x")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) in (59, 60)
    await limiter.areset(f"198.51.100.{len(unique)}")
    await limiter.aclose()


async def test_policy_with_a_shared_limiter_refuses_past_the_quota(redis_url, unique):
    from surefoot.resilience import Policy

    limiter = RedisRateLimiter(1, per=3600, burst=3, url=redis_url, name=f"t-{unique}", fallback=None)
    policy = Policy(name=f"t-{unique}", rate_limit=limiter)
    assert "await rl_acquire()" in policy.attempt_source(True)

    async def send():
        return "sent"

    assert [await policy.acall(send) for _ in range(3)] == ["sent"] * 3
    with pytest.raises(RateLimitExceededError):
        await policy.acall(send)
    await limiter.areset("default")
    await limiter.aclose()
