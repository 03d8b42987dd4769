"""Retry: attempts vs retries, backoff, jitter, deadline, Retry-After, results, nesting, forms."""

from __future__ import annotations

import asyncio
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from surefoot.errors import ConfigurationError, ServiceUnavailableError
from surefoot.resilience import (
    Constant,
    DecorrelatedJitter,
    Exponential,
    FullJitter,
    Retry,
    RetryBudget,
    RetryError,
    reset_retry_budgets,
    retry_api_call,
    retry_network_operation,
    retry_on_failure,
    retry_with_backoff,
    retrying,
)
from surefoot.testing import EventRecorder, FakeClock, no_waits, set_testing


@pytest.fixture(autouse=True)
def _fresh_budgets():
    reset_retry_budgets()
    yield
    reset_retry_budgets()
    set_testing(False)


class Flaky:
    """Fails ``failures`` times with ``exc`` then returns ``value``."""

    def __init__(self, failures: int, exc: BaseException | None = None, value: object = "ok") -> None:
        self.failures = failures
        self.exc = exc or ConnectionError("down")
        self.value = value
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return self.value


def make(clock, **options):
    options.setdefault("budget", False)
    options.setdefault("rng", random.Random(7))
    return Retry(clock=clock, **options)


# ----------------------------------------------------------------- attempts and outcomes


def test_success_on_first_attempt_makes_one_call(fake_clock):
    fn = Flaky(0)
    assert make(fake_clock).call(fn) == "ok"
    assert fn.calls == 1
    assert fake_clock.sleeps == []


def test_success_after_retries(fake_clock):
    fn = Flaky(2)
    assert make(fake_clock, max_attempts=3).call(fn) == "ok"
    assert fn.calls == 3
    assert len(fake_clock.sleeps) == 2


def test_max_attempts_counts_the_first_call_and_reraises_the_last_error(fake_clock):
    errors = [ConnectionError(f"failure {i}") for i in range(5)]
    it = iter(errors)

    def fn():
        raise next(it)

    with pytest.raises(ConnectionError) as info:
        make(fake_clock, max_attempts=3).call(fn)
    assert info.value is errors[2]  # the LAST error, not the first
    assert "gave up after 3 attempt(s)" in info.value.__notes__[-1]
    assert "attempts_exhausted" in info.value.__notes__[-1]


def test_max_attempts_one_means_no_retry(fake_clock):
    fn = Flaky(1)
    with pytest.raises(ConnectionError):
        make(fake_clock, max_attempts=1).call(fn)
    assert fn.calls == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3"])
def test_bad_max_attempts_is_a_clear_error(bad):
    with pytest.raises(ConfigurationError, match="counts the first call"):
        Retry(max_attempts=bad)


def test_bad_options_are_clear_errors():
    with pytest.raises(ConfigurationError, match="unknown backoff"):
        Retry(backoff="nope")
    with pytest.raises(ConfigurationError, match="exception type"):
        Retry(on="ValueError")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="deadline"):
        Retry(deadline=0)
    with pytest.raises(ConfigurationError, match="budget"):
        Retry(budget="yes")  # type: ignore[arg-type]


def test_only_listed_exceptions_are_retried(fake_clock):
    fn = Flaky(1, ValueError("bug"))
    with pytest.raises(ValueError):
        make(fake_clock, on=ConnectionError).call(fn)
    assert fn.calls == 1


def test_retry_if_predicate_decides(fake_clock):
    fn = Flaky(5, ConnectionError("permanent"))
    retry = make(fake_clock, retry_if=lambda e: "permanent" not in str(e))
    with pytest.raises(ConnectionError):
        retry.call(fn)
    assert fn.calls == 1
    fn2 = Flaky(1, ConnectionError("transient"))
    assert retry.call(fn2) == "ok"


def test_retry_on_result_then_retry_error_carries_last_result(fake_clock):
    results = iter([{"status": 503}, {"status": 503}, {"status": 503}])
    retry = make(fake_clock, retry_on_result=lambda r: r["status"] >= 500)
    with pytest.raises(RetryError) as info:
        retry.call(lambda: next(results))
    assert info.value.last_result == {"status": 503}
    assert info.value.attempts == 3
    assert info.value.status == 502


