"""Test helpers for services built with surefoot. Never import this from production code."""

from ._clock import FakeClock
from ._outbox import DrainResult, InMemoryOutbox, adrain, drain

__all__ = ["FakeClock", "InMemoryOutbox", "DrainResult", "drain", "adrain"]
from ._webhooks import (  # noqa: E402
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

__all__ += [
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
