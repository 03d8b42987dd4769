"""The one pipeline: order, per-attempt semantics, shorthands, sync and async, a real breaker."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from surefoot.errors import ConfigurationError
from surefoot.resilience import (
    Bulkhead,
    BulkheadFullError,
    CallTimeoutError,
    Chaos,
    CircuitBreaker,
    CircuitOpenError,
    Policy,
    RateLimiter,
    RateLimitExceededError,
    Retry,
    RetryError,
    Timeout,
    reset_retry_budgets,
)
from surefoot.testing import EventRecorder, FakeClock, provider_failures


@pytest.fixture(autouse=True)
def _fresh_budgets():
    reset_retry_budgets()
    yield
    reset_retry_budgets()


class FakeBreaker:
    """The permission protocol only (no call/acall): records what the pipeline tells it."""

    def __init__(self, clock, *, open_after: int | None = None) -> None:
        self.clock = clock
        self.log: list[tuple] = []
        self.failures = 0
        self.open_after = open_after

    def acquire(self):
        if self.open_after is not None and self.failures >= self.open_after:
            self.log.append(("rejected",))
            raise CircuitOpenError("fake", 5.0)
        self.log.append(("acquire",))

    def release(self):
        self.log.append(("release",))

    def on_success(self, duration):
        self.log.append(("success", duration))

    def on_error(self, duration, exc):
        self.failures += 1
        self.log.append(("error", type(exc).__name__))

    def on_result(self, duration, result):
        self.log.append(("result", result))

    async def aacquire(self):
        self.acquire()

    async def arelease(self):
        self.release()

    async def aon_success(self, duration):
        self.on_success(duration)

    async def aon_error(self, duration, exc):
        self.on_error(duration, exc)

    async def aon_result(self, duration, result):
        self.on_result(duration, result)


def retry(clock, **options):
    options.setdefault("budget", False)
    options.setdefault("rng", random.Random(1))
    return Retry(clock=clock, **options)


class Flaky:
    def __init__(self, failures, exc=None, value="ok"):
        self.failures, self.exc, self.value, self.calls = failures, exc or ConnectionError("down"), value, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return self.value


def test_stages_in_the_documented_order(fake_clock):
    policy = Policy(
        name="p", timeout=1, retry=2, breaker=FakeBreaker(fake_clock), bulkhead=3, rate_limit=100,
        chaos=Chaos(enabled=True),
    )
    assert policy.stages == ["retry", "rate_limit", "bulkhead", "breaker", "timeout", "chaos"]
    assert Policy(chaos=Chaos(enabled=False)).stages == []
    assert "Policy('p'" in repr(policy)


def test_empty_policy_is_a_plain_call():
    policy = Policy()
    assert policy.call(lambda a, b=0: a + b, 1, b=2) == 3


async def test_empty_policy_async():
    async def f(x):
        return x

    assert await Policy().acall(f, 5) == 5


def test_each_attempt_goes_through_the_breaker(fake_clock):
    breaker = FakeBreaker(fake_clock)
    policy = Policy(name="p", retry=retry(fake_clock, max_attempts=3), breaker=breaker)
    assert policy.call(Flaky(2)) == "ok"
    assert breaker.log == [
        ("acquire",), ("error", "ConnectionError"), ("acquire",), ("error", "ConnectionError"),
        ("acquire",), ("result", "ok"),
    ]


def test_open_breaker_rejection_is_retried_after_its_retry_after_or_given_up(fake_clock):
    breaker = FakeBreaker(fake_clock, open_after=2)
    fn = Flaky(10)
    policy = Policy(name="p", retry=retry(fake_clock, max_attempts=5, max_retry_after=1.0), breaker=breaker)
    with pytest.raises(CircuitOpenError) as info:
        policy.call(fn)
    assert fn.calls == 2  # the third attempt was rejected by the breaker; 5 s > max_retry_after
    assert "retry_after_too_long" in info.value.__notes__[-1]


def test_rate_limit_refusal_never_reaches_the_breaker(fake_clock):
    breaker = FakeBreaker(fake_clock)
    limiter = RateLimiter(1, per=60, burst=1, clock=fake_clock)
    policy = Policy(name="p", breaker=breaker, rate_limit=limiter)
    policy.call(lambda: 1)
    with pytest.raises(RateLimitExceededError):
        policy.call(lambda: 1)
    assert breaker.log == [("acquire",), ("result", 1)]


def test_bulkhead_refusal_never_reaches_the_breaker(fake_clock):
    breaker = FakeBreaker(fake_clock)
    bulkhead = Bulkhead(1)
    policy = Policy(name="p", breaker=breaker, bulkhead=bulkhead)
    bulkhead.acquire()
    with pytest.raises(BulkheadFullError):
        policy.call(lambda: 1)
    assert breaker.log == []


def test_bulkhead_slot_is_not_held_during_backoff_sleeps():
    bulkhead = Bulkhead(1)
    seen = []

    class Clock(FakeClock):
        def sleep(self, seconds):
            seen.append(bulkhead.available)
            super().sleep(seconds)

    clock = Clock()
    policy = Policy(name="p", retry=retry(clock, max_attempts=3), bulkhead=bulkhead)
    assert policy.call(Flaky(2)) == "ok"
    assert seen == [1, 1]


def test_every_attempt_takes_a_rate_permit(fake_clock):
    limiter = RateLimiter(10, per=3600, burst=10, clock=fake_clock)
    policy = Policy(name="p", retry=retry(fake_clock, max_attempts=3), rate_limit=limiter)
    policy.call(Flaky(2))
    assert limiter.available() == pytest.approx(7, abs=0.01)


async def test_timeout_is_per_attempt_and_counted_by_the_breaker(fake_clock):
    breaker = FakeBreaker(fake_clock)
    attempts = 0

    async def slow_then_fast():
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.Event().wait()
        return "fast"

    policy = Policy(name="p", retry=retry(fake_clock, max_attempts=2), breaker=breaker, timeout=0.02)
    assert await policy.acall(slow_then_fast) == "fast"
    assert breaker.log[1] == ("error", "CallTimeoutError")


async def test_the_retry_deadline_shrinks_the_attempt_timeout():
    # Real time here: the deadline (0.05 s) must cut an attempt whose own timeout is 60 s.
    policy = Policy(name="p", retry=Retry(name="p", deadline=0.05, budget=False), timeout=60)

    async def hang():
        await asyncio.Event().wait()

    with pytest.raises(CallTimeoutError) as info:
        await policy.acall(hang)
    assert info.value.timeout <= 0.05


async def test_async_pipeline_with_every_component(fake_clock):
    events = EventRecorder()
    breaker = FakeBreaker(fake_clock)
    policy = Policy(
        name="p",
        retry=retry(fake_clock, max_attempts=4, hooks=events.hooks),
        breaker=breaker,
        bulkhead=Bulkhead(2),
        rate_limit=RateLimiter(100, clock=fake_clock),
        timeout=Timeout(5),
    )
    fn = Flaky(2)

    async def call(x):
        return fn() + x

    assert await policy.acall(call, "!") == "ok!"
    assert events.kinds() == ["retry", "retry", "success"]
    assert [e[0] for e in breaker.log] == ["acquire", "error", "acquire", "error", "acquire", "result"]


def test_sync_pipeline_with_a_thread_timeout(fake_clock):
    policy = Policy(name="p", retry=retry(fake_clock, max_attempts=2), timeout=Timeout(5, sync_mode="thread"),
                    breaker=FakeBreaker(fake_clock), bulkhead=2, chaos=Chaos(enabled=True, fault_rate=0.0))
    assert policy.call(Flaky(1)) == "ok"
    policy.timeout.shutdown()


def test_decorators_dispatch_and_reject_generators(fake_clock):
    policy = Policy(name="p", retry=retry(fake_clock))

    @policy
    def f(x):
        return x + 1

    assert f(1) == 2 and f.policy is policy

    with pytest.raises(ConfigurationError, match="generator"):
        @policy
        def g():
            yield 1


async def test_async_decorator(fake_clock):
    fn = Flaky(1)

    @Policy(name="p", retry=retry(fake_clock))
    async def f():
        return fn()

    assert await f() == "ok"


def test_shorthands():
    policy = Policy(name="twilio", timeout="sms_send", retry={"max_attempts": 5, "budget": False}, bulkhead=4,
                    rate_limit=50.0, breaker={"failure_threshold": 3})
    assert policy.timeout.seconds == 10.0 and policy.retry.max_attempts == 5 and policy.retry.name == "twilio"
    assert policy.bulkhead.max_concurrent == 4 and policy.rate_limit.rate == 50.0
    assert isinstance(policy.breaker, CircuitBreaker) and policy.breaker.name == "twilio"


@pytest.mark.parametrize(
    "options",
    [{"timeout": [1]}, {"retry": "3"}, {"bulkhead": 1.5}, {"rate_limit": "fast"}, {"chaos": 0.5},
     {"breaker": object()}],
)
def test_bad_components_are_clear_errors(options):
    with pytest.raises(ConfigurationError):
        Policy(**options)


# ----------------------------------------------------------------- with the real breaker


def test_real_breaker_opens_and_the_retry_stops_hammering(fake_clock):
    breaker = CircuitBreaker("dep", failure_threshold=3, open_duration=30, clock=fake_clock, metrics=False)
    policy = Policy(name="dep", retry=retry(fake_clock, max_attempts=10, max_retry_after=10), breaker=breaker)
    fn = Flaky(100)
    with pytest.raises(CircuitOpenError) as info:
        policy.call(fn)
    assert fn.calls == 3  # the breaker opened after 3 failures; waiting 30 s is more than allowed
    assert 25 < info.value.retry_after <= 30  # what is left of the open state
    assert "retry_after_too_long" in info.value.__notes__[-1]


def test_real_breaker_retry_waits_out_a_short_open_state(fake_clock):
    breaker = CircuitBreaker("dep3", failure_threshold=2, open_duration=5, clock=fake_clock, metrics=False)
    policy = Policy(name="dep3", retry=retry(fake_clock, max_attempts=4, max_retry_after=10), breaker=breaker)
    fn = Flaky(2)
    assert policy.call(fn) == "ok"  # fail, fail (opens), rejected (waits 5 s), half-open probe succeeds
    assert fn.calls == 3
    # after the breaker opened: one backoff wait, then exactly the rest of the open state
    assert sum(fake_clock.sleeps[1:]) == pytest.approx(5.0)


async def test_real_breaker_async_and_recovery(fake_clock):
    breaker = CircuitBreaker("dep2", failure_threshold=2, open_duration=10, clock=fake_clock, metrics=False)
    policy = Policy(name="dep2", retry=retry(fake_clock, max_attempts=2, max_retry_after=1), breaker=breaker)
    fn = Flaky(2)

    async def call():
        return fn()

    with pytest.raises(ConnectionError):
        await policy.acall(call)
    with pytest.raises(CircuitOpenError):
        await policy.acall(call)
    fake_clock.advance(11)
    assert await policy.acall(call) == "ok"


def test_seed_004_twilio_5xx_reproduced_with_chaos(fake_clock):
    # 30 % of Twilio calls answer 503: with retries and a budget every call still succeeds,
    # and the same seed replays the same run.
    def run():
        clock = FakeClock()
        chaos = provider_failures("5xx", rate=0.3, seed=42, clock=clock)
        policy = Policy(
            name="twilio",
            retry=Retry(name="twilio", max_attempts=4, retry_on_result=lambda r: r.status_code >= 500,
                        clock=clock, rng=random.Random(1), budget=False),
            chaos=chaos,
        )
        statuses = []
        for _ in range(200):
            try:
                statuses.append(policy.call(lambda: httpx.Response(201)).status_code)
            except RetryError as exc:
                statuses.append(exc.last_result.status_code)
        return statuses, clock.sleeps

    (statuses, sleeps), (statuses2, sleeps2) = run(), run()
    assert statuses.count(201) >= 195  # 0.3**4: about 1 call in 120 sees four 503s in a row
    assert sleeps and sleeps == sleeps2 and statuses == statuses2


class AsyncOnlyLimiter:
    """A limiter with its own async I/O (like RedisRateLimiter): driven through aacquire."""

    def __init__(self, allow):
        self.allow = allow
        self.calls = 0

    def acquire(self):
        self.calls += 1
        if self.calls > self.allow:
            raise RateLimitExceededError("x", "default", 1.0)

    async def aacquire(self):
        self.acquire()


async def test_async_limiters_are_awaited(fake_clock):
    limiter = AsyncOnlyLimiter(1)
    policy = Policy(name="p", rate_limit=limiter)
    assert "await rl_acquire()" in policy.attempt_source(True)

    async def f():
        return 1

    assert await policy.acall(f) == 1
    with pytest.raises(RateLimitExceededError):
        await policy.acall(f)


def test_the_attempt_outline_is_inspectable(fake_clock):
    policy = Policy(name="p", timeout=1, breaker=FakeBreaker(fake_clock), bulkhead=1, rate_limit=10.0)
    source = policy.attempt_source(True)
    assert source.index("rl_reserve") < source.index("bh_try") < source.index("br_acquire") < source.index("tm_begin")
    assert "await br_acquire()" in source  # a protocol-only breaker is awaited
    assert Policy().attempt_source() == ""
    real = Policy(name="q", breaker=CircuitBreaker("q-src", metrics=False))
    assert "    br_acquire()" in real.attempt_source(True)  # no I/O: driven synchronously


async def test_cancellation_releases_the_bulkhead_and_is_not_a_breaker_failure():
    breaker = CircuitBreaker("cancel-test", failure_threshold=1, metrics=False)
    bulkhead = Bulkhead(1)
    policy = Policy(name="c", breaker=breaker, bulkhead=bulkhead)
    started = asyncio.Event()

    async def hang():
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(policy.acall(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bulkhead.available == 1
    assert breaker.state.value == "closed"


def test_decorated_policy_without_components_still_wraps():
    policy = Policy()

    @policy
    def f(x):
        return x

    assert f(3) == 3 and f.policy is policy and f.__name__ == "f"


async def test_slow_calls_reach_a_duration_aware_breaker(fake_clock):
    breaker = CircuitBreaker("slow-dep", slow_call_duration=1.0, slow_call_rate_threshold=0.5, window_size=4,
                             minimum_calls=4, clock=fake_clock, metrics=False)
    policy = Policy(name="slow-dep", breaker=breaker)
    assert "t0 = mono()" in policy.attempt_source(True)

    async def slow():
        fake_clock.advance(2.0)
        return "late"

    for _ in range(4):
        assert await policy.acall(slow) == "late"
    with pytest.raises(CircuitOpenError):
        await policy.acall(slow)


async def test_rate_limit_key_gives_each_tenant_its_own_quota(fake_clock):
    from surefoot import context

    limiter = RateLimiter(1, per=3600, burst=1, clock=fake_clock)
    policy = Policy(name="sms", rate_limit=limiter,
                    rate_limit_key=lambda: context.get_tenant_id() or "default")

    async def send():
        return "sent"

    with context.bound(tenant_id="t1"):
        assert await policy.acall(send) == "sent"
        with pytest.raises(RateLimitExceededError):
            await policy.acall(send)
    with context.bound(tenant_id="t2"):
        assert await policy.acall(send) == "sent"
    with pytest.raises(ConfigurationError):
        Policy(rate_limit=limiter, rate_limit_key="tenant")


def test_rate_limit_key_sync(fake_clock):
    limiter = RateLimiter(1, per=3600, burst=1, clock=fake_clock)
    keys = iter(["a", "a", "b"])
    policy = Policy(name="k", rate_limit=limiter, rate_limit_key=lambda: next(keys))
    assert policy.call(lambda: 1) == 1
    with pytest.raises(RateLimitExceededError):
        policy.call(lambda: 1)
    assert policy.call(lambda: 1) == 1


async def test_async_pipeline_under_mixed_load_leaks_nothing():
    bulkhead = Bulkhead(4, max_wait=5)
    timeout = Timeout(0.05, name="mixed")
    breaker = CircuitBreaker("mixed", failure_rate_threshold=0.99, window_size=1000, minimum_calls=1000,
                             metrics=False)
    policy = Policy(name="mixed", retry=Retry(name="mixed", max_attempts=2, budget=False, base_delay=0.001),
                    bulkhead=bulkhead, timeout=timeout, breaker=breaker)
    rng = random.Random(3)
    never = asyncio.Event()

    async def call(kind):
        await asyncio.sleep(0)
        if kind == "hang":
            await never.wait()
        if kind == "fail":
            raise ConnectionError("down")
        return kind

    kinds = [rng.choice(["ok", "ok", "ok", "fail", "hang"]) for _ in range(60)]
    results = await asyncio.gather(*(policy.acall(call, k) for k in kinds), return_exceptions=True)
    for kind, result in zip(kinds, results, strict=True):
        if kind == "ok":
            assert result == "ok"
        elif kind == "fail":
            assert isinstance(result, ConnectionError)
        else:
            assert isinstance(result, CallTimeoutError)
    assert bulkhead.available == 4
    assert not timeout._queues[asyncio.get_running_loop()].entries


def test_sync_pipeline_from_many_threads_leaks_nothing():
    import threading

    bulkhead = Bulkhead(3, max_wait=5)
    policy = Policy(name="threads", retry=Retry(name="threads", max_attempts=3, budget=False, base_delay=0.0),
                    bulkhead=bulkhead, breaker=CircuitBreaker("threads", failure_threshold=1000, metrics=False))
    counter = iter(range(10**6))
    errors = []

    def work():
        if next(counter) % 5 == 0:
            raise ConnectionError("blip")
        return 1

    def run():
        for _ in range(200):
            try:
                policy.call(work)
            except ConnectionError:
                pass
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert bulkhead.available == 3


def test_a_full_bulkhead_is_retried_after_the_backoff(fake_clock):
    bulkhead = Bulkhead(1, name="full")
    bulkhead.acquire()  # another caller holds the only slot
    calls = []
    retry = Retry(name="full", max_attempts=3, on=BulkheadFullError, backoff="constant", base_delay=0.25,
                  clock=fake_clock, budget=False)
    policy = Policy(name="full", retry=retry, bulkhead=bulkhead)
    with pytest.raises(BulkheadFullError) as info:
        policy.call(calls.append, 1)
    assert info.value.retry_after is None and "Retry-After" not in info.value.headers
    assert fake_clock.sleeps == [0.25, 0.25] and calls == []
    bulkhead.release()
    assert policy.call(lambda: "in") == "in"