def test_retry_on_result_return_last_result(fake_clock):
    results = iter([503, 503, 503])
    retry = make(fake_clock, retry_on_result=lambda r: r == 503, return_last_result=True)
    assert retry.call(lambda: next(results)) == 503


def test_result_retry_succeeds_when_a_good_result_arrives(fake_clock):
    results = iter([503, 200])
    assert make(fake_clock, retry_on_result=lambda r: r == 503).call(lambda: next(results)) == 200


def test_never_returns_none_silently(fake_clock):
    with pytest.raises(RetryError):
        make(fake_clock, retry_on_result=lambda r: r is None).call(lambda: None)


# ----------------------------------------------------------------- backoff


def test_exponential_backoff_and_max_delay(fake_clock):
    fn = Flaky(5)
    make(fake_clock, max_attempts=6, backoff="exponential", base_delay=1.0, max_delay=5.0).call(fn)
    assert fake_clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_constant_backoff(fake_clock):
    make(fake_clock, max_attempts=3, backoff=Constant(0.25)).call(Flaky(2))
    assert fake_clock.sleeps == [0.25, 0.25]


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 30))
@settings(max_examples=100, deadline=None)
def test_full_jitter_stays_within_its_exponential_cap(seed, n):
    delays = FullJitter(0.5, multiplier=2.0, max_delay=30.0).delays(random.Random(seed))
    for i in range(n):
        d = next(delays)
        assert 0.0 <= d <= min(30.0, 0.5 * 2**i)


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_decorrelated_jitter_is_bounded_and_positive(seed):
    delays = DecorrelatedJitter(1.0, max_delay=60.0).delays(random.Random(seed))
    for _ in range(50):
        d = next(delays)
        assert 0.0 <= d <= 60.0


def test_decorrelated_jitter_medians_follow_polly():
    # Polly's v2 formula: the first median is ~the configured delay, then medians settle on
    # doubling (~1.1, 2, 4 x) without the spikes of naive decorrelated jitter.
    rng = random.Random(42)
    samples = [[], [], [], []]
    for _ in range(4000):
        delays = DecorrelatedJitter(1.0, max_delay=1000).delays(rng)
        for i in range(4):
            samples[i].append(next(delays))
    medians = [statistics.median(s) for s in samples]
    assert 0.7 < medians[0] < 1.3
    assert 0.9 < medians[1] < 1.5
    assert 1.6 < medians[2] < 2.4
    assert 3.2 < medians[3] < 4.8


def test_decorrelated_jitter_survives_overflow():
    delays = DecorrelatedJitter(1.0, max_delay=7.0).delays(random.Random(1))
    values = [next(delays) for _ in range(1100)]
    assert values[-1] == 7.0


def test_jitter_is_deterministic_with_a_seeded_rng():
    a = [FullJitter().delays(random.Random(3)) for _ in range(2)]
    assert [next(a[0]) for _ in range(5)] == [next(a[1]) for _ in range(5)]


def test_get_delay(fake_clock):
    retry = make(fake_clock, backoff=Exponential(1.0, max_delay=10))
    assert [retry.get_delay(n) for n in (1, 2, 3, 5)] == [1.0, 2.0, 4.0, 10]
    with pytest.raises(ConfigurationError):
        retry.get_delay(0)


def test_backoff_validation():
    with pytest.raises(ConfigurationError):
        FullJitter(-1)
    with pytest.raises(ConfigurationError):
        Exponential(1, multiplier=0.5)
    with pytest.raises(ConfigurationError):
        Constant(-0.1)


# ----------------------------------------------------------------- deadline and Retry-After


def test_deadline_never_sleeps_past_it(fake_clock):
    fn = Flaky(100)
    retry = make(fake_clock, max_attempts=100, backoff=Constant(1.0), deadline=3.5)
    with pytest.raises(ConnectionError) as info:
        retry.call(fn)
    assert "deadline" in info.value.__notes__[-1]
    assert sum(fake_clock.sleeps) <= 3.5
    assert fn.calls == 4  # t=0,1,2,3; the wait to t=4 would cross 3.5


