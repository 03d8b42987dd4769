"""Signed-webhook verification and the idempotent inbox.

Verifiers (no database needed)::

    TwilioVerifier, StripeVerifier, StandardWebhooksVerifier, GitHubVerifier,
    Verifier (protocol for your own), VerifiedDelivery, SignatureError, PublicURL,
    PayloadTooLargeError, twilio_dedupe_key, body_hash_key

The inbox (SQLAlchemy, PostgreSQL or SQLite)::

    inbox = WebhookInbox(engine)

    @inbox.endpoint(app, "/webhooks/stripe", verifier=StripeVerifier(secret))
    async def on_stripe(delivery: Delivery): ...

plus ``create_tables`` / ``acreate_tables``, ``Ignore`` for unknown tenants, and
``purge_webhook_events`` / ``apurge_webhook_events`` for the 90-day retention.

The SQL parts are loaded on first use, so verifying signatures needs no SQLAlchemy.
"""

from __future__ import annotations

from ._twilio import PublicURL, TwilioVerifier, twilio_dedupe_key
from ._verify import (
    GitHubVerifier,
    PayloadTooLargeError,
    SignatureError,
    StandardWebhooksVerifier,
    StripeVerifier,
    VerifiedDelivery,
    Verifier,
    body_hash_key,
)

__all__ = [
    "TwilioVerifier",
    "StripeVerifier",
    "StandardWebhooksVerifier",
    "GitHubVerifier",
    "Verifier",
    "VerifiedDelivery",
    "SignatureError",
    "PublicURL",
    "PayloadTooLargeError",
    "twilio_dedupe_key",
    "body_hash_key",
    "WebhookInbox",
    "Delivery",
    "Ignore",
    "redact_headers",
    "create_tables",
    "acreate_tables",
    "purge_webhook_events",
    "apurge_webhook_events",
    "webhook_events",
]

_LAZY = {
    "WebhookInbox": "._inbox",
    "Delivery": "._inbox",
    "Ignore": "._inbox",
    "redact_headers": "._inbox",
    "create_tables": "._store",
    "acreate_tables": "._store",
    "webhook_events": "._store",
    "purge_webhook_events": "._retention",
    "apurge_webhook_events": "._retention",
}


from .._core.extras import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
