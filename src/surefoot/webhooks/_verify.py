"""Webhook signature verifiers: Stripe, Standard Webhooks (Svix) and GitHub, and what every
verifier shares (Twilio's, which also rebuilds the public URL, is in ``_twilio``).

A verifier checks one delivery on its raw bytes, before anything parses them, and returns a
:class:`VerifiedDelivery` (provider, dedupe key, lazily parsed payload) or raises
:class:`SignatureError` with a ``reason`` that is safe to show and to use as a metric label:

=================  ==============================================================
``missing_header``  a signature header (or a companion header) is absent
``malformed``       a header is present but cannot be parsed (e.g. non-numeric time)
``stale``           the signed timestamp is older than the tolerance
``future``          the signed timestamp is further ahead than the tolerance
``mismatch``        no signature matched any active secret (or a body hash differs)
=================  ==============================================================

Before anything is parsed or hashed, each verifier bounds the work an unauthenticated
request can cause: a body over ``max_body_bytes`` (a provider-appropriate default) and, for
Twilio forms, more than ``max_params`` parameters are refused with
:class:`PayloadTooLargeError` (413).

Dedupe keys come only from signed content (see each verifier), so a replay with an
unsigned header changed is still a duplicate.

Every verifier accepts several active secrets so a secret can be rotated without downtime:
add the new one, switch the provider over, remove the old one. Comparisons use
:func:`hmac.compare_digest`; the expected signature never appears in an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl

from .._core.clock import SYSTEM_CLOCK, Clock
from .._core.signing import (
    decode_standard_secret,
    github_signature,
    standard_signature,
    stripe_signature,
)
from ..errors import AuthenticationError, ConfigurationError, HTTPError

__all__ = [
    "SignatureError",
    "Reason",
    "VerifiedDelivery",
    "Verifier",
    "StripeVerifier",
    "StandardWebhooksVerifier",
    "GitHubVerifier",
    "PayloadTooLargeError",
    "body_hash_key",
]

Reason = Literal["missing_header", "malformed", "stale", "future", "mismatch"]
REASONS: tuple[str, ...] = ("missing_header", "malformed", "stale", "future", "mismatch")

# Dedupe keys longer than this are replaced by their SHA-256 so they fit the column.
MAX_KEY_LENGTH = 200

MiB = 1024 * 1024
# Provider-appropriate body limits, checked before anything is parsed or hashed. Twilio's
# form callbacks are a few KiB; GitHub caps its payloads at 25 MB.
TWILIO_MAX_BODY_BYTES = 1 * MiB
TWILIO_MAX_PARAMS = 1000
STRIPE_MAX_BODY_BYTES = 5 * MiB
STANDARD_MAX_BODY_BYTES = 5 * MiB
GITHUB_MAX_BODY_BYTES = 25 * MiB
# Signed timestamps are Unix seconds: 10 digits today, 12 until the year 33658.
MAX_TIMESTAMP_DIGITS = 12


class PayloadTooLargeError(HTTPError):
    """A webhook body (or its parameter count) exceeds a limit checked before verification (413)."""

    status = 413
    code = "PAYLOAD_TOO_LARGE"
    title = "Content Too Large"


def _positive(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{what} must be a positive integer, got {value!r}")
    return value


def check_body_size(body: bytes, limit: int, provider: str) -> None:
    """Raise :class:`PayloadTooLargeError` when ``body`` is longer than ``limit`` bytes."""
    if len(body) > limit:
        raise PayloadTooLargeError(
            f"the {provider} webhook body is larger than {limit} bytes; raise max_body_bytes if the provider really sends more",
            limit=limit,
        )


class SignatureError(AuthenticationError):
    """A webhook delivery failed signature verification (401).

    Args:
        detail: what is wrong, phrased for the provider's operator (never a signature value).
        reason: one of ``missing_header``, ``malformed``, ``stale``, ``future``, ``mismatch``;
            also the ``reason`` label of ``webhook_signature_failures_total``.
        provider: the verifier's provider name.
    """

    code = "WEBHOOK_SIGNATURE_INVALID"
    title = "Invalid webhook signature"

    def __init__(self, detail: str, *, reason: str, provider: str = "unknown", **kwargs: Any) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown signature failure reason {reason!r}; expected one of {REASONS}")
        self.reason = reason
        self.provider = provider
        super().__init__(detail, reason=reason, provider=provider, **kwargs)

    def problem(self, *, instance: str | None = None, correlation_id: str | None = None) -> dict[str, Any]:
        """The RFC 9457 body, with ``reason`` as a top-level member (and in ``details``)."""
        body = super().problem(instance=instance, correlation_id=correlation_id)
        body["reason"] = self.reason
        return body


def _fit_key(key: str) -> str:
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def body_hash_key(body: bytes, *extra: str) -> str:
    """A dedupe key made of the SHA-256 of ``extra`` parts and the body (the fallback key)."""
    digest = hashlib.sha256()
    for part in extra:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    digest.update(body)
    return "sha256:" + digest.hexdigest()


@dataclass
class VerifiedDelivery:
    """A delivery whose signature checked out.

    Attributes:
        provider: the provider name (``twilio``, ``stripe``, ...), the metric label.
        dedupe_key: what identifies this delivery across the provider's retries.
        body: the raw request body, exactly as signed.
        headers: the request headers, names in lower case.
        url: the public URL the provider signed or called.
        content_type: the media type of the body, without parameters.
    """

    provider: str
    dedupe_key: str
    body: bytes
    headers: Mapping[str, str]
    url: str = ""
    content_type: str = ""
    _json: Any = field(default=None, repr=False)
    _json_loaded: bool = field(default=False, repr=False)
    _form: list[tuple[str, str]] | None = field(default=None, repr=False)

    def json(self) -> Any:
        """The body parsed as JSON (parsed on first use, then cached).

        Raises:
            ValueError: the body is not JSON.
        """
        if not self._json_loaded:
            self._json = json.loads(self.body)
            self._json_loaded = True
        return self._json

    def form(self) -> dict[str, str]:
        """The body parsed as ``application/x-www-form-urlencoded`` (last value per name)."""
        return dict(self.form_items())

    def form_items(self) -> list[tuple[str, str]]:
        """All ``(name, value)`` pairs of a form body, repeated names kept, in body order."""
        if self._form is None:
            self._form = parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return self._form

    @property
    def payload(self) -> Any:
        """The parsed body: JSON when it is JSON, form pairs as a dict when it is a form, else text."""
        if self.content_type == "application/x-www-form-urlencoded":
            return self.form()
        try:
            return self.json()
        except ValueError:
            return self.body.decode("utf-8", "replace")


@runtime_checkable
class Verifier(Protocol):
    """What the inbox needs of a verifier; implement it for a provider surefoot does not know.

    ``verify`` must check the raw ``body`` before parsing it and raise :class:`SignatureError`
    (with a ``reason``) when the delivery is not authentic. Its dedupe key must come from
    signed content only. An optional integer ``max_body_bytes`` attribute sets the body limit
    the inbox enforces before calling it; ``verify`` may be called in a worker thread.
    """

    provider: str

    def verify(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        url: str,
        client: str | None = None,
    ) -> VerifiedDelivery:
        """Check one delivery.

        Args:
            body: the raw request body.
            headers: the request headers (any case).
            url: the URL as the server saw it (scheme, host, path and query).
            client: the address of the peer that sent the request (proxy or provider).

        Returns:
            The verified delivery.

        Raises:
            SignatureError: the delivery is not authentic.
        """
        ...


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def _secrets(value: str | bytes | Sequence[str | bytes], what: str) -> list[Any]:
    items = [value] if isinstance(value, (str, bytes)) else list(value)
    if not items or any(not s for s in items):
        raise ConfigurationError(f"{what}: give at least one non-empty secret (a list during rotation)")
    return items


def _media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _check_window(now: float, ts: int, tolerance: float, future_tolerance: float, provider: str) -> None:
    if ts < now - tolerance:
        raise SignatureError(
            f"the signed timestamp is more than {tolerance:g} s old; check the server clock or replay the delivery",
            reason="stale", provider=provider,
        )
    if ts > now + future_tolerance:
        raise SignatureError(
            f"the signed timestamp is more than {future_tolerance:g} s in the future; check the server clock",
            reason="future", provider=provider,
        )


class StripeVerifier:
    """Verifies ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``.

    The signed message is ``f"{t}.{raw body}"`` and the key is the whole endpoint secret
    (``whsec_...``) as text. Any ``v1`` matching any active secret wins (during a rotation
    Stripe sends one ``v1`` per secret); other schemes (``v0``) are ignored.

    Timestamps older than ``tolerance`` are refused as ``stale``. Stripe's own libraries
    accept any future timestamp; surefoot refuses those more than ``future_tolerance``
    ahead (default: the same 300 s) as ``future``, so a clock gone wrong is visible and a
    signature cannot be made to last forever.

    A ``t`` that is not 1 to 12 ASCII digits (e.g. 5,000 digits) is ``malformed``.

    Dedupe key: the event ``id`` from the verified (signed) JSON body; a body without one is
    keyed by its SHA-256 (``dedupe_key=`` to override).

    Args:
        secret: the endpoint's signing secret, or a list of active secrets.
        tolerance: maximum age of the signed timestamp, in seconds.
        future_tolerance: how far ahead of our clock the timestamp may be (default: ``tolerance``).
        clock: the time source (tests pass a ``FakeClock``).
        provider: the provider name (default ``stripe``).
        dedupe_key: ``f(delivery) -> str`` replacing the default dedupe key.
        max_body_bytes: largest body accepted before verification (default 5 MiB).
    """

    header = "stripe-signature"

    def __init__(
        self,
        secret: str | Sequence[str],
        *,
        tolerance: float = 300.0,
        future_tolerance: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        provider: str = "stripe",
        dedupe_key: Callable[[VerifiedDelivery], str] | None = None,
        max_body_bytes: int = STRIPE_MAX_BODY_BYTES,
    ) -> None:
        self.secrets: list[str] = _secrets(secret, "StripeVerifier secret")
        self.max_body_bytes = _positive(max_body_bytes, "StripeVerifier max_body_bytes")
        if tolerance <= 0:
            raise ConfigurationError("StripeVerifier tolerance must be positive (seconds)")
        self.tolerance = float(tolerance)
        self.future_tolerance = self.tolerance if future_tolerance is None else float(future_tolerance)
        self.clock = clock
        self.provider = provider
        self._dedupe_key = dedupe_key

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, url: str, client: str | None = None
    ) -> VerifiedDelivery:
        """Check a Stripe delivery; see the class docstring. Raises :class:`SignatureError`."""
        h = _lower(headers)
        value = h.get(self.header)
        if value is None:
            raise SignatureError("the Stripe-Signature header is missing", reason="missing_header", provider=self.provider)
        timestamps: list[str] = []
        candidates: list[str] = []
        for item in value.split(","):
            name, sep, val = item.strip().partition("=")
            if not sep:
                continue
            if name == "t":
                timestamps.append(val.strip())
            elif name == "v1":
                candidates.append(val.strip())
        if len(timestamps) != 1 or not _is_timestamp(timestamps[0]):
            raise SignatureError(
                f"the Stripe-Signature header needs exactly one t=<unix time in seconds> (1 to {MAX_TIMESTAMP_DIGITS} digits)",
                reason="malformed", provider=self.provider,
            )
        ts = int(timestamps[0])
        if not candidates:
            raise SignatureError(
                "the Stripe-Signature header carries no v1 signature", reason="mismatch", provider=self.provider
            )
        check_body_size(body, self.max_body_bytes, self.provider)
        matched = False
        for secret in self.secrets:
            expected = stripe_signature(secret, ts, body).encode()
            for candidate in candidates:
                matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
        if not matched:
            raise SignatureError(
                "no v1 signature matches the body for any active endpoint secret; check STRIPE_WEBHOOK_SECRET",
                reason="mismatch", provider=self.provider,
            )
        # The window is checked after the signature, as Stripe does: a forged request learns nothing.
        _check_window(self.clock.time(), ts, self.tolerance, self.future_tolerance, self.provider)
        delivery = VerifiedDelivery(self.provider, "", body, h, url, _media_type(h))
        delivery.dedupe_key = _fit_key(self._dedupe_key(delivery) if self._dedupe_key else _json_id(delivery))
        return delivery


def _is_timestamp(text: str) -> bool:
    return 0 < len(text) <= MAX_TIMESTAMP_DIGITS and text.isascii() and text.isdigit()


def _json_id(delivery: VerifiedDelivery) -> str:
    try:
        data = delivery.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        event_id = data.get("id")
        if isinstance(event_id, str) and event_id:
            return event_id
    return body_hash_key(delivery.body)


class StandardWebhooksVerifier:
    """Verifies Standard Webhooks / Svix deliveries (``webhook-*`` or ``svix-*`` headers).

    The signed message is ``f"{id}.{timestamp}.{raw body}"``, the key the base64 bytes after
    ``whsec_`` (padding optional), the header a space-separated list of ``v1,<base64>``
    tokens (other versions, e.g. the asymmetric ``v1a``, are ignored). Timestamps more than
    ``tolerance`` away in either direction, and non-numeric ones, are refused.

    Dedupe key: the ``webhook-id`` (or ``svix-id``) header, which is part of the signed
    message, so it cannot be changed on a replay.

    Args:
        secret: ``whsec_...`` secret, or a list of active secrets during rotation.
        tolerance: allowed clock difference, both directions, in seconds (default 300).
        clock: the time source.
        provider: the provider name (default ``standard``).
        dedupe_key: ``f(delivery) -> str`` replacing the default dedupe key.
        max_body_bytes: largest body accepted before verification (default 5 MiB).

    Raises:
        ConfigurationError: a secret is not ``whsec_`` + base64.
    """

    def __init__(
        self,
        secret: str | bytes | Sequence[str | bytes],
        *,
        tolerance: float = 300.0,
        clock: Clock = SYSTEM_CLOCK,
        provider: str = "standard",
        dedupe_key: Callable[[VerifiedDelivery], str] | None = None,
        max_body_bytes: int = STANDARD_MAX_BODY_BYTES,
    ) -> None:
        self.keys = [decode_standard_secret(s) for s in _secrets(secret, "StandardWebhooksVerifier secret")]
        self.max_body_bytes = _positive(max_body_bytes, "StandardWebhooksVerifier max_body_bytes")
        if tolerance <= 0:
            raise ConfigurationError("StandardWebhooksVerifier tolerance must be positive (seconds)")
        self.tolerance = float(tolerance)
        self.clock = clock
        self.provider = provider
        self._dedupe_key = dedupe_key

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, url: str, client: str | None = None
    ) -> VerifiedDelivery:
        """Check a Standard Webhooks delivery; see the class docstring. Raises :class:`SignatureError`."""
        h = _lower(headers)
        prefix = "webhook-" if "webhook-signature" in h or "webhook-id" in h else "svix-"
        msg_id, ts_text, signatures = (h.get(prefix + n) for n in ("id", "timestamp", "signature"))
        missing = [prefix + n for n, v in zip(("id", "timestamp", "signature"), (msg_id, ts_text, signatures), strict=True) if v is None]
        if missing:
            raise SignatureError(
                f"missing header(s): {', '.join(missing)}", reason="missing_header", provider=self.provider
            )
        msg_id, ts_text, signatures = str(msg_id), str(ts_text).strip(), str(signatures)
        if not _is_timestamp(ts_text):
            raise SignatureError(f"{prefix}timestamp must be a Unix time in seconds", reason="malformed", provider=self.provider)
        if not msg_id.strip():
            raise SignatureError(f"{prefix}id is empty", reason="malformed", provider=self.provider)
        ts = int(ts_text)
        _check_window(self.clock.time(), ts, self.tolerance, self.tolerance, self.provider)
        tokens = []
        well_formed = False
        for token in signatures.split(" "):
            version, sep, value = token.partition(",")
            if sep and version and value:
                well_formed = True
                if version == "v1":
                    tokens.append(value.strip())
        if not well_formed:
            raise SignatureError(
                f"{prefix}signature must be space-separated '<version>,<base64>' tokens",
                reason="malformed", provider=self.provider,
            )
        if not tokens:
            # Well-formed, but only versions we do not verify (e.g. the asymmetric v1a).
            raise SignatureError(
                f"{prefix}signature carries no 'v1' signature", reason="mismatch", provider=self.provider
            )
        check_body_size(body, self.max_body_bytes, self.provider)
        matched = False
        for key in self.keys:
            expected = standard_signature(key, msg_id, ts, body).partition(",")[2].encode()
            for token in tokens:
                matched |= hmac.compare_digest(expected, token.encode("utf-8", "replace"))
        if not matched:
            raise SignatureError(
                "no v1 signature matches the message for any active secret", reason="mismatch", provider=self.provider
            )
        delivery = VerifiedDelivery(self.provider, "", body, h, url, _media_type(h))
        delivery.dedupe_key = _fit_key(self._dedupe_key(delivery) if self._dedupe_key else msg_id.strip())
        return delivery


class GitHubVerifier:
    """Verifies ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``.

    GitHub signs no timestamp and only the body.

    Dedupe key: ``"sha256:" +`` the SHA-256 of the body. ``X-GitHub-Delivery`` (kept with
    the stored headers) is outside the signature, so a replay could carry a fresh one; it is
    never the key. A redelivery sends the same body, so it is a duplicate; two deliveries
    with byte-identical bodies are one delivery.

    Args:
        secret: the webhook secret, or a list of active secrets during rotation.
        provider: the provider name (default ``github``).
        dedupe_key: ``f(delivery) -> str`` replacing the default dedupe key.
        max_body_bytes: largest body accepted before verification (default 25 MiB,
            GitHub's own cap).
    """

    header = "x-hub-signature-256"

    def __init__(
        self,
        secret: str | Sequence[str],
        *,
        provider: str = "github",
        dedupe_key: Callable[[VerifiedDelivery], str] | None = None,
        max_body_bytes: int = GITHUB_MAX_BODY_BYTES,
    ) -> None:
        self.secrets: list[str] = _secrets(secret, "GitHubVerifier secret")
        self.max_body_bytes = _positive(max_body_bytes, "GitHubVerifier max_body_bytes")
        self.provider = provider
        self._dedupe_key = dedupe_key

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, url: str, client: str | None = None
    ) -> VerifiedDelivery:
        """Check a GitHub delivery; see the class docstring. Raises :class:`SignatureError`."""
        h = _lower(headers)
        value = h.get(self.header)
        if value is None:
            raise SignatureError("the X-Hub-Signature-256 header is missing", reason="missing_header", provider=self.provider)
        value = value.strip()
        scheme, sep, hexdigest = value.partition("=")
        if scheme != "sha256" or not sep or len(hexdigest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in hexdigest):
            raise SignatureError(
                "X-Hub-Signature-256 must be 'sha256=' followed by 64 hex digits", reason="malformed", provider=self.provider
            )
        check_body_size(body, self.max_body_bytes, self.provider)
        given = ("sha256=" + hexdigest.lower()).encode()
        matched = False
        for secret in self.secrets:
            matched |= hmac.compare_digest(github_signature(secret, body).encode(), given)
        if not matched:
            raise SignatureError(
                "X-Hub-Signature-256 does not match the body for any active secret", reason="mismatch", provider=self.provider
            )
        delivery = VerifiedDelivery(self.provider, "", body, h, url, _media_type(h))
        delivery.dedupe_key = _fit_key(self._dedupe_key(delivery) if self._dedupe_key else body_hash_key(body))
        return delivery
