"""One backoff protocol for the retry and the outbox: every policy gives both views."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot import outbox, resilience
from surefoot.errors import ConfigurationError
from surefoot.testing import FakeClock


def test_both_packages_export_one_family() -> None:
    assert outbox.Backoff is resilience.Backoff
    assert issubclass(outbox.FullJitter, resilience.FullJitter)
    # the outbox keeps its own defaults and spelling
    assert outbox.FullJitter().base == 1.0 and outbox.FullJitter().cap == 600.0
    assert outbox.FullJitter(base=2, cap=10) == resilience.FullJitter(2, max_delay=10)
    with pytest.raises(ConfigurationError):
        resilience.FullJitter(1, max_delay=5, cap=6)


POLICIES = [
    resilience.FullJitter(0.5, max_delay=30),
    outbox.FullJitter(base=1, cap=100),
    resilience.Exponential(1.0, max_delay=10),
    resilience.Constant(0.25),
    resilience.DecorrelatedJitter(1.0, max_delay=60),
]


@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@given(attempts=st.integers(-2, 40), seed=st.integers(0, 2**32))
@settings(max_examples=50)
def test_delay_is_a_wait_within_the_policy_bounds(policy, attempts, seed) -> None:
    wait = policy.delay(attempts, random.Random(seed))
    assert wait == 0.0 if attempts <= 0 else 0.0 <= wait <= getattr(policy, "max_delay", 0.25)


@pytest.mark.parametrize("policy", [p for p in POLICIES if not isinstance(p, resilience.DecorrelatedJitter)], ids=repr)
def test_both_views_agree_for_memoryless_policies(policy) -> None:
    # delays() (the retry's view) and delay(n) (the dispatcher's view) draw the same waits
    for seed in range(20):
        waits = policy.delays(random.Random(seed))
        for n in range(1, 8):
            expected = next(waits)
            rng = random.Random(seed)
            for _ in range(n - 1):
                rng.random()  # the draws of the previous waits
            assert policy.delay(n, rng) == pytest.approx(expected)


def test_the_outbox_policy_drives_a_retry_and_a_retry_policy_drives_the_dispatcher_view() -> None:
    clock = FakeClock()
    retry = resilience.Retry(name="bk", max_attempts=3, backoff=outbox.FullJitter(base=0.1, cap=1),
                             clock=clock, budget=None)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError()
        return "ok"

    assert retry.call(flaky) == "ok"
    assert len(clock.sleeps) == 2 and all(0 <= s <= 1 for s in clock.sleeps)
    assert resilience.Exponential(1.0, max_delay=10).delay(3, random.Random(0)) == 4.0


def test_a_policy_implementing_neither_view_says_so() -> None:
    class Nothing(resilience.Backoff):
        pass

    with pytest.raises(NotImplementedError, match="neither"):
        Nothing().delay(1, random.Random())
