from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from surefoot.errors import ConfigurationError
from surefoot.health import Health, HealthEndpoint, health_routes
from surefoot.testing import FakeClock


@pytest.fixture
def health(fake_clock: FakeClock) -> Health:
    return Health(service="svc", version="1.2.3", clock=fake_clock)


async def test_results_statuses_and_messages(health: Health) -> None:
    async def ok():
        return None

    def sync_ok():
        return {"rows": 1}

    async def failing():
        raise ConnectionError("connection refused to db at alice@example.com")

    async def degraded():
        return "degraded"

    health.add("ok", ok)
    health.add("sync", sync_ok)
    health.add("failing", failing, critical=False)
    health.add("degraded", degraded, critical=False)
    health.add("false", lambda: False, critical=False)
    report = await health.run()
    c = report.components
    assert c["ok"].status == "healthy" and c["sync"].details == {"rows": 1}
    assert c["failing"].status == "unhealthy"
    assert c["failing"].error == "ConnectionError: connection refused to db at ***.com"
    assert "Traceback" not in c["failing"].error
    assert c["degraded"].status == "degraded"
    assert c["false"].status == "unhealthy"
    assert report.status == "degraded"  # only non-critical checks failed


async def test_a_failing_critical_check_makes_it_unhealthy(health: Health) -> None:
    health.add("db", lambda: (_ for _ in ()).throw(RuntimeError("down")))
    report = await health.run()
    assert report.status == "unhealthy" and report.critical_failures == ["db"]


async def test_timeouts_are_per_check(health: Health) -> None:
    never = asyncio.Event()

    async def hangs():
        await never.wait()

    health.add("hangs", hangs, timeout=0.05)
    health.add("fast", lambda: None, timeout=5)
    report = await health.run()
    assert report.components["hangs"].error == "timed out after 0.05s"
    assert report.components["fast"].status == "healthy"


async def test_checks_run_concurrently(health: Health) -> None:
    a, b = asyncio.Event(), asyncio.Event()

    async def first():
        a.set()
        await b.wait()

    async def second():
        b.set()
        await a.wait()

    health.add("first", first, timeout=5)
    health.add("second", second, timeout=5)
    report = await health.run()  # would time out if run one after the other
    assert report.status == "healthy"


async def test_results_are_cached_on_the_injected_clock(health: Health, fake_clock: FakeClock) -> None:
    calls = []

    async def counted():
        calls.append(1)

    health.add("c", counted)
    await health.run()
    await health.run()
    fake_clock.advance(0.5)
    await health.run()
    assert len(calls) == 1
    fake_clock.advance(0.6)
    await health.run()
    assert len(calls) == 2
    await health.run(use_cache=False)
    assert len(calls) == 3


async def test_concurrent_runs_share_one_round(health: Health) -> None:
    release = asyncio.Event()
    calls = []

    async def slow():
        calls.append(1)
        await release.wait()

    health.add("slow", slow, timeout=5)
    first = asyncio.create_task(health.run())
    await asyncio.sleep(0)
    second = asyncio.create_task(health.run())
    await asyncio.sleep(0)
    release.set()
    r1, r2 = await asyncio.gather(first, second)
    assert r1 is r2 and len(calls) == 1


async def test_readiness_follows_phase_and_critical_checks(health: Health) -> None:
    state = {"up": True}
    health.add("db", lambda: state["up"])
    ready, body = await health.readiness()
    assert not ready and body == {"status": "not_ready", "phase": "starting", "reason": "starting"}
    health.mark_ready()
    ready, body = await health.readiness()
    assert ready and body["status"] == "ready" and body["components"]["db"]["status"] == "healthy"
    state["up"] = False
    ready, body = await health.readiness()
    assert ready  # cached for cache_seconds
    health.clock.advance(2)
    ready, body = await health.readiness()
    assert not ready and body["reason"] == "critical check failed: db"
    state["up"] = True
    health.clock.advance(2)
    health.start_draining()
    ready, body = await health.readiness()
    assert not ready and body["reason"] == "draining"


