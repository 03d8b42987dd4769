"""ProcessMonitor's CPU arithmetic with an injected clock: CPU time used since the previous
sample ÷ wall time ÷ the CPUs the process may use, so 100 means every available CPU is busy."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from surefoot.metrics import ProcessMonitor


def _cpus_available() -> float:
    """The rule docs/metrics.md states: the cgroup v2 quota, else the affinity, else the count."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(0.01, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    if hasattr(os, "sched_getaffinity"):
        return float(len(os.sched_getaffinity(0)))
    return float(os.cpu_count() or 1)


class Machine:
    """A wall clock and a CPU-time counter that move only when the test says so."""

    def __init__(self) -> None:
        self.wall = 1000.0
        self.cpu = 50.0

    def monotonic(self) -> float:
        return self.wall

    def times(self) -> SimpleNamespace:
        return SimpleNamespace(user=self.cpu * 0.75, system=self.cpu * 0.25)

    def run(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Machine:
    fake = Machine()
    monkeypatch.setattr(time, "monotonic", fake.monotonic)
    monkeypatch.setattr(os, "times", fake.times)
    return fake


def test_cpu_utilisation_is_cpu_time_over_wall_time_over_available_cpus(machine: Machine) -> None:
    cpus = _cpus_available()
    registry = CollectorRegistry()
    monitor = ProcessMonitor(registry=registry, interval=5)
    machine.run(wall=4.0, cpu=4.0 * cpus)  # every available CPU busy for the whole interval
    assert monitor.sample()["cpu_utilization_percent"] == pytest.approx(100.0)
    machine.run(wall=8.0, cpu=2.0 * cpus)  # a quarter of them
    assert monitor.sample()["cpu_utilization_percent"] == pytest.approx(25.0)
    assert registry.get_sample_value("cpu_utilization_percent") == pytest.approx(25.0)
    machine.run(wall=10.0, cpu=0.0)  # idle
    assert monitor.sample()["cpu_utilization_percent"] == 0.0


def test_no_wall_time_since_the_last_sample_leaves_the_cpu_gauge_alone(machine: Machine) -> None:
    registry = CollectorRegistry()
    monitor = ProcessMonitor(registry=registry, interval=5)
    machine.run(wall=2.0, cpu=1.0)
    first = monitor.sample()["cpu_utilization_percent"]
    machine.run(wall=0.0, cpu=3.0)
    assert "cpu_utilization_percent" not in monitor.sample()
    assert registry.get_sample_value("cpu_utilization_percent") == first


def test_loop_lag_given_to_a_sample_is_the_gauge_and_never_negative() -> None:
    registry = CollectorRegistry()
    monitor = ProcessMonitor(registry=registry, interval=5)
    assert monitor.sample(loop_lag=0.25)["event_loop_lag_seconds"] == 0.25
    assert registry.get_sample_value("event_loop_lag_seconds") == 0.25
    assert monitor.sample(loop_lag=-0.001)["event_loop_lag_seconds"] == 0.0
    monitor.sample()  # no lag measured: the last one stays
    assert registry.get_sample_value("event_loop_lag_seconds") == 0.0
