"""One call puts every piece of surefoot's process-global state back to its start-up state."""

from __future__ import annotations

import structlog

import surefoot
from surefoot import testing
from surefoot._config import get_settings
from surefoot.logging import configure_logging
from surefoot.resilience import get_circuit_breaker, get_retry_budget, get_timeout, set_timeout


def test_reset_all_forgets_settings_breakers_budgets_timeouts_waits_and_logging() -> None:
    surefoot.configure(service_name="billing")
    breaker = get_circuit_breaker("reset-all-provider", failure_threshold=1)
    budget = get_retry_budget("reset-all-provider")
    set_timeout("reset-all-op", 1.5)
    testing.set_testing(True, attempts=1)
    configure_logging(fmt="json")

    assert get_settings().service_name == "billing"
    assert get_timeout("reset-all-op") == 1.5
    assert testing.is_testing()
    assert structlog.is_configured()

    testing.reset_all()

    assert get_settings().service_name == "app"
    assert get_circuit_breaker("reset-all-provider") is not breaker
    assert get_retry_budget("reset-all-provider") is not budget
    assert get_timeout("reset-all-op") != 1.5
    assert not testing.is_testing()
    assert not structlog.is_configured()