async def test_liveness_only_fails_on_loop_lag(health: Health) -> None:
    health.add("db", lambda: False)
    alive, body = health.liveness()
    assert alive and body["status"] == "alive"
    health.observe_loop_lag(6.0)
    alive, body = health.liveness()
    assert not alive and body["status"] == "wedged" and body["loop_lag_seconds"] == 6.0
    health.observe_loop_lag(0.01)
    assert health.liveness()[0]


async def test_watchdog_measures_a_blocked_loop() -> None:
    health = Health(service="s", version="v", loop_lag_threshold=0.1, loop_lag_interval=0.01)
    health.start_watchdog()
    try:
        await asyncio.sleep(0.02)
        time.sleep(0.25)  # block the loop on purpose: this is what the watchdog detects
        for _ in range(100):
            await asyncio.sleep(0)
            if health._loop_lag is not None and health._loop_lag > 0.1:
                break
            await asyncio.sleep(0.005)
        assert health.liveness()[0] is False
    finally:
        await health.stop_watchdog()


async def test_health_report_shape(health: Health, fake_clock: FakeClock) -> None:
    health.add("db", lambda: None)
    fake_clock.advance(12.5)
    status, body = await health.report()
    assert status == 200
    assert body["status"] == "healthy" and body["service"] == "svc" and body["version"] == "1.2.3"
    assert body["uptime_seconds"] == 12.5 and body["timestamp"].endswith("Z")
    assert body["components"]["db"] == {"status": "healthy", "critical": True, "latency_ms": 0.0}
    health.add("broken", lambda: False)
    status, body = await health.report()
    assert status == 503 and body["status"] == "unhealthy"


async def test_endpoints_over_asgi(health: Health) -> None:
    from starlette.applications import Starlette

    app = Starlette(routes=health_routes(health))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        assert (await client.get("/livez")).status_code == 200
        response = await client.get("/readyz")
        assert response.status_code == 503 and response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"
        health.mark_ready()
        assert (await client.get("/readyz")).json()["status"] == "ready"
        head = await client.head("/health")
        assert head.status_code == 200 and head.content == b""
        assert (await client.post("/health")).status_code == 405


async def test_endpoint_rejects_unknown_kind(health: Health) -> None:
    with pytest.raises(ValueError):
        HealthEndpoint(health, "nope")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"cache_seconds": -1}, {"drain_seconds": -1}, {"loop_lag_interval": 0}]
)
def test_bad_configuration(kwargs) -> None:
    with pytest.raises(ConfigurationError):
        Health(service="s", version="v", **kwargs)


