"""RedisCircuitBreaker without a Redis server: the extra, the options, the local fallback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry

from surefoot.errors import MissingExtraError
from surefoot.resilience import CircuitOpenError, CircuitState, RedisCircuitBreaker
from surefoot.testing import FakeClock


def test_missing_redis_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # makes `import redis` fail
    with pytest.raises(MissingExtraError, match=r"surefoot\[redis\]"):
        RedisCircuitBreaker("x")


def test_importing_surefoot_resilience_does_not_import_redis(subprocess_env):
    code = "import surefoot.resilience, sys; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_name_required():
    from surefoot.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        RedisCircuitBreaker("", url="redis://127.0.0.1:1/0")


def test_local_fallback_runs_the_whole_state_machine():
    clock = FakeClock()
    b = RedisCircuitBreaker(
        "nowhere", url="redis://127.0.0.1:1/0", failure_threshold=1, open_duration=10,
        clock=clock, registry=CollectorRegistry(), retry_interval=1e9, socket_timeout=0.2,
    )
    with pytest.raises(ConnectionError):
        b.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    with pytest.raises(CircuitOpenError):
        b.acquire()
    clock.advance(10)
    b.acquire()
    b.release()
    assert b.call(lambda: 1) == 1
    assert b.state == CircuitState.CLOSED
    b.force_open()
    with pytest.raises(CircuitOpenError):
        b.acquire()
    b.reset()
    assert b.get_stats()["shared"] is False


async def test_local_fallback_async():
    clock = FakeClock()
    b = RedisCircuitBreaker(
        "nowhere-async", url="redis://127.0.0.1:1/0", failure_threshold=1, open_duration=10,
        clock=clock, registry=CollectorRegistry(), retry_interval=1e9, socket_timeout=0.2,
    )

    async def boom():
        raise ConnectionError

    with pytest.raises(ConnectionError):
        await b.acall(boom)
    with pytest.raises(CircuitOpenError):
        await b.aacquire()
    clock.advance(10)
    await b.aacquire()
    await b.aon_result(0.1, "ok")
    assert b.state == CircuitState.CLOSED
    assert (await b.aget_stats())["shared"] is False
