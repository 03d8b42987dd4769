"""One call puts every piece of surefoot's process-global state back to its start-up state."""

from __future__ import annotations

import structlog

import surefoot
from surefoot import testing
from surefoot._core.settings import get_settings
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


def test_every_piece_of_state_is_held_by_the_one_process_state_object() -> None:
    import surefoot.flags  # noqa: F401  (each area registers its state when imported)
    import surefoot.tracing._api  # noqa: F401
    from surefoot._core.state import STATE

    owned = STATE.owned()
    for name in ("logging", "tracing", "flags", "resilience.breakers", "resilience.retry_budgets",
                 "resilience.timeouts", "resilience.waits"):
        assert name in owned, name
    set_timeout("held-op", 2.0)
    assert owned["resilience.timeouts"] == {"held-op": 2.0}  # the holder is the live table
    testing.reset_all()
    assert owned["resilience.timeouts"] == {}  # reset in place: references stay valid


def test_a_settings_section_is_resolved_once_per_environment(monkeypatch) -> None:
    from surefoot._core.settings import section
    from surefoot.outbox import OutboxSettings

    monkeypatch.setenv("SUREFOOT_OUTBOX_BATCH_SIZE", "7")
    first = section(OutboxSettings)
    assert first.batch_size == 7
    assert section(OutboxSettings) is first  # the same typed object for every component
    monkeypatch.setenv("SUREFOOT_OUTBOX_BATCH_SIZE", "9")
    assert section(OutboxSettings).batch_size == 9  # the environment changed: read again
    surefoot.configure()
    monkeypatch.setenv("SUREFOOT_OUTBOX_BATCH_SIZE", "oops")
    import pytest

    with pytest.raises(surefoot.ConfigurationError, match="SUREFOOT_OUTBOX_BATCH_SIZE"):
        section(OutboxSettings)
