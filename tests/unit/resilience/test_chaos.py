"""Chaos: fault, latency and result injection; off unless enabled; reproducible with a seed."""

from __future__ import annotations

import random

import httpx
import pytest

from surefoot.errors import ConfigurationError
from surefoot.resilience import Chaos, ChaosError
from surefoot.testing import EventRecorder, no_waits, provider_failures


def ok():
    return "real"


def test_off_unless_enabled(monkeypatch):
    monkeypatch.delenv("SUREFOOT_CHAOS_ENABLED", raising=False)
    chaos = Chaos(fault_rate=1.0)
    assert not chaos.enabled
    assert chaos.call(ok) == "real"


def test_enabled_from_the_environment(monkeypatch):
    monkeypatch.setenv("SUREFOOT_CHAOS_ENABLED", "true")
    assert Chaos(fault_rate=1.0).enabled


def test_from_settings_reads_rates_and_seed(monkeypatch):
    monkeypatch.setenv("SUREFOOT_CHAOS_ENABLED", "1")
    monkeypatch.setenv("SUREFOOT_CHAOS_FAULT_RATE", "0.5")
    monkeypatch.setenv("SUREFOOT_CHAOS_SEED", "11")
    a, b = Chaos.from_settings("x"), Chaos.from_settings("x")
    outcomes = []
    for chaos in (a, b):
        seq = []
        for _ in range(50):
            try:
                chaos.call(ok)
                seq.append(0)
            except ChaosError:
                seq.append(1)
        outcomes.append(seq)
    assert outcomes[0] == outcomes[1] and 10 < sum(outcomes[0]) < 40


def test_bad_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("SUREFOOT_CHAOS_FAULT_RATE", "2")
    with pytest.raises(ConfigurationError, match="SUREFOOT_CHAOS_FAULT_RATE"):
        Chaos.from_settings()


@pytest.mark.parametrize(
    "options", [{"fault_rate": 1.5}, {"latency_rate": -0.1}, {"result_rate": 0.5}, {"latency": (2, 1)}, {"burst": 0}]
)
def test_bad_options(options):
    with pytest.raises(ConfigurationError):
        Chaos(enabled=True, **options)


def test_fault_injection_with_instance_class_and_factory():
    assert isinstance(_raised(Chaos(enabled=True, fault_rate=1.0)), ChaosError)
    assert isinstance(_raised(Chaos(enabled=True, fault_rate=1.0, fault=TimeoutError)), TimeoutError)
    err = ConnectionResetError("reset")
    assert _raised(Chaos(enabled=True, fault_rate=1.0, fault=err)) is err


def _raised(chaos):
    try:
        chaos.call(ok)
    except BaseException as exc:  # noqa: BLE001 - the test returns whatever was injected
        return exc
    return None


def test_rate_is_respected_statistically(registry):
    chaos = Chaos(name="twilio", enabled=True, fault_rate=0.2, rng=random.Random(5), registry=registry)
    faults = sum(_raised(chaos) is not None for _ in range(5000))
    assert 850 < faults < 1150
    assert chaos.injected["fault"] == faults
    assert registry.get_sample_value(
        "resilience_events_total", {"component": "chaos", "name": "twilio", "event": "fault"}
    ) == faults


def test_latency_uses_the_injected_clock(fake_clock):
    events = EventRecorder()
    chaos = Chaos(enabled=True, latency_rate=1.0, latency=(0.5, 2.0), clock=fake_clock, rng=random.Random(1),
                  hooks=events.hooks)
    assert chaos.call(ok) == "real"
    assert len(fake_clock.sleeps) == 1 and 0.5 <= fake_clock.sleeps[0] <= 2.0
    assert events.of("chaos")[0].attributes["what"] == "latency"
    with no_waits():
        chaos.call(ok)
    assert len(fake_clock.sleeps) == 1


def test_result_injection_and_bursts():
    chaos = Chaos(enabled=True, result_rate=0.01, result=lambda: "fake", burst=4, rng=random.Random(0))
    seq = [chaos.call(ok) for _ in range(2000)]
    first = seq.index("fake")
    assert seq[first:first + 4] == ["fake"] * 4


async def test_async_injection(fake_clock):
    chaos = Chaos(enabled=True, latency_rate=1.0, latency=1.0, fault_rate=1.0, clock=fake_clock)

    async def call():
        return "real"

    with pytest.raises(ChaosError):
        await chaos.acall(call)
    assert fake_clock.sleeps == [1.0]

    @Chaos(enabled=True, result_rate=1.0, result=lambda: "fake")
    async def decorated():
        return "real"

    assert await decorated() == "fake"


def test_http_presets():
    resp = Chaos.http_status(429, retry_after=2).call(ok)
    assert isinstance(resp, httpx.Response) and resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    with pytest.raises(httpx.ReadTimeout):
        Chaos.http_timeout().call(ok)
    with pytest.raises(httpx.ConnectError):
        Chaos.connection_reset().call(ok)


def test_provider_failure_presets_are_reproducible():
    a = provider_failures("429", rate=0.1, seed=3)
    b = provider_failures("429", rate=0.1, seed=3)

    def statuses(chaos):
        out = []
        for _ in range(100):
            r = chaos.call(ok)
            out.append(r.status_code if isinstance(r, httpx.Response) else 200)
        return out

    sa = statuses(a)
    assert sa == statuses(b) and 429 in sa
    assert provider_failures("5xx").call(ok).status_code == 503
    with pytest.raises(httpx.ReadTimeout):
        provider_failures("timeout").call(ok)
    with pytest.raises(httpx.ConnectError):
        provider_failures("reset").call(ok)
    with pytest.raises(ValueError):
        provider_failures("meteor")
