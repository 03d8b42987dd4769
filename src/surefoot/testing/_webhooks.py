"""Sign webhook requests like the providers do, and golden sample payloads to sign.

Use them to test your own endpoints with valid, tampered and stale deliveries::

    body = golden_stripe_event("invoice.paid")
    headers = sign_stripe(body, "whsec_test", timestamp=clock.time())
    client.post("/webhooks/stripe", content=body, headers=headers)

Each ``sign_*`` function returns the headers to send (``Content-Type`` included). Golden
payloads are fresh copies shaped like the provider's real deliveries (ids are fake).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .._core.signing import (
    decode_standard_secret,
    github_signature,
    standard_signature,
    stripe_signature,
    twilio_body_hash,
    twilio_signature,
)

__all__ = [
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

FORM = "application/x-www-form-urlencoded"


def _bytes(payload: bytes | str | Mapping[str, Any] | list[Any]) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":")).encode()


def form_body(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """Encode form parameters as Twilio does (``application/x-www-form-urlencoded``)."""
    items = params.items() if isinstance(params, Mapping) else params
    return urlencode(list(items)).encode()


def sign_twilio(
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    token: str,
    *,
    idempotency_token: str | None = None,
) -> dict[str, str]:
    """Headers for a form-encoded Twilio request to ``url`` (send ``form_body(params)``).

    Args:
        url: the public URL, query included, exactly as Twilio would call it.
        params: the form parameters (repeat a name by passing pairs).
        token: the auth token.
        idempotency_token: also send ``I-Twilio-Idempotency-Token`` (a header outside the
            signature, as Twilio sends it; the inbox stores it but never keys on it).
    """
    headers = {"X-Twilio-Signature": twilio_signature(token, url, list(params.items()) if isinstance(params, Mapping) else list(params)), "Content-Type": FORM}
    if idempotency_token is not None:
        headers["I-Twilio-Idempotency-Token"] = idempotency_token
    return headers


def sign_twilio_json(url: str, body: bytes | str | Mapping[str, Any], token: str) -> tuple[str, bytes, dict[str, str]]:
    """Sign a JSON Twilio request: returns ``(url with bodySHA256, body bytes, headers)``."""
    raw = _bytes(body)
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + "bodySHA256=" + twilio_body_hash(raw)
    signed_url = urlunsplit(parts._replace(query=query))
    headers = {"X-Twilio-Signature": twilio_signature(token, signed_url), "Content-Type": "application/json"}
    return signed_url, raw, headers


def sign_stripe(
    payload: bytes | str | Mapping[str, Any],
    secret: str | Iterable[str],
    *,
    timestamp: float | None = None,
    extra_schemes: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Headers for a Stripe delivery of ``payload`` (one ``v1`` per secret, as during rotation).

    Args:
        payload: the exact body to send.
        secret: the ``whsec_...`` secret, or several.
        timestamp: the signed Unix time (default: now).
        extra_schemes: other schemes to add, e.g. ``{"v0": "..."}`` (verifiers ignore them).
    """
    raw = _bytes(payload)
    ts = int(time.time() if timestamp is None else timestamp)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    parts = [f"t={ts}"] + [f"v1={stripe_signature(s, ts, raw)}" for s in secrets]
    parts += [f"{k}={v}" for k, v in (extra_schemes or {}).items()]
    return {"Stripe-Signature": ",".join(parts), "Content-Type": "application/json"}


def sign_standard(
    payload: bytes | str | Mapping[str, Any],
    secret: str | Iterable[str],
    *,
    msg_id: str | None = None,
    timestamp: float | None = None,
    prefix: str = "webhook",
) -> dict[str, str]:
    """Headers for a Standard Webhooks delivery (``prefix="svix"`` for Svix's names).

    Args:
        payload: the exact body to send.
        secret: ``whsec_...`` secret, or several (one ``v1`` token each, space-separated).
        msg_id: the message id (default: a fresh ``msg_...``).
        timestamp: the signed Unix time (default: now).
        prefix: ``"webhook"`` or ``"svix"``.
    """
    raw = _bytes(payload)
    ts = int(time.time() if timestamp is None else timestamp)
    mid = msg_id or f"msg_{uuid.uuid4().hex}"
    secrets = [secret] if isinstance(secret, str) else list(secret)
    signature = " ".join(standard_signature(decode_standard_secret(s), mid, ts, raw) for s in secrets)
    return {
        f"{prefix}-id": mid,
        f"{prefix}-timestamp": str(ts),
        f"{prefix}-signature": signature,
        "Content-Type": "application/json",
    }


