"""Rates trip a breaker when they *reach* their threshold, for every threshold a user may write."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot.resilience import CircuitBreaker, CircuitOpenError, CircuitState
from surefoot.testing import FakeClock


def _ok() -> str:
    return "ok"


def _fail() -> str:
    raise ConnectionError("down")


def _run(breaker: CircuitBreaker, outcomes: list[bool]) -> None:
    for failed in outcomes:
        try:
            breaker.call(_fail if failed else _ok)
        except (ConnectionError, CircuitOpenError):
            pass


@settings(max_examples=200, deadline=None)
@given(
    percent=st.integers(min_value=1, max_value=100),
    calls=st.sampled_from([100, 200, 500, 1000]),
    below=st.booleans(),
    data=st.data(),
)
def test_a_count_window_trips_exactly_when_the_failure_rate_reaches_the_threshold(percent, calls, below, data):
    # `percent` failures per hundred calls, written as a user writes it: 0.07 for 7 %.
    threshold = percent / 100
    failures = percent * calls // 100 - (1 if below else 0)
    outcomes = [True] * failures + [False] * (calls - failures)
    order = data.draw(st.permutations(outcomes))
    breaker = CircuitBreaker(
        "rate", failure_rate_threshold=threshold, window="count", window_size=calls, minimum_calls=calls,
        clock=FakeClock(), metrics=False,
    )
    _run(breaker, order)  # judged once, on the last call: the window is full only then
    assert breaker.state == (CircuitState.CLOSED if below else CircuitState.OPEN)


@settings(max_examples=100, deadline=None)
@given(percent=st.integers(min_value=1, max_value=99), below=st.booleans())
def test_a_time_window_trips_exactly_when_the_failure_rate_reaches_the_threshold(percent, below):
    failures = percent - (1 if below else 0)
    breaker = CircuitBreaker(
        "rate-time", failure_rate_threshold=percent / 100, window="time", window_size=60, minimum_calls=100,
        clock=FakeClock(), metrics=False,
    )
    _run(breaker, [False] * (100 - failures) + [True] * failures)
    assert breaker.state == (CircuitState.CLOSED if below else CircuitState.OPEN)


@pytest.mark.parametrize("threshold", [0.07, 0.14, 0.28, 0.29, 0.57, 0.58])
def test_a_slow_call_rate_that_reaches_the_threshold_trips(threshold):
    clock = FakeClock()
    breaker = CircuitBreaker(
        "slow", slow_call_duration=1.0, slow_call_rate_threshold=threshold, window="count", window_size=100,
        clock=clock, metrics=False,
    )

    def slow() -> str:
        clock.advance(2.0)
        return "late"

    slow_calls = round(threshold * 100)
    for _ in range(100 - slow_calls):
        breaker.call(_ok)
    for _ in range(slow_calls):
        breaker.call(slow)
    assert breaker.state == CircuitState.OPEN
    assert breaker.get_stats()["slow_call_rate"] == threshold


@pytest.mark.parametrize(("rate", "failures", "state"), [
    (0.07, 7, CircuitState.OPEN),     # 7 of 100 trials reach 7 %
    (0.07, 6, CircuitState.CLOSED),
    (0.29, 29, CircuitState.OPEN),
    (0.29, 28, CircuitState.CLOSED),
])
def test_half_open_permits_decide_on_the_rate_reaching_the_threshold(rate, failures, state):
    clock = FakeClock()
    breaker = CircuitBreaker(
        "trial", failure_threshold=1, open_duration=10, half_open_permits=100, half_open_failure_rate=rate,
        clock=clock, metrics=False,
    )
    _run(breaker, [True])
    clock.advance(10)
    trials = [False] * (100 - failures) + [True] * failures
    _run(breaker, trials)
    assert breaker.state == state


@pytest.mark.parametrize(("failures", "state"), [(7, CircuitState.OPEN), (6, CircuitState.CLOSED)])
def test_half_open_traffic_decides_on_the_rate_reaching_the_threshold(failures, state):
    import random

    clock = FakeClock()
    breaker = CircuitBreaker(
        "traffic", failure_threshold=1, open_duration=10, half_open_traffic=1.0, half_open_window=5,
        half_open_failure_rate=0.07, half_open_min_calls=100, rng=random.Random(0), clock=clock, metrics=False,
    )
    _run(breaker, [True])
    clock.advance(10)
    _run(breaker, [False] * 50)
    clock.advance(5)  # the half-open window has passed: the 100th trial decides
    _run(breaker, [False] * (50 - failures) + [True] * failures)
    assert breaker.state == state
