"""An unusable option is refused when the component is built, with a message saying what to fix."""

from __future__ import annotations

import math

import pytest

from surefoot.errors import ConfigurationError
from surefoot.resilience import (
    Bulkhead,
    Chaos,
    CircuitBreaker,
    Policy,
    RateLimiter,
    Timeout,
    set_timeout,
)


@pytest.mark.parametrize(("options", "names"), [
    ({"failure_rate_threshold": 0.5, "window_size": 10, "minimum_calls": 20}, "minimum_calls"),
    ({"failure_rate_threshold": "0.5"}, "failure_rate_threshold"),
    ({"open_duration": math.nan}, "open_duration"),
    ({"open_duration": math.inf}, "open_duration"),
    ({"max_retry_after": -1}, "max_retry_after"),
    ({"failure_predicate": ValueError()}, "failure_predicate"),
    ({"result_failure": 503}, "result_failure"),
    ({"hooks": [print]}, "hooks"),
])
def test_circuit_breaker(options, names):
    with pytest.raises(ConfigurationError, match=names):
        CircuitBreaker("bad", **options)


def test_a_minimum_a_count_window_can_hold_is_accepted():
    breaker = CircuitBreaker("edge", failure_rate_threshold=0.5, window_size=10, minimum_calls=10, metrics=False)
    assert breaker.get_stats()["window_calls"] == 0


@pytest.mark.parametrize(("seconds", "names"), [
    ("sms_sned", "sms_send"),      # a typo of a table operation: the message lists the table
    (math.inf, "finite"),
    (math.nan, "finite"),
])
def test_timeout_seconds(seconds, names):
    with pytest.raises(ConfigurationError, match=names):
        Timeout(seconds)


def test_timeout_names_registered_with_set_timeout_are_accepted():
    set_timeout("carrier_lookup", 4)
    assert Timeout("carrier_lookup").seconds == 4.0
    assert Policy(name="carrier", timeout="carrier_lookup").timeout.seconds == 4.0


@pytest.mark.parametrize("seconds", [0, -1, "5"])
def test_set_timeout_needs_positive_seconds(seconds):
    with pytest.raises(ConfigurationError, match="set_timeout"):
        set_timeout("sms_send", seconds)


@pytest.mark.parametrize("workers", [0, 2.5])
def test_timeout_worker_pool_size(workers):
    with pytest.raises(ConfigurationError, match="max_workers"):
        Timeout(1, max_workers=workers)


@pytest.mark.parametrize("max_wait", ["1", math.nan, math.inf])
def test_bulkhead_max_wait(max_wait):
    with pytest.raises(ConfigurationError, match="max_wait"):
        Bulkhead(2, max_wait=max_wait)


@pytest.mark.parametrize(("options", "names"), [
    ({"fault": "connection reset"}, "fault"),
    ({"result_rate": 1.0, "result": 503}, "result"),
    ({"latency": (1, 2, 3)}, "latency"),
    ({"latency": (2, 1)}, "latency"),
    ({"fault_rate": "0.5"}, "fault_rate"),
    ({"hooks": print}, "hooks"),
])
def test_chaos(options, names):
    with pytest.raises(ConfigurationError, match=names):
        Chaos(enabled=True, **options)


@pytest.mark.parametrize(("options", "names"), [
    ({"retry": {"max_attempt": 3}}, "retry"),
    ({"breaker": {"failure_treshold": 3}}, "breaker"),
])
def test_policy_option_dicts_name_the_argument(options, names):
    with pytest.raises(ConfigurationError, match=names):
        Policy(name="typo", **options)


def test_every_component_refuses_hooks_that_are_not_hooks():
    for build in (
        lambda: Bulkhead(1, hooks=print),
        lambda: RateLimiter(1, hooks=print),
        lambda: Timeout(1, hooks=print),
    ):
        with pytest.raises(ConfigurationError, match="Hooks"):
            build()
