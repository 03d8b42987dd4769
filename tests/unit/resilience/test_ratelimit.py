"""Local token-bucket rate limiter, and the ASGI/FastAPI rate-limit dependency and middleware."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot.errors import ConfigurationError, RateLimitError
from surefoot.resilience import RateLimiter, RateLimitExceededError
from surefoot.testing import EventRecorder, FakeClock, no_waits


def test_burst_then_refill(fake_clock):
    limiter = RateLimiter(2, per=1.0, burst=3, clock=fake_clock)
    assert [limiter.try_acquire().allowed for _ in range(4)] == [True, True, True, False]
    fake_clock.advance(0.5)  # +1 permit
    assert limiter.try_acquire().allowed
    assert not limiter.try_acquire().allowed


def test_rejection_carries_retry_after(fake_clock):
    limiter = RateLimiter(10, per=60, burst=1, clock=fake_clock, name="sms")
    limiter.acquire()
    with pytest.raises(RateLimitExceededError) as info:
        limiter.acquire()
    err = info.value
    assert isinstance(err, RateLimitError) and err.status == 429
    assert err.retry_after == pytest.approx(6.0)
    assert err.headers["Retry-After"] == "6"
    assert "sms" in str(err)


def test_decision_fields(fake_clock):
    limiter = RateLimiter(1, burst=5, clock=fake_clock)
    d = limiter.try_acquire(cost=2)
    assert d.allowed and d.remaining == 3 and d.retry_after == 0 and d.reset_after == pytest.approx(2.0)


def test_keys_are_independent(fake_clock):
    limiter = RateLimiter(1, burst=1, clock=fake_clock)
    assert limiter.try_acquire("a").allowed
    assert not limiter.try_acquire("a").allowed
    assert limiter.try_acquire("b").allowed


def test_idle_keys_are_forgotten_when_full(fake_clock):
    limiter = RateLimiter(1, burst=1, clock=fake_clock, max_keys=3)
    for key in "abc":
        limiter.try_acquire(key)
    fake_clock.advance(10)
    limiter.try_acquire("d")
    assert set(limiter._buckets) == {"d"}
    for key in "efg":
        limiter.try_acquire(key)
    assert len(limiter._buckets) <= 3


def test_waiting_reserves_and_sleeps_on_the_clock(fake_clock):
    events = EventRecorder()
    limiter = RateLimiter(2, burst=1, max_wait=1.0, clock=fake_clock, hooks=events.hooks)
    limiter.acquire()
    limiter.acquire()  # reserves, sleeps 0.5
    limiter.acquire()  # next slot is 0.5 after that
    assert fake_clock.sleeps == [0.5, 0.5]
    assert events.kinds() == ["waited", "waited"]


def test_wait_longer_than_max_wait_is_refused(fake_clock):
    limiter = RateLimiter(1, burst=1, max_wait=0.5, clock=fake_clock)
    limiter.acquire()
    with pytest.raises(RateLimitExceededError):
        limiter.acquire()


async def test_async_acquire_waits_on_the_clock(fake_clock):
    limiter = RateLimiter(4, burst=1, max_wait=1.0, clock=fake_clock)
    await limiter.aacquire()
    await limiter.aacquire()
    assert fake_clock.sleeps == [0.25]
    with no_waits():
        await limiter.aacquire()
    assert fake_clock.sleeps == [0.25]


def test_gauge_reads_the_default_bucket(fake_clock, registry):
    limiter = RateLimiter(1, burst=5, clock=fake_clock, name="api", registry=registry)
    limiter.acquire()
    limiter.acquire()
    assert registry.get_sample_value("rate_limiter_available_permits", {"name": "api"}) == 3
    fake_clock.advance(1)
    assert registry.get_sample_value("rate_limiter_available_permits", {"name": "api"}) == 4


def test_refusals_and_waits_are_counted(fake_clock, registry):
    limiter = RateLimiter(1, burst=1, max_wait=1.0, clock=fake_clock, name="api", registry=registry)
    with no_waits():  # time stands still: the reservations pile up
        limiter.acquire()
        limiter.acquire()  # reserves, would wait 1 s
        with pytest.raises(RateLimitExceededError):
            limiter.acquire()  # would wait 2 s
    assert not limiter.try_acquire().allowed

    def count(event):
        return registry.get_sample_value(
            "resilience_events_total", {"component": "rate_limiter", "name": "api", "event": event}
        )

    assert count("waited") == 1 and count("rejected") == 2


def test_decorators_and_reset(fake_clock):
    limiter = RateLimiter(1, burst=1, clock=fake_clock)

    @limiter
    def f():
        return 1

    assert f() == 1
    with pytest.raises(RateLimitExceededError):
        f()
    limiter.reset()
    assert f() == 1
    limiter.reset("default")
    assert f() == 1


@pytest.mark.parametrize(
    "options", [{"rate": 0}, {"rate": 1, "per": 0}, {"rate": 1, "burst": 0.5}, {"rate": 1, "max_wait": -1},
                {"rate": 1, "max_keys": 0}],
)
def test_bad_numbers(options):
    with pytest.raises(ConfigurationError):
        RateLimiter(**options)


@given(
    rate=st.floats(0.5, 50), burst=st.integers(1, 20),
    steps=st.lists(st.tuples(st.floats(0, 2), st.integers(1, 3)), max_size=80),
)
@settings(max_examples=150, deadline=None)
def test_never_admits_more_than_burst_plus_refill(rate, burst, steps):
    clock = FakeClock()
    limiter = RateLimiter(rate, burst=burst, clock=clock)
    admitted = 0
    elapsed = 0.0
    for gap, cost in steps:
        clock.advance(gap)
        elapsed += gap
        if limiter.try_acquire(cost=cost).allowed:
            admitted += cost
        assert admitted <= burst + rate * elapsed + 1e-6


# ----------------------------------------------------------------- ASGI / FastAPI


def _app(limiter, key=None, middleware=False):
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse

    from surefoot.errors import HTTPError
    from surefoot.resilience import RateLimitMiddleware, rate_limit_dependency

    app = FastAPI()

    @app.exception_handler(HTTPError)
    async def problem(request: Request, exc: HTTPError):
        return JSONResponse(exc.problem(instance=request.url.path), status_code=exc.status, headers=exc.headers,
                            media_type="application/problem+json")

    deps = [] if middleware else [Depends(rate_limit_dependency(limiter, **({"key": key} if key else {})))]

    @app.get("/hello", dependencies=deps)
    async def hello():
        return {"ok": True}

    @app.get("/health")
    async def health():
        return {"ok": True}

    if middleware:
        app.add_middleware(RateLimitMiddleware, limiter=limiter, **({"key": key} if key else {}))
    return app


async def _get(app, path, headers=None):
    import httpx

    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


async def test_dependency_answers_429_with_retry_after(fake_clock):
    limiter = RateLimiter(1, per=30, burst=2, clock=fake_clock, name="api")
    app = _app(limiter)
    first = await _get(app, "/hello")
    assert first.status_code == 200
    assert first.headers["RateLimit-Limit"] == "2" and first.headers["RateLimit-Remaining"] == "1"
    await _get(app, "/hello")
    limited = await _get(app, "/hello")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "30"
    assert limited.headers["content-type"] == "application/problem+json"
    body = limited.json()
    assert body["status"] == 429 and body["code"] == "RATE_LIMITED"


async def test_dependency_keys_by_api_key(fake_clock):
    from surefoot.resilience._asgi import header_key

    limiter = RateLimiter(1, per=60, burst=1, clock=fake_clock)
    app = _app(limiter, key=header_key("X-API-Key"))
    assert (await _get(app, "/hello", {"X-API-Key": "a"})).status_code == 200
    assert (await _get(app, "/hello", {"X-API-Key": "a"})).status_code == 429
    assert (await _get(app, "/hello", {"X-API-Key": "b"})).status_code == 200
    assert (await _get(app, "/hello")).status_code == 200  # falls back to the IP
    assert (await _get(app, "/hello")).status_code == 429


async def test_middleware_limits_and_skips_probes(fake_clock):
    limiter = RateLimiter(1, per=60, burst=1, clock=fake_clock)
    app = _app(limiter, middleware=True)
    ok = await _get(app, "/hello")
    assert ok.status_code == 200 and ok.headers["ratelimit-remaining"] == "0"
    limited = await _get(app, "/hello")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
    assert limited.json()["instance"] == "/hello"
    assert (await _get(app, "/health")).status_code == 200


def test_key_functions():
    from types import SimpleNamespace

    from surefoot import context
    from surefoot.resilience._asgi import client_ip, forwarded_ip, tenant_key

    req = SimpleNamespace(client=SimpleNamespace(host="10.0.0.1"), headers={"x-forwarded-for": "1.1.1.1, 2.2.2.2"})
    assert client_ip(req) == "10.0.0.1"
    assert forwarded_ip(1)(req) == "2.2.2.2"
    assert forwarded_ip(2)(req) == "1.1.1.1"
    assert forwarded_ip(3)(req) == "10.0.0.1"
    assert client_ip(SimpleNamespace(client=None)) == "unknown"
    with context.bound(tenant_id="t1"):
        assert tenant_key(req) == "tenant:t1"
    assert tenant_key(req) == "ip:10.0.0.1"
    with pytest.raises(ValueError):
        forwarded_ip(0)


def test_the_documented_key_functions_come_from_surefoot_resilience():
    from types import SimpleNamespace

    from surefoot.resilience import client_ip, forwarded_ip, header_key, tenant_key

    req = SimpleNamespace(client=SimpleNamespace(host="10.0.0.9"), headers={"X-API-Key": "k1"})
    assert client_ip(req) == "10.0.0.9"
    assert forwarded_ip(1)(req) == "10.0.0.9"  # no X-Forwarded-For: the peer
    assert header_key("X-API-Key")(req) == "x-api-key:k1"
    assert tenant_key(req) == "ip:10.0.0.9"


@pytest.mark.parametrize("hops", [0, -1, "2", 1.5])
def test_forwarded_ip_needs_a_count_of_proxies(hops):
    from surefoot.resilience import forwarded_ip

    with pytest.raises(ConfigurationError, match="trusted_hops"):
        forwarded_ip(hops)


@pytest.mark.parametrize("cost", [0, -1, float("nan")])
def test_a_cost_must_be_a_positive_number_of_permits(fake_clock, cost):
    limiter = RateLimiter(5, clock=fake_clock)
    for take in (limiter.try_acquire, limiter.reserve, limiter.acquire):
        with pytest.raises(ConfigurationError, match="cost"):
            take("k", cost)
    assert limiter.available("k") == 5


@pytest.mark.parametrize("options", [{"rate": float("inf")}, {"rate": float("nan")}, {"rate": 5, "per": float("inf")},
                                     {"rate": 5, "hooks": print}])
def test_unusable_limiter_numbers_are_clear_errors(options):
    with pytest.raises(ConfigurationError):
        RateLimiter(**options)


@pytest.mark.parametrize("cost", [0, -2, "1"])
def test_edge_limits_refuse_a_cost_that_is_not_positive_when_built(fake_clock, cost):
    pytest.importorskip("fastapi")
    from surefoot.resilience import RateLimitMiddleware, rate_limit_dependency

    limiter = RateLimiter(5, clock=fake_clock)
    with pytest.raises(ConfigurationError, match="cost"):
        rate_limit_dependency(limiter, cost=cost)
    with pytest.raises(ConfigurationError, match="cost"):
        RateLimitMiddleware(lambda scope, receive, send: None, limiter=limiter, cost=cost)