def test_retry_after_from_exception_is_honoured(fake_clock):
    fn = Flaky(1, ServiceUnavailableError("busy", retry_after=7))
    make(fake_clock, backoff=Constant(0.1), max_delay=30).call(fn)
    assert fake_clock.sleeps == [7.0]


def test_retry_after_longer_than_allowed_gives_up_at_once(fake_clock):
    fn = Flaky(5, ServiceUnavailableError("busy", retry_after=120))
    with pytest.raises(ServiceUnavailableError) as info:
        make(fake_clock, max_retry_after=60).call(fn)
    assert fn.calls == 1
    assert "retry_after_too_long" in info.value.__notes__[-1]


class Response:
    def __init__(self, status, headers=None):
        self.status_code = status
        self.headers = headers or {}


def test_retry_after_header_on_results_seconds_and_http_date(fake_clock):
    import email.utils

    date = email.utils.formatdate(fake_clock.time() + 4, usegmt=True)
    results = iter([Response(429, {"Retry-After": "3"}), Response(503, {"Retry-After": date}), Response(200)])
    retry = make(fake_clock, backoff=Constant(0.01), retry_on_result=lambda r: r.status_code >= 429)
    assert retry.call(lambda: next(results)).status_code == 200
    assert fake_clock.sleeps[0] == 3.0
    assert fake_clock.sleeps[1] == pytest.approx(1.0)  # the date was 4 s away, 3 s ago


def test_retry_after_can_be_ignored(fake_clock):
    fn = Flaky(1, ServiceUnavailableError("busy", retry_after=7))
    make(fake_clock, backoff=Constant(0.1), respect_retry_after=False).call(fn)
    assert fake_clock.sleeps == [0.1]


# ----------------------------------------------------------------- budget


def test_budget_stops_retries_of_a_failing_dependency(fake_clock):
    budget = RetryBudget("dep", max_tokens=10, token_ratio=0.1)
    retry = make(fake_clock, budget=budget, max_attempts=5)
    calls = 0

    def down():
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    for _ in range(20):
        with pytest.raises(ConnectionError):
            retry.call(down)
    # Without a budget: 20 calls x 5 attempts = 100. With it: ~5 failures drain it, then 1 attempt each.
    assert calls <= 20 + 5
    assert not budget.can_retry()


def test_budget_refills_with_successes(fake_clock):
    budget = RetryBudget("dep", max_tokens=10, token_ratio=0.1)
    budget.tokens = 5.0
    assert not budget.can_retry()
    retry = make(fake_clock, budget=budget)
    for _ in range(20):
        retry.call(lambda: "ok")
    assert budget.can_retry()


def test_budget_is_shared_per_name(fake_clock):
    a = Retry(name="twilio", clock=fake_clock)
    b = Retry(name="twilio", clock=fake_clock)
    assert a.budget is b.budget


def test_budget_exhaustion_is_logged_and_counted(fake_clock, registry):
    budget = RetryBudget("dep", max_tokens=2, token_ratio=0.1)
    events = EventRecorder()
    retry = make(fake_clock, name="dep", budget=budget, hooks=events.hooks, registry=registry, max_attempts=5)
    with pytest.raises(ConnectionError) as info:
        retry.call(Flaky(10))
    assert "budget_exhausted" in info.value.__notes__[-1]
    assert events.kinds("retry")[-1] == "budget_exhausted"
    assert registry.get_sample_value("retry_attempts_total", {"name": "dep", "outcome": "budget_exhausted"}) == 1


# ----------------------------------------------------------------- nesting


def test_nested_retries_do_not_multiply(fake_clock):
    inner_calls = 0

    inner = make(fake_clock, name="inner", max_attempts=3)
    outer = make(fake_clock, name="outer", max_attempts=3)

    @inner
    def leaf():
        nonlocal inner_calls
        inner_calls += 1
        raise ConnectionError("down")

    @outer
    def middle():
        return leaf()

    with pytest.raises(ConnectionError):
        middle()
    assert inner_calls == 3  # not 9


