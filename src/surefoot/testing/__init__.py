"""Test helpers for services built with surefoot. Never import this from production code."""

from .._core.state import reset_all
from ._calls import CallSimulator, SimulatedCall
from ._clock import FakeClock
from ._logs import CapturedLogs, capture_logs
from ._metrics import fresh_registry, metric_value
from ._outbox import DrainResult, InMemoryOutbox, adrain, drain
from ._overrides import override_dependencies
from ._resilience import EventRecorder, is_testing, no_waits, provider_failures, set_testing
from ._slo import SloExpectationError, expect_slo
from ._twilio import FakeMessage, TwilioFake
from ._webhooks import (
    form_body,
    golden_github_push,
    golden_standard_event,
    golden_stripe_event,
    golden_twilio_inbound_sms,
    golden_twilio_voice_status,
    sign_github,
    sign_standard,
    sign_stripe,
    sign_twilio,
    sign_twilio_json,
)

__all__ = [
    # time and process state
    "FakeClock",
    "reset_all",
    # logs and metrics
    "capture_logs",
    "CapturedLogs",
    "metric_value",
    "fresh_registry",
    # resilience: waits off, recorded decisions, provider failures
    "set_testing",
    "is_testing",
    "no_waits",
    "EventRecorder",
    "provider_failures",
    # FastAPI dependencies
    "override_dependencies",
    # outbox
    "InMemoryOutbox",
    "DrainResult",
    "drain",
    "adrain",
    # Twilio fake (Messages API over HTTP) and call simulator
    "TwilioFake",
    "FakeMessage",
    "CallSimulator",
    "SimulatedCall",
    # service level objectives
    "expect_slo",
    "SloExpectationError",
    # webhook signing and golden payloads
    "sign_twilio",
    "sign_twilio_json",
    "sign_stripe",
    "sign_standard",
    "sign_github",
    "form_body",
    "golden_twilio_voice_status",
    "golden_twilio_inbound_sms",
    "golden_stripe_event",
    "golden_github_push",
    "golden_standard_event",
]
