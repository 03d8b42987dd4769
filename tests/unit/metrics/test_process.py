"""ProcessMonitor: CPU, memory, file descriptors and event-loop lag as gauges."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import pytest
from prometheus_client import CollectorRegistry

import surefoot
from surefoot.errors import ConfigurationError
from surefoot.metrics import ProcessMonitor
from surefoot.metrics._process import available_cpus, available_memory_bytes, resident_memory_bytes
from surefoot.testing import fresh_registry


def _gauge(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name)


def test_sample_sets_the_saturation_gauges(tmp_path) -> None:
    registry = CollectorRegistry()
    monitor = ProcessMonitor(registry=registry, interval=60)
    end = time.process_time() + 0.2
    while time.process_time() < end:  # burn CPU so the next sample sees it
        pass
    values = monitor.sample()
    assert values["cpu_utilization_percent"] > 0
    assert _gauge(registry, "cpu_utilization_percent") == values["cpu_utilization_percent"]
    assert 0 < _gauge(registry, "memory_utilization_percent") < 100
    before = _gauge(registry, "process_open_file_descriptors")
    with contextlib.ExitStack() as files:
        for i in range(10):
            files.enter_context(open(tmp_path / f"f{i}", "w"))
        monitor.sample()
        assert _gauge(registry, "process_open_file_descriptors") == before + 10
    assert _gauge(registry, "process_max_file_descriptors") > 10
    assert 0 < _gauge(registry, "process_file_descriptors_utilization_percent") < 100


def test_memory_follows_resident_memory() -> None:
    registry = CollectorRegistry()
    monitor = ProcessMonitor(registry=registry, interval=60)
    monitor.sample()
    before = _gauge(registry, "memory_utilization_percent")
    block = bytearray(os.urandom(1)) * (64 * 1024 * 1024)  # 64 MiB, touched
    try:
        monitor.sample()
        grown = _gauge(registry, "memory_utilization_percent") - before
        expected = 100.0 * len(block) / available_memory_bytes()
        assert grown == pytest.approx(expected, rel=0.35)
    finally:
        del block


def test_platform_readings_are_sane() -> None:
    assert available_cpus() > 0
    assert available_memory_bytes() > resident_memory_bytes() > 0


async def test_the_running_monitor_measures_event_loop_lag() -> None:
    registry = CollectorRegistry()
    monitor = ProcessMonitor(registry=registry, interval=0.05)
    monitor.start()
    try:
        await asyncio.sleep(0.12)
        time.sleep(0.3)  # a handler blocking the loop: the thing being measured
        for _ in range(50):
            await asyncio.sleep(0.02)
            lag = _gauge(registry, "event_loop_lag_seconds")
            if lag is not None and lag >= 0.2:
                break
        assert lag is not None and lag >= 0.2
    finally:
        await monitor.stop()
    assert monitor._task is None


def test_bad_interval_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        ProcessMonitor(interval=0)


def test_metrics_off_samples_without_registering() -> None:
    registry = CollectorRegistry()
    surefoot.configure(metrics_enabled=False)
    values = ProcessMonitor(registry=registry, interval=1).sample()
    assert "memory_utilization_percent" in values
    assert list(registry.collect()) == []


def test_install_runs_the_monitor_while_the_app_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    monkeypatch.setenv("SUREFOOT_METRICS_PROCESS_INTERVAL", "0.05")
    with fresh_registry():
        app = FastAPI()
        surefoot.install(app, logging=False)
        with TestClient(app) as client:
            text = client.get("/metrics").text
        assert "cpu_utilization_percent " in text
        assert "memory_utilization_percent " in text
        assert "process_open_file_descriptors " in text


def test_interval_default_without_metrics_variables_is_that_of_metrics_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without any SUREFOOT_METRICS_* variable the monitor does not load MetricsSettings: its
    # default must be the settings class's own; with one, the settings are read and checked.
    from surefoot.metrics import MetricsSettings

    for name in list(os.environ):
        if name.upper().startswith("SUREFOOT_METRICS_"):
            monkeypatch.delenv(name)
    assert ProcessMonitor().interval == MetricsSettings().process_interval
    monkeypatch.setenv("SUREFOOT_METRICS_PROCESS_INTERVAL", "0.5")
    assert ProcessMonitor().interval == 0.5
    monkeypatch.setenv("SUREFOOT_METRICS_PROCESS_INTERVAL", "0")
    with pytest.raises(ConfigurationError, match="SUREFOOT_METRICS_PROCESS_INTERVAL"):
        ProcessMonitor()