async def test_nested_async_retries_do_not_multiply(fake_clock):
    calls = 0
    inner = make(fake_clock, name="inner", max_attempts=4)
    outer = make(fake_clock, name="outer", max_attempts=2)

    @inner
    async def leaf():
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    @outer
    async def top():
        return await leaf()

    with pytest.raises(ConnectionError):
        await top()
    assert calls == 2


def test_after_a_retry_the_context_is_clean(fake_clock):
    inner = make(fake_clock, name="inner", max_attempts=3)
    make(fake_clock, name="outer").call(lambda: "ok")
    fn = Flaky(2)
    assert inner.call(fn) == "ok"
    assert fn.calls == 3


# ----------------------------------------------------------------- hooks and metrics


def test_hooks_and_metrics_on_each_retry(fake_clock):
    registry = CollectorRegistry()
    events = EventRecorder()
    retry = make(fake_clock, name="svc", hooks=events.hooks, registry=registry, max_attempts=4)
    retry.call(Flaky(2))
    assert events.kinds("retry") == ["retry", "retry", "success"]
    first = events.of("retry", "retry")[0]
    assert first.attributes["attempt"] == 1 and first.attributes["delay"] >= 0
    assert isinstance(first.attributes["error"], ConnectionError)
    assert registry.get_sample_value("retry_attempts_total", {"name": "svc", "outcome": "retry"}) == 2
    assert registry.get_sample_value("retry_attempts_total", {"name": "svc", "outcome": "success_after_retry"}) == 1
    with pytest.raises(ConnectionError):
        retry.call(Flaky(9))
    assert registry.get_sample_value("retry_attempts_total", {"name": "svc", "outcome": "gave_up"}) == 1


def test_gave_up_is_logged(fake_clock):
    import structlog

    with structlog.testing.capture_logs() as logs, pytest.raises(ConnectionError):
        make(fake_clock, name="svc", max_attempts=2).call(Flaky(5))
    gave_up = [line for line in logs if line["event"] == "retry_gave_up"]
    assert gave_up and gave_up[0]["attempts"] == 2 and gave_up[0]["error_type"] == "ConnectionError"


def test_a_failing_hook_never_breaks_the_call(fake_clock):
    from surefoot.resilience import Hooks

    def boom(event):
        raise RuntimeError("hook bug")

    assert make(fake_clock, hooks=Hooks(boom)).call(Flaky(1)) == "ok"


# ----------------------------------------------------------------- forms


def test_decorator_on_function_keeps_metadata(fake_clock):
    retry = make(fake_clock)

    @retry
    def fetch(x, *, y=1):
        """Doc."""
        return x + y

    assert fetch(1, y=2) == 3
    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Doc."
    assert fetch.retry is retry


async def test_decorator_on_coroutine_function(fake_clock):
    fn = Flaky(2)

    @make(fake_clock)
    async def fetch():
        return fn()

    assert asyncio.iscoroutinefunction(fetch)
    assert await fetch() == "ok"
    assert fn.calls == 3


def test_decorator_on_generator_retries_until_first_item(fake_clock):
    starts = 0

    @make(fake_clock)
    def rows():
        nonlocal starts
        starts += 1
        if starts < 3:
            raise ConnectionError("not yet")
        yield from (1, 2, 3)
        return "done"

    assert list(rows()) == [1, 2, 3]
    assert starts == 3


def test_generator_failure_after_first_item_is_not_replayed(fake_clock):
    starts = 0

    @make(fake_clock)
    def rows():
        nonlocal starts
        starts += 1
        yield 1
        raise ConnectionError("mid-stream")

    gen = rows()
    assert next(gen) == 1
    with pytest.raises(ConnectionError):
        next(gen)
    assert starts == 1


