"""Process saturation: CPU, memory, file descriptors and event-loop lag, sampled by a task.

``surefoot.install(app)`` runs a :class:`ProcessMonitor` on the application's event loop
while it serves (unless metrics are off). Each sample sets gauges in the process default
registry:

* ``cpu_utilization_percent`` — CPU time used since the previous sample divided by the wall
  time and by the CPUs available to the process (cgroup quota, else CPU affinity, else
  ``os.cpu_count()``), so 100 means the process uses every CPU it may use;
* ``memory_utilization_percent`` — resident memory divided by the memory available to the
  process (cgroup limit, else physical memory);
* ``process_open_file_descriptors``, ``process_max_file_descriptors`` and
  ``process_file_descriptors_utilization_percent``;
* ``event_loop_lag_seconds`` — how late the loop ran the monitor's timer;
* in multi-worker mode also the pool gauges of instrumented engines, so the endpoint can
  add every worker's pools together.

Under ``PROMETHEUS_MULTIPROC_DIR`` each worker writes its own value and the endpoint sums
CPU, memory and descriptors over the live workers (a share of the machine, so the sum is still
at most 100) and takes the largest lag and utilisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from .._core import catalogue as cat
from .._core.settings import get_settings, prefix_in_environment
from .._core.state import default_registry
from ..errors import ConfigurationError

__all__ = ["ProcessMonitor", "available_cpus", "available_memory_bytes", "resident_memory_bytes"]

_CGROUP = Path("/sys/fs/cgroup")
#: ``MetricsSettings.process_interval``'s default, used as it is when no ``SUREFOOT_METRICS_*``
#: variable is set (the settings are then not loaded).
_DEFAULT_INTERVAL = 5.0


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def available_cpus() -> float:
    """CPUs this process may use: the cgroup v2 quota, else its affinity, else the CPU count."""
    quota = _read(_CGROUP / "cpu.max")
    if quota:
        parts = quota.split()
        if len(parts) == 2 and parts[0] != "max":
            with contextlib.suppress(ValueError, ZeroDivisionError):
                return max(0.01, int(parts[0]) / int(parts[1]))
    if hasattr(os, "sched_getaffinity"):
        return float(len(os.sched_getaffinity(0)) or 1)
    return float(os.cpu_count() or 1)


def available_memory_bytes() -> float | None:
    """Memory this process may use: the cgroup limit (v2, else v1) when below physical memory,
    else physical memory (None if unknown)."""
    physical: float | None = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        physical = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in (_CGROUP / "memory.max", _CGROUP / "memory" / "memory.limit_in_bytes"):
        limit = _read(path)
        if limit and limit.isdigit():
            # cgroup v1 reports "no limit" as a huge number
            return float(limit) if physical is None else min(float(limit), physical)
    return physical


def resident_memory_bytes() -> float | None:
    """The process's resident memory now (Linux ``/proc``; elsewhere psutil if installed)."""
    statm = _read(Path("/proc/self/statm"))
    if statm:
        with contextlib.suppress(ValueError, IndexError, OSError):
            return float(int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    try:
        import psutil
    except ImportError:
        return None
    return float(psutil.Process().memory_info().rss)


def _open_fds() -> float | None:
    for directory in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return float(len(os.listdir(directory)))
    return None


def _fd_limit() -> int:
    try:
        import resource  # not on Windows
    except ImportError:
        return -1
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class ProcessMonitor:
    """Samples the process's saturation into gauges every ``interval`` seconds.

    Args:
        registry: where the gauges live (default: the process default registry).
        interval: seconds between samples (default ``SUREFOOT_METRICS_PROCESS_INTERVAL``, 5).

    Raises:
        ConfigurationError: ``interval`` is not positive.
    """

    def __init__(self, *, registry: Any = None, interval: float | None = None) -> None:
        if interval is None:
            interval = _DEFAULT_INTERVAL
            if prefix_in_environment("SUREFOOT_METRICS_"):
                from ._labels import metrics_settings

                interval = metrics_settings().process_interval
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ConfigurationError(f"ProcessMonitor interval must be > 0 seconds; got {interval!r}")
        self.interval = float(interval)
        self.registry = registry if registry is not None else default_registry()
        self._task: asyncio.Task[None] | None = None
        self._cpus = available_cpus()
        self._memory = available_memory_bytes()
        self._last = (time.monotonic(), _cpu_seconds())
        self._gauges: dict[str, Any] | None = None

    def _meters(self) -> dict[str, Any]:
        if self._gauges is None:
            reg = self.registry
            self._gauges = {
                "cpu": cat.CPU_UTILIZATION.get(reg),
                "memory": cat.MEMORY_UTILIZATION.get(reg),
                "fds": cat.PROCESS_OPEN_FDS.get(reg),
                "max_fds": cat.PROCESS_MAX_FDS.get(reg),
                "fds_pct": cat.PROCESS_FDS_UTILIZATION.get(reg),
                "lag": cat.EVENT_LOOP_LAG.get(reg),
            }
        return self._gauges

    def sample(self, loop_lag: float | None = None) -> dict[str, float]:
        """Take one sample now, set the gauges and return the values set.

        Args:
            loop_lag: the event-loop lag measured by the caller, in seconds.

        Returns:
            ``{"cpu_utilization_percent": ..., "memory_utilization_percent": ..., ...}`` with
            the values this platform could measure.
        """
        now, cpu = time.monotonic(), _cpu_seconds()
        then, cpu_then = self._last
        self._last = (now, cpu)
        values: dict[str, float] = {}
        if now > then:
            values["cpu_utilization_percent"] = max(0.0, 100.0 * (cpu - cpu_then) / (now - then) / self._cpus)
        rss = resident_memory_bytes()
        if rss is not None and self._memory:
            values["memory_utilization_percent"] = 100.0 * rss / self._memory
        fds = _open_fds()
        soft = _fd_limit()
        if fds is not None:
            values["process_open_file_descriptors"] = fds
        if soft > 0:
            values["process_max_file_descriptors"] = float(soft)
            if fds is not None:
                values["process_file_descriptors_utilization_percent"] = 100.0 * fds / soft
        if loop_lag is not None:
            values["event_loop_lag_seconds"] = max(0.0, loop_lag)
        if not get_settings().metrics_enabled:
            return values
        gauges = self._meters()
        for key, name in (("cpu", "cpu_utilization_percent"), ("memory", "memory_utilization_percent"),
                          ("fds", "process_open_file_descriptors"), ("max_fds", "process_max_file_descriptors"),
                          ("fds_pct", "process_file_descriptors_utilization_percent"),
                          ("lag", "event_loop_lag_seconds")):
            if name in values:
                gauges[key].set(values[name])
        _publish_pools(self.registry)
        return values

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled, measuring the loop lag too."""
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.sample(loop_lag=loop.time() - expected)

    def start(self) -> asyncio.Task[None]:
        """Start :meth:`run` as a task on the running loop (idempotent) and take a first sample."""
        if self._task is None or self._task.done():
            self.sample()
            self._task = asyncio.get_running_loop().create_task(self.run(), name="surefoot-process-monitor")
        return self._task

    async def stop(self) -> None:
        """Stop the task started by :meth:`start`."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


_MP_REGISTRY: Any = None


def _publish_pools(registry: Any) -> None:
    """In multi-worker mode, copy this worker's pool readings into the shared gauges."""
    from . import multiprocess

    if not multiprocess.is_active():
        return
    from ._db import pool_readings

    readings = pool_readings(registry)
    if not readings:
        return
    global _MP_REGISTRY
    if _MP_REGISTRY is None:
        from prometheus_client import CollectorRegistry

        # The values live in the shared files; this registry only keeps the families apart
        # from the in-process collector that reads the pools at scrape time.
        _MP_REGISTRY = CollectorRegistry(auto_describe=False)
    specs = (cat.DB_CONNECTIONS_IN_USE, cat.DB_CONNECTIONS_IDLE, cat.DB_CONNECTIONS_OVERFLOW,
             cat.DB_CONNECTIONS_MAX)
    for name, values in readings.items():
        for spec, value in zip(specs, values, strict=False):
            if value is not None:
                spec.get(_MP_REGISTRY).labels(name).set(value)
        in_use, maximum = values[0], values[3]
        if maximum:
            cat.DB_CONNECTIONS_UTILIZATION.get(_MP_REGISTRY).labels(name).set(100.0 * (in_use or 0.0) / maximum)
