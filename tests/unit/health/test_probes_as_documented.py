"""The probes of an installed service, as the README describes them: /livez, /readyz, /health."""

from __future__ import annotations

import asyncio
import math
import signal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import surefoot
from surefoot.errors import ConfigurationError
from surefoot.health import Health
from surefoot.testing import FakeClock


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


async def test_readiness_is_503_while_starting_and_stopping_and_liveness_is_200_throughout() -> None:
    app = FastAPI()
    surefoot.install(app)
    async with _client(app) as client:
        before = await client.get("/readyz")
        assert before.status_code == 503
        assert before.json() == {"status": "not_ready", "phase": "starting", "reason": "starting"}
        assert before.headers["content-type"] == "application/json"
        assert (await client.get("/livez")).status_code == 200
        async with app.router.lifespan_context(app):
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            assert (await client.get("/livez")).json()["status"] == "alive"
        after = await client.get("/readyz")
        assert after.status_code == 503 and after.json()["phase"] == "stopped"
        assert (await client.get("/livez")).status_code == 200


async def test_after_sigterm_readiness_drains_for_the_configured_seconds_while_requests_are_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUREFOOT_HEALTH_DRAIN_SECONDS", "0.05")
    loop = asyncio.get_running_loop()
    handed_over = asyncio.Event()
    received: list[int] = []

    def server_shutdown(signum: int, frame: Any) -> None:  # what uvicorn installs
        received.append(signum)
        loop.call_soon_threadsafe(handed_over.set)

    original = signal.signal(signal.SIGTERM, server_shutdown)
    try:
        app = FastAPI()
        surefoot.install(app)

        @app.get("/work")
        async def work() -> dict[str, bool]:
            return {"done": True}

        async with app.router.lifespan_context(app), _client(app) as client:
            assert (await client.get("/readyz")).status_code == 200
            signal.raise_signal(signal.SIGTERM)
            assert received == []  # the server has not been told yet
            draining = await client.get("/readyz")
            assert draining.status_code == 503 and draining.json()["phase"] == "draining"
            assert (await client.get("/work")).json() == {"done": True}
            assert (await client.get("/livez")).status_code == 200
            await asyncio.wait_for(handed_over.wait(), 10)
            assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, original)


async def test_checks_are_cached_for_every_probe_on_the_injected_clock(fake_clock: FakeClock) -> None:
    calls = []

    async def database() -> None:
        calls.append(fake_clock.monotonic())

    health = Health(clock=fake_clock, cache_seconds=1)
    health.add("database", database)
    app = FastAPI()
    surefoot.install(app, health=health)
    async with app.router.lifespan_context(app), _client(app) as client:
        await client.get("/health")
        await client.get("/readyz")
        fake_clock.advance(0.5)
        await client.get("/health")
        assert len(calls) == 1
        fake_clock.advance(0.5)
        report = (await client.get("/health")).json()
        assert len(calls) == 2
    assert report["components"]["database"]["status"] == "healthy"


async def test_a_check_past_its_timeout_fails_readiness_and_health() -> None:
    never = asyncio.Event()

    async def database() -> None:
        await never.wait()

    health = Health()
    health.add("database", database, timeout=0.01)
    health.add("cache", lambda: "degraded", critical=False)
    app = FastAPI()
    surefoot.install(app, health=health)
    async with app.router.lifespan_context(app), _client(app) as client:
        ready = await client.get("/readyz")
        full = await client.get("/health")
    assert ready.status_code == 503
    assert ready.json()["reason"] == "critical check failed: database"
    assert full.status_code == 503 and full.json()["status"] == "unhealthy"
    database_result = full.json()["components"]["database"]
    assert database_result == {"status": "unhealthy", "critical": True, "latency_ms": database_result["latency_ms"],
                               "error": "timed out after 0.01s"}


async def test_a_failing_check_shows_its_error_without_secrets_or_pii() -> None:
    async def database() -> None:
        raise ConnectionError(
            "could not connect to postgresql://app:s3cret@db:5432/app as ada@example.com "
            "(Authorization: Bearer abcdefghijklmnop, +1 415 555 2671)"
        )

    async def partner() -> None:  # the address straddles the 200 characters kept
        raise ConnectionError("x" * 180 + " owner: grace.hopper@example.com")

    health = Health()
    health.add("database", database)
    health.add("partner", partner, critical=False)
    app = FastAPI()
    surefoot.install(app, health=health)
    async with app.router.lifespan_context(app), _client(app) as client:
        body = (await client.get("/health")).text
    for secret in ("s3cret", "ada@", "example.com (", "abcdefghijklmnop", "555 2671", "grace", "hopper"):
        assert secret not in body
    assert "postgresql://app:[REDACTED]@db:5432/app as ***.com" in body


async def test_check_details_of_any_kind_are_reported() -> None:
    health = Health()
    health.add("queue", lambda: {"status": "healthy", "depth": 2**70, 3: "three", "since": object()})
    app = FastAPI()
    surefoot.install(app, health=health)
    async with app.router.lifespan_context(app), _client(app) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    details = response.json()["components"]["queue"]["details"]
    assert details["depth"] == 2**70 and details["3"] == "three" and details["since"].startswith("<object")


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -1, "5"])
def test_durations_must_be_finite_seconds(seconds: Any) -> None:
    for make in (
        lambda: Health(drain_seconds=seconds),
        lambda: Health(cache_seconds=seconds),
        lambda: Health(loop_lag_threshold=seconds),
        lambda: Health().add("db", lambda: None, timeout=seconds),
        lambda: surefoot.install(FastAPI(), drain_seconds=seconds),
        lambda: surefoot.install(FastAPI(), health=Health(), drain_seconds=seconds),
    ):
        with pytest.raises((ConfigurationError, TypeError), match="finite number of seconds|>= 0|not supported"):
            make()


def test_drain_seconds_set_later_is_checked_too() -> None:
    health = Health()
    health.drain_seconds = 2.5
    assert health.drain_seconds == 2.5
    with pytest.raises(ConfigurationError, match="drain_seconds must be a finite number of seconds >= 0; got nan"):
        health.drain_seconds = math.nan
    assert health.drain_seconds == 2.5