async def test_decorator_on_async_generator(fake_clock):
    starts = 0

    @make(fake_clock)
    async def rows():
        nonlocal starts
        starts += 1
        if starts < 2:
            raise ConnectionError("not yet")
        for i in range(3):
            yield i

    assert [x async for x in rows()] == [0, 1, 2]
    assert starts == 2


async def test_empty_async_generator(fake_clock):
    @make(fake_clock)
    async def rows():
        return
        yield  # pragma: no cover

    assert [x async for x in rows()] == []


def test_iterator_form(fake_clock):
    fn = Flaky(2)
    seen = []
    for attempt in retrying(on=ConnectionError, max_attempts=5, clock=fake_clock, budget=False):
        with attempt:
            seen.append(attempt.number)
            fn()
    assert seen == [1, 2, 3]
    assert len(fake_clock.sleeps) == 2


def test_iterator_form_reraises_last_error(fake_clock):
    attempts = 0
    with pytest.raises(ConnectionError) as info:
        for attempt in retrying(on=ConnectionError, max_attempts=3, clock=fake_clock, budget=False):
            with attempt:
                attempts += 1
                raise ConnectionError(f"failure {attempts}")
    assert str(info.value) == "failure 3"
    assert attempts == 3


def test_iterator_form_does_not_retry_other_errors(fake_clock):
    with pytest.raises(KeyError):
        for attempt in retrying(on=ConnectionError, clock=fake_clock, budget=False):
            with attempt:
                raise KeyError("x")


def test_iterator_form_get_delay(fake_clock):
    ctx = retrying(backoff="exponential", base_delay=2.0, clock=fake_clock, budget=False)
    assert ctx.get_delay(1) == 2.0 and ctx.get_delay(2) == 4.0


async def test_async_iterator_form(fake_clock):
    fn = Flaky(1)
    async for attempt in retrying(on=ConnectionError, clock=fake_clock, budget=False):
        with attempt:
            fn()
    assert fn.calls == 2
    assert len(fake_clock.sleeps) == 1


async def test_acall_retries_async(fake_clock):
    fn = Flaky(2)

    async def call():
        return fn()

    assert await make(fake_clock).acall(call) == "ok"


def test_retry_with_backoff_seed_form(fake_clock):
    fn = Flaky(2)

    @retry_with_backoff(max_attempts=3, base_delay=1.0, exceptions=(ConnectionError,), jitter=False, clock=fake_clock)
    def call():
        return fn()

    assert call() == "ok"
    assert fake_clock.sleeps == [1.0, 2.0]


def test_retry_with_backoff_max_retries_is_unambiguous(fake_clock):
    fn = Flaky(10)

    @retry_with_backoff(max_retries=2, clock=fake_clock, jitter=False, base_delay=0.1)
    def call():
        return fn()

    with pytest.raises(ConnectionError):
        call()
    assert fn.calls == 3
    with pytest.raises(ConfigurationError, match="not both"):
        retry_with_backoff(max_attempts=3, max_retries=2)


def test_retry_on_failure_functional(fake_clock):
    fn = Flaky(1)
    with no_waits():
        assert retry_on_failure(fn, 1, 2, max_attempts=2, key="v") == "ok"
    assert fn.calls == 2


async def test_retry_on_failure_async():
    fn = Flaky(1)

    async def call():
        return fn()

    with no_waits():
        assert await retry_on_failure(call, max_attempts=2) == "ok"


def test_retry_network_operation_retries_network_errors_only():
    with no_waits():
        fn = Flaky(2, TimeoutError("slow"))
        assert retry_network_operation(fn) == "ok"
        bug = Flaky(1, ValueError("bug"))
        with pytest.raises(ValueError):
            retry_network_operation(bug)
        assert bug.calls == 1


def test_retry_api_call_retries_statuses_and_returns_last_response():
    with no_waits():
        responses = iter([Response(503), Response(200)])
        assert retry_api_call(lambda: next(responses)).status_code == 200
        always = [Response(500), Response(500), Response(500)]
        it = iter(always)
        assert retry_api_call(lambda: next(it)) is always[2]
        not_found = Flaky(0, value=Response(404))
        assert retry_api_call(not_found).status_code == 404 and not_found.calls == 1