def sign_github(
    payload: bytes | str | Mapping[str, Any],
    secret: str,
    *,
    delivery_id: str | None = None,
    event: str = "push",
) -> dict[str, str]:
    """Headers for a GitHub delivery (``X-Hub-Signature-256``, ``X-GitHub-Delivery``, ``X-GitHub-Event``).

    Only the body is signed: two calls for the same body are the same delivery to the inbox,
    whatever ``delivery_id`` says. Vary the body (e.g. ``golden_github_push(ref=...)``) for
    distinct deliveries.
    """
    raw = _bytes(payload)
    return {
        "X-Hub-Signature-256": github_signature(secret, raw),
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
    }


def golden_twilio_voice_status(**overrides: str) -> dict[str, str]:
    """A Twilio voice status callback (a missed call: ``CallStatus=no-answer``) as form fields."""
    params = {
        "AccountSid": "AC00000000000000000000000000000000",
        "ApiVersion": "2010-04-01",
        "CallSid": "CA11111111111111111111111111111111",
        "CallStatus": "no-answer",
        "CallDuration": "0",
        "Called": "+15005550006",
        "Caller": "+14155550100",
        "Direction": "inbound",
        "From": "+14155550100",
        "To": "+15005550006",
        "SequenceNumber": "0",
        "Timestamp": "Tue, 24 Nov 2026 12:00:00 +0000",
        "CallbackSource": "call-progress-events",
    }
    params.update(overrides)
    return params


def golden_twilio_inbound_sms(**overrides: str) -> dict[str, str]:
    """A Twilio inbound SMS webhook as form fields."""
    params = {
        "AccountSid": "AC00000000000000000000000000000000",
        "ApiVersion": "2010-04-01",
        "MessageSid": "SM22222222222222222222222222222222",
        "SmsSid": "SM22222222222222222222222222222222",
        "SmsMessageSid": "SM22222222222222222222222222222222",
        "SmsStatus": "received",
        "Body": "Hi, can you come fix my sink tomorrow?",
        "NumMedia": "0",
        "NumSegments": "1",
        "From": "+14155550100",
        "To": "+15005550006",
        "FromCountry": "US",
        "ToCountry": "US",
        "MessagingServiceSid": "MG33333333333333333333333333333333",
    }
    params.update(overrides)
    return params


def golden_stripe_event(event_type: str = "invoice.paid", *, event_id: str | None = None, created: int = 1_764_000_000) -> bytes:
    """A Stripe event as JSON bytes (``id`` is the dedupe key)."""
    event = {
        "id": event_id or "evt_1QaBcDeFgHiJkLmN",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {
            "object": {
                "id": "in_1QaBcDeFgHiJkLmN",
                "object": "invoice",
                "customer": "cus_QaBcDeFgHiJkLm",
                "subscription": "sub_1QaBcDeFgHiJkLmN",
                "amount_paid": 4900,
                "currency": "usd",
                "status": "paid",
                "client_reference_id": "tenant_123",
            }
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


def golden_github_push(*, ref: str = "refs/heads/main") -> bytes:
    """A trimmed GitHub ``push`` event as JSON bytes."""
    event = {
        "ref": ref,
        "before": "0" * 40,
        "after": "9f2d8c4b1e6a7d3f0c5b2a8e4d1f6c3b7a9e0d2f",
        "repository": {"id": 1, "name": "service", "full_name": "example/service", "private": True},
        "pusher": {"name": "octocat"},
        "sender": {"login": "octocat", "id": 1},
        "commits": [
            {
                "id": "9f2d8c4b1e6a7d3f0c5b2a8e4d1f6c3b7a9e0d2f",
                "message": "Fix the booking form",
                "timestamp": "2026-11-24T12:00:00Z",
                "author": {"name": "Octo Cat", "username": "octocat"},
            }
        ],
        "head_commit": {"id": "9f2d8c4b1e6a7d3f0c5b2a8e4d1f6c3b7a9e0d2f", "message": "Fix the booking form"},
    }
    return json.dumps(event, separators=(",", ":")).encode()


def golden_standard_event(event_type: str = "invoice.paid", **data: Any) -> bytes:
    """A Standard Webhooks payload (``type``, ``timestamp``, ``data``) as JSON bytes."""
    body = {"type": event_type, "timestamp": "2026-11-24T12:00:00Z", "data": data or {"id": "inv_123", "amount": 4900}}
    return json.dumps(body, separators=(",", ":")).encode()
