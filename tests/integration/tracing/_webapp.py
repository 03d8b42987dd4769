"""The web process: a signed Twilio webhook writing an outbox event (PostgreSQL)."""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI

import surefoot
from surefoot.webhooks import TwilioVerifier, WebhookInbox

engine = sa.create_engine(os.environ["TEST_DB_URL"])
app = FastAPI(telemetry={"tracing": os.environ.get("TEST_FASTAPI_TELEMETRY") == "1"})
surefoot.install(app)  # SUREFOOT_TRACING=true in the environment turns tracing on
inbox = WebhookInbox(engine)


@inbox.endpoint(app, "/webhooks/twilio/sms", verifier=TwilioVerifier(os.environ["TEST_TWILIO_TOKEN"]))
def sms_inbound(delivery: Any) -> None:
    delivery.add_event("SmsReceived", {"from": delivery.form()["From"]}, tenant_id="acme")
