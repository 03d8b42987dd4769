from __future__ import annotations

import pytest

from surefoot.logging import (
    configure_logging,
    log_business_event,
    log_db_query,
    log_integration_call,
    log_llm_call,
    log_security_event,
)
from surefoot.testing import capture_logs


@pytest.fixture(autouse=True)
def _configured():
    import io

    configure_logging(stream=io.StringIO(), fmt="json")


def test_db_query_levels_follow_the_outcome() -> None:
    with capture_logs() as logs:
        log_db_query("select_customer", duration_ms=3.21, table="customers", rows=1)
        log_db_query("select_report", duration_ms=900, slow_ms=500)
        log_db_query("insert_call", duration_ms=1, error=RuntimeError("deadlock"))
    fast, slow, failed = logs
    assert fast["level"] == "debug" and fast["kind"] == "db_query" and fast["rows"] == 1
    assert fast["module"] == "surefoot.db" and fast["duration_ms"] == 3.21
    assert slow["level"] == "warning" and slow["slow"] is True
    assert failed["level"] == "error" and failed["error_type"] == "RuntimeError"
    assert failed["error_message"] == "deadlock"


def test_llm_call_reports_tokens_and_cost() -> None:
    with capture_logs() as logs:
        log_llm_call("gpt-x", tokens_in=1200, tokens_out=300, price_in_per_1k=0.5, price_out_per_1k=1.5)
        log_llm_call("gpt-x", tokens_in=1, tokens_out=1, cost_usd=0.01, error="timeout")
    ok, failed = logs
    assert ok["event"] == "llm_call" and ok["tokens_total"] == 1500
    assert ok["cost_usd"] == pytest.approx(0.6 + 0.45)
    assert ok["level"] == "info"
    assert failed["level"] == "error" and failed["error_message"] == "timeout"
    with pytest.raises(ValueError, match="negative"):
        log_llm_call("m", tokens_in=-1, tokens_out=0)


def test_integration_call_success_from_status() -> None:
    with capture_logs() as logs:
        log_integration_call("twilio", "send_sms", duration_ms=120.5, status=201, to="+14155552671")
        log_integration_call("twilio", "send_sms", duration_ms=80, status=503, attempt=2)
    ok, failed = logs
    assert ok["success"] is True and ok["level"] == "info" and ok["to"] == "***2671"
    assert failed["success"] is False and failed["level"] == "warning" and failed["attempt"] == 2


def test_business_and_security_events() -> None:
    with capture_logs() as logs:
        log_business_event("appointment_booked", customer_email="alice@example.com", slot="09:00")
        log_security_event("login_failed", outcome="denied", actor="user-1", client_ip="10.0.0.1")
        log_security_event("key_leaked", outcome="revoked", severity="critical", token="abc")
    business, failed_login, leaked = logs
    assert business["event"] == "appointment_booked" and business["kind"] == "business"
    assert business["customer_email"] == "***.com" and business["slot"] == "09:00"
    assert failed_login["level"] == "warning" and failed_login["outcome"] == "denied"
    assert leaked["level"] == "critical" and leaked["token"] == "[REDACTED]"
    with pytest.raises(ValueError, match="severity"):
        log_security_event("x", outcome="y", severity="loud")
