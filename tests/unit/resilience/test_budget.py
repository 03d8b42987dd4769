"""Retry budget: a token bucket fed by successes (gRPC throttling numbers)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot.errors import ConfigurationError
from surefoot.resilience import RetryBudget, get_retry_budget, reset_retry_budgets


def test_starts_full_and_allows_retries():
    budget = RetryBudget()
    assert budget.tokens == 10 and budget.can_retry()


def test_documented_numbers_five_failures_then_one_retry_per_ten_successes():
    budget = RetryBudget(max_tokens=10, token_ratio=0.1, threshold=0.5)
    for _ in range(4):
        budget.on_failure()
    assert budget.can_retry()  # 6 > 5
    budget.on_failure()
    assert not budget.can_retry()  # 5 is not above 5
    for _ in range(10):
        budget.on_success()
    assert budget.can_retry()  # ~6
    budget.on_failure()
    assert not budget.can_retry()


@given(st.lists(st.booleans(), max_size=300))
@settings(max_examples=200, deadline=None)
def test_tokens_stay_within_bounds(outcomes):
    budget = RetryBudget(max_tokens=10, token_ratio=0.1)
    for ok in outcomes:
        budget.on_success() if ok else budget.on_failure()
        assert 0.0 <= budget.tokens <= 10.0


@pytest.mark.parametrize(
    "options", [{"max_tokens": 0}, {"token_ratio": 0}, {"token_ratio": 20}, {"threshold": 1.0}, {"threshold": -0.1}]
)
def test_bad_numbers_are_clear_errors(options):
    with pytest.raises(ConfigurationError, match="RetryBudget"):
        RetryBudget(**options)


def test_shared_per_name_and_reset():
    reset_retry_budgets()
    a = get_retry_budget("x", max_tokens=4)
    assert get_retry_budget("x") is a and a.max_tokens == 4
    assert get_retry_budget("y") is not a
    a.on_failure()
    a.reset()
    assert a.tokens == 4
    reset_retry_budgets()
    assert get_retry_budget("x") is not a
    assert "RetryBudget('x'" in repr(get_retry_budget("x"))


def test_floor_allows_a_few_retries_per_second_when_drained(fake_clock):
    budget = RetryBudget(max_tokens=10, min_retries_per_second=2, clock=fake_clock)
    for _ in range(10):
        budget.on_failure()
    assert budget.tokens == 0
    assert [budget.can_retry() for _ in range(3)] == [True, True, False]  # 2 in the reserve
    fake_clock.advance(0.5)
    assert budget.can_retry() and not budget.can_retry()  # +1 per half second
    with pytest.raises(ConfigurationError):
        RetryBudget(min_retries_per_second=-1)
