"""Resilience forms that cannot be misused: a sync entry point never lets an async callable through
unguarded, and decorators on generators protect the whole iteration or refuse."""

from __future__ import annotations

import asyncio
import functools
import gc
import warnings

import pytest

from surefoot.errors import ConfigurationError
from surefoot.resilience import (
    Bulkhead,
    Chaos,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Policy,
    RateLimiter,
    Retry,
    Timeout,
    UnsupportedCallableError,
    circuit_breaker,
)
from surefoot.testing import FakeClock


class Down(Exception):
    pass


async def failing() -> None:
    raise Down("provider down")


def test_breaker_call_refuses_an_async_function_and_names_the_async_form(registry) -> None:
    breaker = CircuitBreaker("sms", failure_threshold=2, clock=FakeClock(), registry=registry)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the coroutine is closed, never left unawaited
        for _ in range(3):
            with pytest.raises(TypeError, match=r"await breaker\.acall\(fn"):
                breaker.call(failing)
        gc.collect()
    # Nothing was recorded (today's silent failure mode counts three successes); the async
    # form guards the same function and opens the breaker.
    assert breaker.state == CircuitState.CLOSED
    for _ in range(2):
        with pytest.raises(Down):
            asyncio.run(breaker.acall(failing))
    assert breaker.state == CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        asyncio.run(breaker.acall(failing))


def test_the_refusal_is_a_type_error_and_a_configuration_error(registry) -> None:
    breaker = CircuitBreaker("sms", clock=FakeClock(), registry=registry)
    with pytest.raises(UnsupportedCallableError) as info:
        breaker.call(failing)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ConfigurationError)


def _components(registry):
    clock = FakeClock()
    return {
        "breaker": (CircuitBreaker("c", clock=clock, registry=registry), r"breaker\.acall"),
        "retry": (Retry(name="r", clock=clock, registry=registry), r"retry\.acall"),
        "timeout_thread": (Timeout(1.0, name="t", registry=registry), r"timeout\.acall"),
        "timeout_check": (Timeout(1.0, name="t2", sync_mode="check", registry=registry), r"timeout\.acall"),
        "bulkhead": (Bulkhead(2, name="b", registry=registry), r"bulkhead\.acall"),
        "rate_limiter": (RateLimiter(100, name="l", registry=registry), r"limiter\.acall"),
        "chaos_off": (Chaos(enabled=False), r"chaos\.acall"),
        "chaos_on": (Chaos(enabled=True, latency_rate=1.0, latency=0.0), r"chaos\.acall"),
        # a sync lambda returning a coroutine is caught inside the pipeline, by the stage
        # that called it (here the timeout): never retried, never counted by the breaker
        "policy": (Policy(name="p", retry=2, breaker={}, bulkhead=2, timeout=1.0), r"\.acall"),
    }


@pytest.mark.parametrize(
    "which",
    ["breaker", "retry", "timeout_thread", "timeout_check", "bulkhead", "rate_limiter", "chaos_off",
     "chaos_on", "policy"],
)
def test_every_sync_call_refuses_async_callables(which, registry) -> None:
    component, form = _components(registry)[which]
    calls = []

    async def work(x: int) -> int:
        calls.append(x)
        return x

    class AsyncCallable:
        async def __call__(self, x: int) -> int:
            calls.append(x)
            return x

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for fn in (work, functools.partial(work), AsyncCallable(), lambda x: work(x)):
            with pytest.raises(UnsupportedCallableError, match=form):
                component.call(fn, 1)
        gc.collect()
    assert calls == []  # no body ran
    if which == "bulkhead":
        assert component.available == 2  # slots given back
    if which == "timeout_thread":
        component.shutdown()
    if which == "policy":
        assert component.breaker.get_stats()["state"] == "closed"
        assert component.bulkhead.available == 2


def test_policy_refuses_before_any_component_acts(registry) -> None:
    limiter = RateLimiter(1, burst=1, name="pl", registry=registry)
    breaker = CircuitBreaker("pb", clock=FakeClock(), registry=registry)
    policy = Policy(name="p", rate_limit=limiter, breaker=breaker)
    with pytest.raises(UnsupportedCallableError, match=r"policy\.acall"):
        policy.call(failing)
    assert limiter.available() == 1  # no permit taken


