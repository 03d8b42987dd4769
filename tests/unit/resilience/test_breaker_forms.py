"""Every way to use a breaker sits on the permission protocol: decorator kinds, call, with."""

from __future__ import annotations

import pytest

from surefoot.resilience import CircuitBreaker, CircuitOpenError, CircuitState, Hooks
from surefoot.testing import FakeClock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def breaker(clock, registry):
    return CircuitBreaker("forms", failure_threshold=1, open_duration=10, slow_call_duration=5.0,
                          slow_call_rate_threshold=1.0, window_size=100, minimum_calls=100,
                          clock=clock, registry=registry)


def test_function(breaker):
    @breaker
    def add(a, b=1):
        """doc"""
        return a + b

    assert add(1, b=2) == 3
    assert add.__doc__ == "doc" and add.__name__ == "add"
    assert add.breaker is breaker


async def test_coroutine(breaker, clock):
    @breaker
    async def work(x):
        await clock.asleep(6.0)
        return x

    assert await work(5) == 5
    assert breaker.get_stats()["slow_count"] == 1  # the await was measured, not the coroutine creation

    @breaker
    async def bad():
        raise ConnectionError

    with pytest.raises(ConnectionError):
        await bad()
    assert breaker.state == CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await work(1)


def test_generator_covers_the_whole_iteration(breaker, clock):
    @breaker
    def numbers(n):
        for i in range(n):
            clock.advance(2.0)
            yield i
        return "done"

    gen = numbers(3)
    assert breaker.get_stats()["total_calls"] == 0  # nothing ran yet
    assert list(gen) == [0, 1, 2]
    stats = breaker.get_stats()
    assert stats["success_count"] == 1 and stats["slow_count"] == 1

    @breaker
    def broken():
        yield 1
        raise ConnectionError("mid-stream")

    with pytest.raises(ConnectionError):
        list(broken())
    assert breaker.state == CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        next(numbers(1))


def test_generator_send_throw_and_close(breaker):
    @breaker
    def echo():
        received = []
        try:
            while True:
                x = yield len(received)
                received.append(x)
        except KeyError:
            yield "caught"

    g = echo()
    assert next(g) == 0
    assert g.send("a") == 1
    assert g.throw(KeyError) == "caught"
    g.close()  # closing early: neither success nor failure
    stats = breaker.get_stats()
    assert stats["total_calls"] == 0 and breaker.state == CircuitState.CLOSED


async def test_async_generator(breaker, clock):
    @breaker
    async def stream(n):
        for i in range(n):
            await clock.asleep(3.0)
            yield i

    assert [x async for x in stream(2)] == [0, 1]
    stats = breaker.get_stats()
    assert stats["success_count"] == 1 and stats["slow_count"] == 1

    @breaker
    async def echo():
        total = 0
        while True:
            try:
                x = yield total
            except KeyError:
                x = 100
            total += x

    g = echo()
    assert await g.__anext__() == 0
    assert await g.asend(5) == 5
    assert await g.athrow(KeyError) == 105
    await g.aclose()
    assert breaker.get_stats()["success_count"] == 1  # closing early is not an outcome

    @breaker
    async def broken():
        yield 1
        raise ConnectionError

    with pytest.raises(ConnectionError):
        async for _ in broken():
            pass
    assert breaker.state == CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await stream(1).__anext__()


async def test_empty_async_generator(breaker):
    @breaker
    async def nothing():
        return
        yield  # pragma: no cover

    assert [x async for x in nothing()] == []
    assert breaker.get_stats()["success_count"] == 1


def test_context_manager(breaker, clock):
    with breaker:
        clock.advance(6)
    assert breaker.get_stats()["slow_count"] == 1
    with breaker:  # nested use of the same breaker keeps each start time
        clock.advance(1)
        with breaker:
            clock.advance(1)
    assert breaker.get_stats()["slow_count"] == 1
    with pytest.raises(ConnectionError), breaker:
        raise ConnectionError
    assert breaker.state == CircuitState.OPEN
    with pytest.raises(CircuitOpenError), breaker:
        pass  # pragma: no cover


async def test_async_context_manager(breaker, clock):
    async with breaker:
        await clock.asleep(7)
    assert breaker.get_stats()["slow_count"] == 1
    with pytest.raises(ConnectionError):
        async with breaker:
            raise ConnectionError
    assert breaker.state == CircuitState.OPEN


def test_call_with_hooks_uses_the_general_path(clock, registry):
    events = []
    b = CircuitBreaker("h", clock=clock, registry=registry, hooks=Hooks(events.append))
    assert b.call(lambda: 1) == 1
    assert [e.kind for e in events] == ["success"]


async def test_async_protocol_twins(clock, registry):
    b = CircuitBreaker("t", failure_threshold=1, open_duration=1, clock=clock, registry=registry)
    await b.aacquire()
    await b.aon_result(0.1, "fine")
    await b.aacquire()
    await b.aon_error(0.1, ConnectionError())
    with pytest.raises(CircuitOpenError):
        await b.aacquire()
    clock.advance(1)
    await b.aacquire()
    await b.arelease()
    await b.aacquire()
    await b.aon_success(0.1)
    assert b.state == CircuitState.CLOSED


def test_decorator_when_not_closed(breaker):
    @breaker
    def f():
        return 1

    breaker.disable()
    assert f() == 1
    breaker.force_open()
    with pytest.raises(CircuitOpenError):
        f()


@pytest.mark.parametrize("window", ["count", "time"])
async def test_decorators_on_window_breakers(window, clock, registry):
    b = CircuitBreaker("w", failure_rate_threshold=0.5, window=window, window_size=10, minimum_calls=4,
                       clock=clock, registry=registry)

    @b
    def f(ok=True):
        if not ok:
            raise ConnectionError
        return "f"

    @b
    async def g(ok=True):
        if not ok:
            raise ConnectionError
        return "g"

    for _ in range(12):
        assert f() == "f" and await g() == "g"
        clock.advance(0.3)
    failures = 0
    while b.state == CircuitState.CLOSED:
        with pytest.raises(ConnectionError):
            if failures % 2:
                await g(False)
            else:
                f(False)
        failures += 1
    # count: 5 failures among the last 10 calls; time: 24 failures against 24 successes
    assert failures == (5 if window == "count" else 24)
    stats = b.get_stats()
    assert stats["success_count"] == 24 and stats["failure_count"] == failures
    with pytest.raises(CircuitOpenError):
        f()
    with pytest.raises(CircuitOpenError):
        await g()


def test_decorator_rejections_are_counted_and_announced(clock, registry):
    events = []
    b = CircuitBreaker("rej", failure_threshold=1, open_duration=10, clock=clock, registry=registry,
                       hooks=Hooks(events.append))

    @b
    def f(ok=True):
        if not ok:
            raise ConnectionError
        return 1

    with pytest.raises(ConnectionError):
        f(False)
    with pytest.raises(CircuitOpenError) as info:
        f()
    assert info.value.state == "open" and info.value.retry_after == 10
    b.force_open()
    with pytest.raises(CircuitOpenError) as info:
        f()
    assert info.value.state == "forced_open"
    rejected = [e.attributes["state"] for e in events if e.kind == "not_permitted"]
    assert rejected == ["open", "forced_open"]
    assert b.get_stats()["not_permitted_count"] == 2
    clock.advance(10)
    b.reset()
    assert f() == 1
