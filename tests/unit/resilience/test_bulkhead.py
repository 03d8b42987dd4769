"""Bulkhead: concurrency cap for threads and tasks, bounded waits, clear rejections, gauge."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot.errors import ConfigurationError, ServiceUnavailableError
from surefoot.resilience import Bulkhead, BulkheadFullError
from surefoot.testing import EventRecorder


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_size(bad):
    with pytest.raises(ConfigurationError, match="max_concurrent"):
        Bulkhead(bad)


def test_bad_wait():
    with pytest.raises(ConfigurationError, match="max_wait"):
        Bulkhead(1, max_wait=-1)


def test_rejection_is_clear_and_counted(registry):
    events = EventRecorder()
    bulkhead = Bulkhead(1, name="twilio", hooks=events.hooks, registry=registry)
    bulkhead.acquire()
    assert registry.get_sample_value("bulkhead_available_concurrent_calls", {"name": "twilio"}) == 0
    with pytest.raises(BulkheadFullError) as info:
        bulkhead.acquire()
    assert isinstance(info.value, ServiceUnavailableError)
    assert "all 1 concurrent call slots are busy" in str(info.value) and info.value.code == "BULKHEAD_FULL"
    assert events.kinds() == ["rejected"]
    assert registry.get_sample_value(
        "resilience_events_total", {"component": "bulkhead", "name": "twilio", "event": "rejected"}
    ) == 1
    bulkhead.release()
    assert registry.get_sample_value("bulkhead_available_concurrent_calls", {"name": "twilio"}) == 1


def test_threads_never_exceed_the_cap():
    bulkhead = Bulkhead(3, max_wait=10)
    active = 0
    peak = 0
    lock = threading.Lock()
    gate = threading.Barrier(3)

    def work(i):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        if i < 3:
            gate.wait(5)  # the first three hold their slots together
        with lock:
            active -= 1

    threads = [threading.Thread(target=bulkhead.call, args=(work, i)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak == 3
    assert bulkhead.available == 3


def test_sync_wait_is_bounded():
    bulkhead = Bulkhead(1, max_wait=0.05)
    bulkhead.acquire()
    with pytest.raises(BulkheadFullError, match="after waiting 0.05s"):
        bulkhead.acquire()
    bulkhead.release()


def test_sync_waiter_gets_a_freed_slot():
    bulkhead = Bulkhead(1, max_wait=10)
    bulkhead.acquire()
    got = threading.Event()

    def waiter():
        bulkhead.acquire()
        got.set()
        bulkhead.release()

    t = threading.Thread(target=waiter)
    t.start()
    bulkhead.release()
    t.join(10)
    assert got.is_set() and bulkhead.available == 1


async def test_tasks_never_exceed_the_cap():
    bulkhead = Bulkhead(2, max_wait=10)
    active = 0
    peak = 0

    async def work():
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        active -= 1

    await asyncio.gather(*(bulkhead.acall(work) for _ in range(20)))
    assert peak == 2 and bulkhead.available == 2


async def test_async_rejects_without_wait_and_with_bounded_wait():
    bulkhead = Bulkhead(1)
    await bulkhead.aacquire()
    with pytest.raises(BulkheadFullError):
        await bulkhead.aacquire()
    waiting = Bulkhead(1, max_wait=0.02)
    await waiting.aacquire()
    with pytest.raises(BulkheadFullError):
        await waiting.aacquire()
    waiting.release()
    assert waiting.available == 1


async def test_waiting_tasks_are_served_in_order():
    bulkhead = Bulkhead(1, max_wait=10)
    await bulkhead.aacquire()
    order = []

    async def waiter(i):
        await bulkhead.aacquire()
        order.append(i)
        bulkhead.release()

    tasks = [asyncio.ensure_future(waiter(i)) for i in range(5)]
    await asyncio.sleep(0)
    bulkhead.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert bulkhead.available == 1


async def test_cancelled_waiter_does_not_leak_a_slot():
    bulkhead = Bulkhead(1, max_wait=10)
    await bulkhead.aacquire()
    task = asyncio.ensure_future(bulkhead.aacquire())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    bulkhead.release()
    assert bulkhead.available == 1


async def test_slot_freed_by_a_thread_wakes_a_task():
    bulkhead = Bulkhead(1, max_wait=10)
    bulkhead.acquire()
    task = asyncio.ensure_future(bulkhead.aacquire())
    await asyncio.sleep(0)
    await asyncio.to_thread(bulkhead.release)
    await asyncio.wait_for(task, 5)
    assert bulkhead.available == 0
    bulkhead.release()
    assert bulkhead.available == 1


def test_context_managers_and_decorators():
    bulkhead = Bulkhead(1)
    with bulkhead:
        assert bulkhead.available == 0
    assert bulkhead.available == 1

    @bulkhead
    def f():
        return bulkhead.available

    assert f() == 0 and bulkhead.available == 1


async def test_async_context_manager_and_decorator():
    bulkhead = Bulkhead(1)
    async with bulkhead:
        assert bulkhead.available == 0

    @bulkhead
    async def f():
        return bulkhead.available

    assert await f() == 0 and bulkhead.available == 1


def test_slot_released_when_the_call_fails():
    bulkhead = Bulkhead(1)
    with pytest.raises(ZeroDivisionError):
        bulkhead.call(lambda: 1 / 0)
    assert bulkhead.available == 1


async def test_mixed_threads_and_tasks_under_contention():
    bulkhead = Bulkhead(3, max_wait=10)
    active = 0
    peak = 0
    lock = threading.Lock()

    def enter():
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)

    def leave():
        nonlocal active
        with lock:
            active -= 1

    def thread_work():
        for _ in range(50):
            bulkhead.acquire()
            try:
                enter()
                leave()
            finally:
                bulkhead.release()

    async def task_work():
        for _ in range(50):
            await bulkhead.aacquire()
            try:
                enter()
                await asyncio.sleep(0)
                leave()
            finally:
                bulkhead.release()

    threads = [threading.Thread(target=thread_work) for _ in range(4)]
    for t in threads:
        t.start()
    await asyncio.gather(*(task_work() for _ in range(6)))
    for t in threads:
        await asyncio.to_thread(t.join, 10)
    assert peak <= 3
    assert bulkhead.available == 3


def test_try_acquire():
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire() and not bulkhead.try_acquire()
    bulkhead.release()
    assert "1/1 free" in repr(bulkhead)


@given(st.lists(st.booleans(), max_size=200), st.integers(1, 5))
@settings(max_examples=100, deadline=None)
def test_available_slots_stay_within_bounds(ops, size):
    bulkhead = Bulkhead(size)
    held = 0
    for take in ops:
        if take:
            if bulkhead.try_acquire():
                held += 1
            else:
                assert held == size
        elif held:
            bulkhead.release()
            held -= 1
        assert bulkhead.available == size - held