def test_sync_generators_given_to_call_are_refused(registry) -> None:
    def items():
        yield 1

    breaker = CircuitBreaker("g", clock=FakeClock(), registry=registry)
    with pytest.raises(UnsupportedCallableError, match="decorate the generator function"):
        breaker.call(items)
    with pytest.raises(UnsupportedCallableError, match="generator"):
        Timeout(1.0, registry=registry).call(items)


def test_half_open_permission_is_given_back_on_refusal(registry) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("h", failure_threshold=1, open_duration=5, half_open_permits=1,
                             clock=clock, registry=registry)

    def boom():
        raise Down()

    with pytest.raises(Down):
        breaker.call(boom)
    clock.advance(6)
    with pytest.raises(UnsupportedCallableError):
        breaker.call(failing)
    # The trial slot was released: a real trial call is still admitted and closes the breaker.
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state == CircuitState.CLOSED


def test_decorators_recognise_async_callables_that_inspect_alone_would_miss(registry) -> None:
    class Client:
        async def __call__(self) -> None:
            raise Down()

    breaker = CircuitBreaker("obj", failure_threshold=2, clock=FakeClock(), registry=registry)
    guarded = breaker(Client())
    for _ in range(2):
        with pytest.raises(Down):
            asyncio.run(guarded())
    assert breaker.state == CircuitState.OPEN

    retry = Retry(name="p", max_attempts=3, clock=FakeClock(), registry=registry)
    attempts = []

    async def flaky(n: int) -> int:
        attempts.append(n)
        if len(attempts) < 3:
            raise ConnectionError()
        return n

    assert asyncio.run(retry(functools.partial(flaky, 7))()) == 7
    assert attempts == [7, 7, 7]


def test_a_sync_decorated_function_returning_a_coroutine_is_refused(registry) -> None:
    breaker = CircuitBreaker("wrap", failure_threshold=1, clock=FakeClock(), registry=registry)

    @breaker
    def send():
        return failing()  # forgot the await / the async def

    with pytest.raises(UnsupportedCallableError, match="acall"):
        send()
    assert breaker.state == CircuitState.CLOSED

    @circuit_breaker(failure_threshold=1)
    def send2():
        return failing()

    with pytest.raises(TypeError):
        send2()


# -- generators ----------------------------------------------------------------------------


def test_bulkhead_holds_the_slot_for_a_whole_sync_iteration(registry) -> None:
    bulkhead = Bulkhead(1, name="gen", registry=registry)

    @bulkhead
    def rows():
        yield 1
        yield 2

    it = rows()
    assert bulkhead.available == 1  # not started: no slot yet
    assert next(it) == 1
    assert bulkhead.available == 0  # held while the caller works between items
    assert not bulkhead.try_acquire()
    assert list(it) == [2]
    assert bulkhead.available == 1
    it2 = rows()
    next(it2)
    it2.close()  # closed early
    assert bulkhead.available == 1


async def test_bulkhead_holds_the_slot_for_a_whole_async_iteration(registry) -> None:
    bulkhead = Bulkhead(1, name="agen", registry=registry)

    @bulkhead
    async def stream():
        yield "a"
        await asyncio.sleep(0)
        yield "b"

    @bulkhead
    async def broken():
        yield "a"
        raise Down()

    agen = stream()
    assert await agen.__anext__() == "a"
    assert bulkhead.available == 0
    assert [x async for x in agen] == ["b"]
    assert bulkhead.available == 1

    agen = stream()
    await agen.__anext__()
    await agen.aclose()
    assert bulkhead.available == 1

    with pytest.raises(Down):
        async for _ in broken():
            assert bulkhead.available == 0
    assert bulkhead.available == 1


async def test_bulkhead_async_generator_waits_for_a_slot(registry) -> None:
    bulkhead = Bulkhead(1, max_wait=0, name="agen2", registry=registry)

    @bulkhead
    async def stream():
        yield 1

    first = stream()
    await first.__anext__()
    from surefoot.resilience import BulkheadFullError

    with pytest.raises(BulkheadFullError):
        await stream().__anext__()
    await first.aclose()