def test_bad_checks(health: Health) -> None:
    health.add("a", lambda: None)
    with pytest.raises(ConfigurationError, match="already registered"):
        health.add("a", lambda: None)
    with pytest.raises(ConfigurationError, match="callable"):
        health.add("b", 3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout"):
        health.add("c", lambda: None, timeout=0)

    @health.check(critical=False)
    def cache():
        return None

    assert [c.name for c in health.checks] == ["a", "cache"]


def test_defaults_come_from_settings() -> None:
    import surefoot

    surefoot.configure(service_name="billing", service_version="9.9")
    health = Health()
    assert (health.service, health.version) == ("billing", "9.9")


async def test_sigterm_drains_before_handing_over() -> None:
    handed = asyncio.Event()
    loop = asyncio.get_running_loop()
    received = []

    def server_handler(signum, frame):
        received.append(signum)
        loop.call_soon_threadsafe(handed.set)

    original = signal.signal(signal.SIGTERM, server_handler)
    health = Health(service="s", version="v", drain_seconds=0.05)
    try:
        health.mark_ready()
        assert health.install_signal_drain()
        signal.raise_signal(signal.SIGTERM)
        assert health.phase == "draining" and received == []
        await asyncio.wait_for(handed.wait(), 5)
        assert received == [signal.SIGTERM]
        health.remove_signal_drain()
        assert signal.getsignal(signal.SIGTERM) is server_handler
    finally:
        signal.signal(signal.SIGTERM, original)


def test_signal_drain_needs_a_delay() -> None:
    assert Health(service="s", version="v").install_signal_drain() is False


async def test_failures_are_logged_on_transitions_only(health: Health, fake_clock: FakeClock) -> None:
    from surefoot.logging import reset_logging
    from surefoot.testing import capture_logs

    state = {"up": True}
    health.add("db", lambda: state["up"])
    try:
        with capture_logs() as logs:
            await health.run()
            state["up"] = False
            for _ in range(3):
                fake_clock.advance(2)
                await health.run()
            state["up"] = True
            fake_clock.advance(2)
            await health.run()
    finally:
        reset_logging()
    assert logs.events() == ["health_check_failed", "health_check_recovered"]
    assert logs[0]["check"] == "db" and logs[0]["level"] == "warning" and logs[0]["critical"] is True


def test_defaults_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("SUREFOOT_HEALTH_DRAIN_SECONDS", "7.5")
    monkeypatch.setenv("SUREFOOT_HEALTH_CACHE_SECONDS", "0")
    health = Health(service="s", version="v")
    assert (health.drain_seconds, health.cache_seconds) == (7.5, 0.0)
    assert Health(service="s", version="v", drain_seconds=1).drain_seconds == 1
    monkeypatch.setenv("SUREFOOT_HEALTH_DRAIN_SECONDS", "-1")
    with pytest.raises(ConfigurationError, match="SUREFOOT_HEALTH_DRAIN_SECONDS"):
        Health(service="s", version="v")


def test_without_health_variables_the_defaults_are_those_of_health_settings(monkeypatch) -> None:
    # Without any SUREFOOT_HEALTH_* variable, Health takes its defaults without building
    # HealthSettings: they must be the settings class's own.
    import os

    from surefoot.health import HealthSettings
    from surefoot.health._health import _EnvironmentDefaults

    for name in list(os.environ):
        if name.upper().startswith("SUREFOOT_HEALTH_"):
            monkeypatch.delenv(name)
    loaded = HealthSettings()
    assert {name: getattr(_EnvironmentDefaults, name) for name in HealthSettings.model_fields} == loaded.model_dump()
    health = Health(service="s", version="v")
    assert (health.drain_seconds, health.cache_seconds, health.default_timeout, health.loop_lag_threshold,
            health.loop_lag_interval) == (loaded.drain_seconds, loaded.cache_seconds, loaded.check_timeout,
                                          loaded.loop_lag_threshold, loaded.loop_lag_interval)
    # a lower-case variable counts too (the settings are not case-sensitive)
    monkeypatch.setenv("surefoot_health_drain_seconds", "3")
    assert Health(service="s", version="v").drain_seconds == 3.0


async def test_a_hung_sync_check_does_not_pile_up_threads(health: Health, fake_clock: FakeClock) -> None:
    import threading

    release = threading.Event()
    started = []

    def hangs():
        started.append(1)
        release.wait(10)

    health.add("hangs", hangs, timeout=0.05)
    try:
        first = await health.run()
        assert first.components["hangs"].error == "timed out after 0.05s"
        fake_clock.advance(2)
        second = await health.run()
        assert second.components["hangs"].error == "the previous run (in a worker thread) has not returned yet"
        assert len(started) == 1
    finally:
        release.set()


async def test_check_metrics(registry, fake_clock: FakeClock) -> None:
    from surefoot.testing import metric_value

    state = {"up": True}
    health = Health(service="s", version="v", clock=fake_clock, registry=registry)
    health.add("db", lambda: state["up"])
    await health.run()
    assert metric_value(registry, "health_check_status", {"check": "db", "status": "healthy"}) == 1
    assert metric_value(registry, "health_check_duration_seconds_count", {"check": "db"}) == 1
    state["up"] = False
    fake_clock.advance(2)
    await health.run()
    assert metric_value(registry, "health_check_status", {"check": "db", "status": "healthy"}) == 0
    assert metric_value(registry, "health_check_status", {"check": "db", "status": "unhealthy"}) == 1
    other = Health(service="s", version="v", registry=registry)
    other.use_registry(None, metrics=False)  # a registry given explicitly is kept
    assert other._registry is registry and other._metrics_on


async def test_no_metrics_when_off(registry) -> None:
    health = Health(service="s", version="v", metrics=False)
    health.use_registry(registry, metrics=False)
    health.add("db", lambda: None)
    await health.run()
    assert registry.get_sample_value("health_check_duration_seconds_count", {"check": "db"}) is None
