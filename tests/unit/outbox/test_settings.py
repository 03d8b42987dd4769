"""SUREFOOT_OUTBOX_* settings."""

import pytest

from surefoot._core.settings import load_settings
from surefoot.errors import ConfigurationError
from surefoot.outbox import OutboxSettings


def test_defaults_follow_the_runbook():
    s = load_settings(OutboxSettings)
    assert (s.batch_size, s.concurrency, s.retention_days) == (100, 2, 30)
    assert s.lease_seconds == 30


@pytest.mark.parametrize("raw", ['["SendSms", "sms.*"]', "SendSms, sms.*", "SendSms,sms.*,"])
def test_paused_events_json_or_comma_separated(monkeypatch, raw):
    monkeypatch.setenv("SUREFOOT_OUTBOX_PAUSED_EVENTS", raw)
    assert load_settings(OutboxSettings).paused_events == ["SendSms", "sms.*"]


def test_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("SUREFOOT_OUTBOX_BATCH_SIZE", "0")
    with pytest.raises(ConfigurationError, match="SUREFOOT_OUTBOX_BATCH_SIZE"):
        load_settings(OutboxSettings)
