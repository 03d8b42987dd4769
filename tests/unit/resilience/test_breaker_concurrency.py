"""Half-open admits exactly what it should, under real threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import random
import sys
import threading

import pytest

from surefoot.resilience import CircuitBreaker, CircuitOpenError, CircuitState
from surefoot.testing import FakeClock


def opened(permits: int, clock: FakeClock, registry, **kw) -> CircuitBreaker:
    b = CircuitBreaker(
        "c", failure_threshold=1, open_duration=10, half_open_permits=permits, clock=clock,
        registry=registry, half_open_max_wait=None, **kw,
    )
    b.acquire()
    b.on_error(0.0, ConnectionError())
    clock.advance(10)
    return b


@pytest.mark.parametrize("permits", [1, 3, 10])
def test_threads_half_open_admits_exactly_n(permits, registry):
    clock = FakeClock()
    b = opened(permits, clock, registry)
    n_threads = 16
    barrier = threading.Barrier(n_threads)
    release = threading.Event()
    admitted: list[int] = []
    rejected: list[int] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            b.acquire()
        except CircuitOpenError:
            rejected.append(i)
            return
        admitted.append(i)
        release.wait(5)  # the protected call is in flight; no lock is held
        b.on_success(0.01)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    # Every non-admitted thread has been rejected while the admitted ones are still running.
    for _ in range(500):
        if len(admitted) + len(rejected) == n_threads:
            break
        threading.Event().wait(0.01)
    assert len(admitted) == permits
    assert b.state == CircuitState.HALF_OPEN
    release.set()
    for t in threads:
        t.join()
    assert len(rejected) == n_threads - permits
    assert b.state == CircuitState.CLOSED


@pytest.mark.parametrize("permits", [1, 4])
async def test_asyncio_half_open_admits_exactly_n(permits, registry):
    clock = FakeClock()
    b = opened(permits, clock, registry)
    gate = asyncio.Event()
    running = 0
    peak = 0

    async def probe() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return "ok"

    tasks = [asyncio.create_task(b.acall(probe)) for _ in range(20)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert peak == permits
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(1 for r in results if r == "ok") == permits
    assert sum(1 for r in results if isinstance(r, CircuitOpenError)) == 20 - permits
    assert b.state == CircuitState.CLOSED


async def test_cancelled_probe_task_releases_its_permit(registry):
    clock = FakeClock()
    b = opened(1, clock, registry)
    gate = asyncio.Event()

    async def hang():
        await gate.wait()

    task = asyncio.create_task(b.acall(hang))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await b.acall(hang)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.state == CircuitState.HALF_OPEN

    async def fine():
        return 1

    assert await b.acall(fine) == 1
    assert b.state == CircuitState.CLOSED


def test_threads_traffic_percentage_within_bounds(registry):
    clock = FakeClock()
    b = CircuitBreaker(
        "p", failure_threshold=1, open_duration=10, half_open_traffic=0.10, half_open_window=300,
        clock=clock, registry=registry, rng=random.Random(1234),
    )
    b.acquire()
    b.on_error(0.0, ConnectionError())
    clock.advance(10)
    admitted = 0
    lock = threading.Lock()
    per_thread, n_threads = 2_500, 4

    def worker() -> None:
        nonlocal admitted
        mine = 0
        for _ in range(per_thread):
            try:
                b.acquire()
            except CircuitOpenError:
                continue
            mine += 1
            b.on_success(0.0)
        with lock:
            admitted += mine

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = per_thread * n_threads
    # binomial(10000, 0.1): sd = 30; +-5 sd
    assert abs(admitted - 0.1 * total) < 150
    assert b.state == CircuitState.HALF_OPEN


def test_threads_failure_rate_trips_once(registry):
    clock = FakeClock()
    b = CircuitBreaker("r", failure_rate_threshold=0.5, window_size=50, clock=clock, registry=registry)
    opened_events = []
    b.hooks.add(lambda e: opened_events.append(e) if e.kind == "state_change" else None)

    def worker() -> None:
        for _ in range(500):
            try:
                b.acquire()
            except CircuitOpenError:
                continue
            b.on_error(0.0, ConnectionError())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.state == CircuitState.OPEN
    assert [e.attributes["to_state"] for e in opened_events] == ["open"]


@pytest.mark.parametrize("window", ["count", "time"])
def test_threads_lose_no_outcome_in_windows(window, registry):
    """Lock-free successes and locked failures from many threads add up exactly."""
    size = 100_000 if window == "count" else 3600
    # never judged: more calls than the test makes (24 000) must be seen first
    minimum = size if window == "count" else 10**9
    b = CircuitBreaker("lossless", failure_rate_threshold=1.0, window=window, window_size=size,
                       minimum_calls=minimum, registry=registry)
    n_threads, per_thread = 8, 3_000

    def worker(i: int) -> None:
        for k in range(per_thread):
            try:
                # successes only at first (the lock-free paths), then some failures that
                # race with other threads' lock-free successes
                b.call(_maybe_fail, k >= per_thread // 2 and k % 5 == 0)
            except ConnectionError:
                pass

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to provoke races
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    stats = b.get_stats()
    total = n_threads * per_thread
    failures = n_threads * len([k for k in range(per_thread // 2, per_thread) if k % 5 == 0])
    assert stats["window_calls"] == total
    assert stats["failure_count"] == failures
    assert stats["failure_rate"] == pytest.approx(failures / total)


def _maybe_fail(fail: bool) -> str:
    if fail:
        raise ConnectionError
    return "ok"
