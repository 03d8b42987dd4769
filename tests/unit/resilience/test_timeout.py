"""Timeouts: async cancellation, honest sync modes, the named table and clamping."""

from __future__ import annotations

import asyncio
import threading

import pytest

from surefoot.errors import ConfigurationError, ServiceUnavailableError
from surefoot.resilience import (
    CallTimeoutError,
    Timeout,
    get_timeout,
    set_timeout,
    validate_timeout,
)
from surefoot.resilience._timeout import DEFAULT_TIMEOUT, DEFAULT_TIMEOUTS
from surefoot.testing import EventRecorder

# ----------------------------------------------------------------- table


def test_table_values_are_positive_and_ordered_sensibly():
    assert all(v > 0 for v in DEFAULT_TIMEOUTS.values())
    assert DEFAULT_TIMEOUTS["connect"] < DEFAULT_TIMEOUTS["api_call"] <= DEFAULT_TIMEOUTS["agent_creation"]
    assert DEFAULT_TIMEOUTS["agent_command"] > DEFAULT_TIMEOUTS["http_request"]


def test_get_known_and_unknown_timeouts():
    assert get_timeout("http_request") == 10.0
    assert get_timeout("no-such-operation") == DEFAULT_TIMEOUT
    assert get_timeout("no-such-operation", default=3) == 3
    for name in DEFAULT_TIMEOUTS:
        assert get_timeout(name) == DEFAULT_TIMEOUTS[name]


def test_set_timeout_overrides_and_restores():
    set_timeout("http_request", 2.5)
    try:
        assert get_timeout("http_request") == 2.5
    finally:
        set_timeout("http_request", None)
    assert get_timeout("http_request") == 10.0


@pytest.mark.parametrize(
    ("value", "bounds", "expected"),
    [(5, (), 5.0), (0.01, (), 0.1), (1e6, (), 300.0), (7, (1, 5), 5.0), (0, (1, 5), 1.0), (1, (1, 5), 1.0),
     (5, (1, 5), 5.0), (None, (), DEFAULT_TIMEOUT)],
)
def test_validate_timeout_clamps(value, bounds, expected):
    assert validate_timeout(value, *bounds) == expected


@pytest.mark.parametrize("bad", ["10", float("nan"), True, [1]])
def test_validate_timeout_rejects_non_numbers(bad):
    with pytest.raises(ConfigurationError):
        validate_timeout(bad)


def test_validate_timeout_inverted_bounds():
    with pytest.raises(ConfigurationError, match="above max"):
        validate_timeout(1, 10, 5)


# ----------------------------------------------------------------- Timeout


def test_bad_arguments():
    with pytest.raises(ConfigurationError):
        Timeout(0)
    with pytest.raises(ConfigurationError):
        Timeout(1, sync_mode="kill")  # type: ignore[arg-type]
    assert Timeout("cache").seconds == 1.0


def test_error_is_a_surefoot_and_builtin_timeout_error():
    err = CallTimeoutError("twilio", 2.0)
    assert isinstance(err, TimeoutError) and isinstance(err, ServiceUnavailableError)
    assert err.status == 504 and err.timeout == 2.0 and "2s" in str(err)
    import pickle

    again = pickle.loads(pickle.dumps(CallTimeoutError("x", 1.5, abandoned=True)))
    assert again.timeout == 1.5 and again.abandoned


async def test_async_timeout_cancels_the_call(registry):
    events = EventRecorder()
    timeout = Timeout(0.01, name="slow", hooks=events.hooks, registry=registry)
    cleaned = asyncio.Event()

    async def hang():
        try:
            await asyncio.Event().wait()  # never set: only the timeout can end this
        finally:
            cleaned.set()

    with pytest.raises(CallTimeoutError) as info:
        await timeout.acall(hang)
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
    assert cleaned.is_set()
    assert events.kinds() == ["timeout"]
    assert registry.get_sample_value(
        "resilience_events_total", {"component": "timeout", "name": "slow", "event": "timeout"}
    ) == 1


async def test_async_timeout_passes_results_and_errors_through():
    timeout = Timeout(5)

    async def ok(x):
        return x * 2

    async def bad():
        raise KeyError("k")

    assert await timeout.acall(ok, 21) == 42
    with pytest.raises(KeyError):
        await timeout.acall(bad)