async def test_async_generator_send_and_throw_pass_through(registry) -> None:
    bulkhead = Bulkhead(1, name="echo", registry=registry)

    @bulkhead
    async def echo():
        received = None
        while True:
            try:
                received = yield received
            except KeyError:
                received = "caught"

    agen = echo()
    assert await agen.asend(None) is None
    assert await agen.asend(5) == 5
    assert await agen.athrow(KeyError()) == "caught"
    await agen.aclose()
    assert bulkhead.available == 1


def test_rate_limiter_takes_one_permit_per_iteration(registry) -> None:
    limiter = RateLimiter(1, burst=2, name="rl", clock=FakeClock(), registry=registry)

    @limiter
    def rows():
        yield from range(5)

    assert list(rows()) == [0, 1, 2, 3, 4]
    assert limiter.available() == 1


@pytest.mark.parametrize("make", [lambda r: Timeout(1.0, registry=r), lambda r: Chaos(enabled=True),
                                  lambda r: Policy(name="x", retry=2)])
def test_components_that_cannot_bound_a_stream_refuse_generators(make, registry) -> None:
    component = make(registry)

    def rows():
        yield 1

    async def stream():
        yield 1

    for fn in (rows, stream):
        with pytest.raises(UnsupportedCallableError, match="cannot decorate the .*generator function"):
            component(fn)


def test_breaker_exposes_what_policy_needs_through_public_properties(registry) -> None:
    plain = CircuitBreaker("plain", clock=FakeClock(), registry=registry)
    timed = CircuitBreaker("timed", slow_call_duration=1.0, clock=FakeClock(), registry=registry)
    assert plain.local_decisions is True and plain.times_calls is False
    assert timed.times_calls is True
    assert "t0 = mono()" not in Policy(name="a", breaker=plain).attempt_source(True)
    assert "t0 = mono()" in Policy(name="b", breaker=timed).attempt_source(True)


def test_decorated_functions_carry_their_component(registry) -> None:
    components = {
        "breaker": CircuitBreaker("attr", clock=FakeClock(), registry=registry),
        "retry": Retry(name="attr", clock=FakeClock(), registry=registry),
        "timeout": Timeout(1.0, sync_mode="check", registry=registry),
        "bulkhead": Bulkhead(1, registry=registry),
        "rate_limiter": RateLimiter(10, registry=registry),
        "chaos": Chaos(enabled=False),
        "policy": Policy(name="attr", retry=2),
    }
    for attribute, component in components.items():

        def add(a: int, b: int) -> int:
            """Adds."""
            return a + b

        wrapped = component(add)
        assert getattr(wrapped, attribute) is component
        assert wrapped.__name__ == "add" and wrapped.__doc__ == "Adds."
        assert wrapped(1, 2) == 3


def test_retry_never_retries_a_refused_call(registry) -> None:
    retry = Retry(name="nr", max_attempts=5, clock=FakeClock(), registry=registry)
    made = []

    def sync_wrapper():
        made.append(1)
        return failing()

    with pytest.raises(UnsupportedCallableError):
        retry.call(sync_wrapper)
    assert made == [1]


@pytest.mark.parametrize("with_retry", [False, True])
def test_policy_call_of_a_sync_function_returning_a_coroutine_is_no_outcome_of_the_dependency(
    registry, with_retry
) -> None:
    breaker = CircuitBreaker("wrapped", failure_threshold=1, clock=FakeClock(), registry=registry)
    bulkhead = Bulkhead(1, name="wrapped", registry=registry)
    retry = Retry(name="wrapped", max_attempts=3, clock=FakeClock(), registry=registry) if with_retry else None
    policy = Policy(name="wrapped", breaker=breaker, bulkhead=bulkhead, retry=retry)
    made = []

    def sync_wrapper():
        made.append(1)
        return failing()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed: no "never awaited" warning
        with pytest.raises(UnsupportedCallableError, match=r"Policy\.call\(\).*await policy\.acall"):
            policy.call(sync_wrapper)
        gc.collect()
    assert made == [1]  # never retried
    stats = breaker.get_stats()
    assert stats["success_count"] == 0 and stats["failure_count"] == 0  # the breaker never counts it
    assert bulkhead.available == 1