# ----------------------------------------------------------------- testing switch


def test_testing_switch_turns_waits_off_and_caps_attempts():
    clock = FakeClock()
    with no_waits(attempts=2):
        fn = Flaky(5)
        with pytest.raises(ConnectionError):
            Retry(clock=clock, max_attempts=10, budget=False).call(fn)
        assert fn.calls == 2
    assert clock.sleeps == []
    set_testing(True)
    fn = Flaky(2)
    assert Retry(clock=clock, budget=False, base_delay=100).call(fn) == "ok"
    assert clock.sleeps == []
    set_testing(False)
    with pytest.raises(ConfigurationError):
        set_testing(True, attempts=0)


def test_cancellation_is_never_retried_even_with_on_baseexception(fake_clock):
    import asyncio

    fn = Flaky(3, asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        make(fake_clock, on=BaseException).call(fn)
    assert fn.calls == 1
    fn = Flaky(3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        make(fake_clock, on=BaseException).call(fn)
    assert fn.calls == 1


def test_unnamed_retries_do_not_share_a_budget(fake_clock):
    assert Retry(clock=fake_clock).budget is not Retry(clock=fake_clock).budget


@given(
    failures=st.integers(0, 12),
    max_attempts=st.integers(1, 8),
    deadline=st.one_of(st.none(), st.floats(0.5, 20)),
    backoff=st.sampled_from(["full_jitter", "decorrelated_jitter", "exponential", "constant"]),
    seed=st.integers(0, 1000),
)
@settings(max_examples=200, deadline=None)
def test_attempt_and_deadline_invariants(failures, max_attempts, deadline, backoff, seed):
    clock = FakeClock()
    fn = Flaky(failures)
    retry = Retry(clock=clock, max_attempts=max_attempts, deadline=deadline, backoff=backoff,
                  rng=random.Random(seed), budget=False, base_delay=0.5, max_delay=4.0)
    try:
        assert retry.call(fn) == "ok"
        succeeded = True
    except ConnectionError:
        succeeded = False
    assert 1 <= fn.calls <= max_attempts  # never more attempts than configured
    assert len(clock.sleeps) == fn.calls - 1  # one wait between consecutive attempts
    assert all(0 <= s <= 4.0 for s in clock.sleeps)  # never above max_delay
    if deadline is not None:
        assert sum(clock.sleeps) < deadline  # never a wait past the deadline
    if succeeded:
        assert fn.calls == failures + 1
    elif deadline is None:
        assert fn.calls == max_attempts  # without a deadline only the attempts stop it


class PushBack(Exception):
    """A provider error carrying the Retry-After value as it was sent (seconds or an HTTP date)."""

    def __init__(self, retry_after: object) -> None:
        super().__init__("slow down")
        self.retry_after = retry_after


def test_retry_after_attribute_as_an_http_date_is_a_delay_from_now(fake_clock):
    import email.utils

    date = email.utils.formatdate(fake_clock.time() + 20, usegmt=True)
    fn = Flaky(1, PushBack(date))
    make(fake_clock, backoff=Constant(0.1), max_delay=60).call(fn)
    assert fn.calls == 2
    assert fake_clock.sleeps == [pytest.approx(20.0)]


@pytest.mark.parametrize("value", ["-5", "1e3", "soon", ""])
def test_unreadable_retry_after_values_are_ignored(fake_clock, value):
    fn = Flaky(1, PushBack(value))
    make(fake_clock, backoff=Constant(0.25)).call(fn)
    assert fake_clock.sleeps == [0.25]  # the backoff alone, as if no Retry-After was sent


@pytest.mark.parametrize("options", [
    {"max_retry_after": -1},
    {"max_retry_after": float("nan")},
    {"retry_if": "ConnectionError"},
    {"retry_on_result": 503},
    {"deadline": "10"},
    {"hooks": [print]},
])
def test_unusable_retry_options_are_clear_errors(options):
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        Retry(**options)