async def test_outer_cancellation_is_not_turned_into_a_timeout():
    timeout = Timeout(10)
    started = asyncio.Event()

    async def hang():
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(timeout.acall(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_async_decorator():
    @Timeout(0.01)
    async def hang():
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError):
        await hang()


def test_sync_thread_mode_abandons_the_call_and_says_so():
    release = threading.Event()
    finished = threading.Event()
    timeout = Timeout(0.05, name="legacy", sync_mode="thread")

    def blocking():
        release.wait(5)
        finished.set()
        return "late"

    with pytest.raises(CallTimeoutError) as info:
        timeout.call(blocking)
    assert info.value.abandoned and "abandoned" in str(info.value)
    release.set()
    assert finished.wait(5)  # the abandoned call still completed in its thread
    timeout.shutdown(wait=True)


def test_sync_thread_mode_returns_results_and_propagates_context():
    from surefoot import context

    timeout = Timeout(5, sync_mode="thread")
    with context.bound(correlation_id="abc"):
        assert timeout.call(context.get_correlation_id) == "abc"
    with pytest.raises(ZeroDivisionError):
        timeout.call(lambda: 1 / 0)
    timeout.shutdown()


def test_sync_check_mode_flags_slow_calls_on_the_injected_clock(fake_clock):
    timeout = Timeout(1.0, sync_mode="check", clock=fake_clock)
    assert timeout.call(lambda: fake_clock.advance(0.5) or "ok") == "ok"
    with pytest.raises(CallTimeoutError) as info:
        timeout.call(lambda: fake_clock.advance(2.0))
    assert not info.value.abandoned


def test_sync_decorator(fake_clock):
    @Timeout(1.0, sync_mode="check", clock=fake_clock)
    def slow():
        fake_clock.advance(3)

    with pytest.raises(CallTimeoutError):
        slow()


async def test_many_concurrent_calls_share_one_timer_and_only_the_slow_ones_expire():
    timeout = Timeout(0.05, name="shared")
    release = asyncio.Event()

    async def quick(i):
        await asyncio.sleep(0)
        return i

    async def hang():
        await release.wait()  # never set before the timeout

    results = await asyncio.gather(
        *(timeout.acall(quick, i) if i % 3 else timeout.acall(hang) for i in range(30)), return_exceptions=True
    )
    timed_out = [r for r in results if isinstance(r, CallTimeoutError)]
    assert len(timed_out) == 10
    assert [r for r in results if not isinstance(r, BaseException)] == [i for i in range(30) if i % 3]
    loop = asyncio.get_running_loop()
    assert not timeout._queues[loop].entries  # nothing left behind


async def test_a_call_that_swallows_the_cancellation_leaves_the_task_clean():
    timeout = Timeout(0.01)

    async def stubborn():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "swallowed"

    assert await timeout.acall(stubborn) == "swallowed"
    assert asyncio.current_task().cancelling() == 0
    await asyncio.sleep(0)  # the task is not cancelled later either


async def test_shrunk_timeouts_use_their_own_timer():
    timeout = Timeout(60)

    async def hang():
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError) as info:
        await timeout._arun(0.01, hang, (), {})
    assert info.value.timeout == 0.01


def test_one_timeout_on_successive_event_loops():
    timeout = Timeout(5)

    async def ok():
        return 1

    assert asyncio.run(timeout.acall(ok)) == 1
    assert asyncio.run(timeout.acall(ok)) == 1


def test_acall_outside_a_loop_is_a_clear_error():
    timeout = Timeout(1)

    async def ok():
        return 1

    coro = timeout.acall(ok)
    with pytest.raises(RuntimeError, match="event loop"):
        coro.send(None)


async def test_async_scope_cancels_the_block():
    timeout = Timeout(0.01)
    with pytest.raises(CallTimeoutError):
        async with timeout.scope():
            await asyncio.Event().wait()
    async with timeout.scope():
        await asyncio.sleep(0)


def test_sync_scope_flags_a_late_block(fake_clock):
    timeout = Timeout(1.0, clock=fake_clock)
    with timeout.scope():
        fake_clock.advance(0.5)
    with pytest.raises(CallTimeoutError), timeout.scope():
        fake_clock.advance(2)
    with pytest.raises(KeyError), timeout.scope():  # the block's own error wins
        fake_clock.advance(2)
        raise KeyError("k")


async def test_acall_within_uses_the_given_limit():
    timeout = Timeout(10.0, name="within")

    async def slow():
        await asyncio.sleep(1)

    with pytest.raises(CallTimeoutError) as info:
        await timeout.acall_within(0.01, slow)
    assert info.value.timeout == pytest.approx(0.01)

    async def quick(x):
        return x

    assert await timeout.acall_within(0.5, quick, 3) == 3


def test_call_within_uses_the_given_limit_in_both_sync_modes(fake_clock):
    checked = Timeout(10.0, name="within-check", sync_mode="check", clock=fake_clock)

    def slow():
        fake_clock.advance(2.0)
        return "late"

    with pytest.raises(CallTimeoutError):
        checked.call_within(1.0, slow)
    assert checked.call_within(5.0, slow) == "late"
    threaded = Timeout(10.0, name="within-thread")
    assert threaded.call_within(1.0, lambda: "ok") == "ok"
    threaded.shutdown()


async def test_the_timer_protocol_bounds_awaited_work():
    timeout = Timeout(0.01, name="protocol")
    handle = timeout.begin(0.01)
    with pytest.raises(CallTimeoutError):
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError as exc:
            timeout.cancelled(handle, exc)
            raise
        finally:
            timeout.end(handle)
    handle = timeout.begin(1.0)
    try:
        await asyncio.sleep(0)
    finally:
        timeout.end(handle)
    await asyncio.sleep(0.02)  # the ended timer never fires


def test_the_named_table_is_public():
    from surefoot.resilience import DEFAULT_TIMEOUTS, get_timeout

    assert get_timeout("sms_send") == DEFAULT_TIMEOUTS["sms_send"]
    assert all(get_timeout(name) == seconds for name, seconds in DEFAULT_TIMEOUTS.items())
