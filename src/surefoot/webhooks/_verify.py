"""Webhook signature verifiers: Twilio, Stripe, Standard Webhooks (Svix) and GitHub.

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

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .._clock import SYSTEM_CLOCK, Clock
from ..errors import AuthenticationError, ConfigurationError, HTTPError
from ._signing import (
    decode_standard_secret,
    github_signature,
    standard_signature,
    stripe_signature,
    twilio_body_hash,
    twilio_param_string,
    twilio_signature_of,
    twilio_url_variants,
)

__all__ = [
    "SignatureError",
    "Reason",
    "VerifiedDelivery",
    "Verifier",
    "PublicURL",
    "TwilioVerifier",
    "StripeVerifier",
    "StandardWebhooksVerifier",
    "GitHubVerifier",
    "PayloadTooLargeError",
    "body_hash_key",
    "twilio_dedupe_key",
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


class PublicURL:
    """Rebuilds the public URL a provider called, for signatures that cover the URL (Twilio).

    Behind a TLS-terminating proxy the server sees ``http://internal:8000/path``, while the
    provider signed ``https://api.example.com/path``. Either configure ``base_url`` (the
    most robust choice), or list the proxies whose ``X-Forwarded-Proto``, ``X-Forwarded-Host``
    and ``X-Forwarded-Port`` headers are trusted; those headers from any other peer are
    ignored, because a client could otherwise choose the URL being checked.

    Args:
        base_url: scheme and authority (optionally a path prefix) of the public URL, e.g.
            ``"https://api.example.com"``; the request's path and query are appended.
        trusted_proxies: IP addresses or CIDR networks whose forwarded headers are believed.
            When several values are listed in one header, the first one (set by the proxy
            facing the internet) is used.
    """

    def __init__(self, base_url: str | None = None, *, trusted_proxies: Iterable[str] = ()) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        if self.base_url is not None:
            parts = urlsplit(self.base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigurationError(
                    f"base_url must look like 'https://api.example.com', got {base_url!r}"
                )
        try:
            self.trusted = [ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies]
        except ValueError as exc:
            raise ConfigurationError(f"trusted_proxies: {exc}; give IP addresses or CIDR networks") from exc

    def _trusted(self, client: str | None) -> bool:
        if not client or not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def resolve(self, url: str, headers: Mapping[str, str], client: str | None) -> str:
        """Return the public URL for a request the server saw at ``url``.

        Args:
            url: the URL as the server saw it.
            headers: request headers, names in lower case.
            client: the peer address.
        """
        parts = urlsplit(url)
        if self.base_url is not None:
            base = urlsplit(self.base_url)
            return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, ""))
        if not self._trusted(client):
            return url

        def first(name: str) -> str | None:
            value = headers.get(name)
            if not value:
                return None
            return value.split(",", 1)[0].strip() or None

        scheme = (first("x-forwarded-proto") or parts.scheme).lower()
        host = first("x-forwarded-host") or parts.netloc
        port = first("x-forwarded-port")
        if port:
            hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            default = {"https": "443", "http": "80"}.get(scheme)
            host = hostname if port == default else f"{hostname}:{port}"
        return urlunsplit((scheme, host, parts.path, parts.query, ""))


def twilio_dedupe_key(url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The default dedupe key of a Twilio delivery: a hash of exactly the string Twilio signs.

    ``"sha256:" + hex SHA-256`` of the public URL without its port (query included; for
    JSON requests it carries ``bodySHA256``) followed by the form parameters in Twilio's
    canonical order (:func:`~surefoot.webhooks._signing.twilio_param_string`). Nothing
    outside the signature (no header, no ``I-Twilio-Idempotency-Token``) goes in, so a replay
    cannot be made to look new: any request the signature cannot tell apart from a stored
    one — even one that moves characters between the URL and the form — has its key. Two
    different ``<Gather>`` results for one call differ in their ``Digits``, so they never
    collide.
    """
    return _twilio_key(twilio_url_variants(url)[0], twilio_param_string(params))


def _twilio_key(url_without_port: str, signed_params: str) -> str:
    data = (url_without_port + signed_params).encode("utf-8", "surrogatepass")
    return "sha256:" + hashlib.sha256(data).hexdigest()


class TwilioVerifier:
    """Verifies ``X-Twilio-Signature`` on form-encoded and JSON (``bodySHA256``) requests.

    The signature covers the public URL (see :class:`PublicURL`) and, for forms, every
    parameter in Twilio's canonical order: names sorted, the values of a repeated name
    sorted, and a repeated identical ``name=value`` pair counted once (as Twilio's own
    ``RequestValidator`` does). For JSON the URL carries ``bodySHA256``, the hex SHA-256 of
    the raw body, which is checked too. Like Twilio's own validators, a signature over the
    URL without its port or with the default port added is accepted. Twilio signs no
    timestamp: replays are stopped by the inbox's dedupe key.

    Dedupe key: :func:`twilio_dedupe_key`, a hash of the exact string Twilio signs (the URL
    with its port removed, then the parameters in canonical order). ``I-Twilio-Idempotency-Token`` is a header, outside the signature, so
    it is stored with the delivery but never used as the key: a replay with a fresh token is
    still a duplicate. Two requests are one delivery exactly when Twilio signed the same
    URL and parameters; give two ``<Gather>`` actions of one call different URLs (e.g.
    ``?step=2``) if they can post identical digits. Pass ``dedupe_key=`` to choose another
    key, built from signed content only.

    Before parsing, a body over ``max_body_bytes`` or with more than ``max_params`` form
    parameters is refused with :class:`PayloadTooLargeError` (413).

    Args:
        auth_token: the account's auth token, or a list of active tokens during rotation.
        public_url: how to rebuild the public URL; default: the URL the server saw.
        base_url: shorthand for ``public_url=PublicURL(base_url)``.
        trusted_proxies: shorthand for ``public_url=PublicURL(trusted_proxies=...)``.
        provider: the provider name used in metrics, logs and the inbox (default ``twilio``).
        dedupe_key: ``f(delivery) -> str`` replacing the default dedupe key.
        max_body_bytes: largest body accepted (default 1 MiB; Twilio's form callbacks are
            a few KiB).
        max_params: most form parameters accepted (default 1000).
    """

    header = "x-twilio-signature"

    def __init__(
        self,
        auth_token: str | Sequence[str],
        *,
        public_url: PublicURL | None = None,
        base_url: str | None = None,
        trusted_proxies: Iterable[str] = (),
        provider: str = "twilio",
        dedupe_key: Callable[[VerifiedDelivery], str] | None = None,
        max_body_bytes: int = TWILIO_MAX_BODY_BYTES,
        max_params: int = TWILIO_MAX_PARAMS,
    ) -> None:
        self.tokens: list[str] = _secrets(auth_token, "TwilioVerifier auth_token")
        if public_url is not None and (base_url or trusted_proxies):
            raise ConfigurationError("give either public_url= or base_url=/trusted_proxies=, not both")
        self.public_url = public_url or PublicURL(base_url, trusted_proxies=trusted_proxies)
        self.provider = provider
        self._dedupe_key = dedupe_key
        self.max_body_bytes = _positive(max_body_bytes, "TwilioVerifier max_body_bytes")
        self.max_params = _positive(max_params, "TwilioVerifier max_params")

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, url: str, client: str | None = None
    ) -> VerifiedDelivery:
        """Check a Twilio delivery; see the class docstring.

        Raises:
            SignatureError: the delivery is not authentic (401).
            PayloadTooLargeError: the body or its parameter count is over the limit (413).
        """
        h = _lower(headers)
        given = h.get(self.header)
        if given is None:
            raise SignatureError("the X-Twilio-Signature header is missing", reason="missing_header", provider=self.provider)
        given = given.strip()
        try:
            raw = base64.b64decode(given, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != hashlib.sha1().digest_size:
            raise SignatureError(
                "the X-Twilio-Signature header is not a base64 HMAC-SHA1", reason="malformed", provider=self.provider
            )
        check_body_size(body, self.max_body_bytes, self.provider)
        try:
            public = self.public_url.resolve(url, h, client)
            variants = twilio_url_variants(public)
            query = parse_qsl(urlsplit(public).query, keep_blank_values=True, max_num_fields=self.max_params)
        except ValueError as exc:
            raise SignatureError(
                "the request URL (or its forwarded parts) cannot be parsed", reason="malformed", provider=self.provider
            ) from exc
        media_type = _media_type(h)
        body_hashes = [v for k, v in query if k == "bodySHA256"]
        params: list[tuple[str, str]] = []
        if body_hashes:
            claimed = body_hashes[0].strip().lower()
            if len(claimed) != 64 or any(c not in "0123456789abcdef" for c in claimed):
                raise SignatureError("the bodySHA256 query parameter is not a hex SHA-256", reason="malformed", provider=self.provider)
            if not hmac.compare_digest(claimed, twilio_body_hash(body)):
                raise SignatureError(
                    "the request body does not match the bodySHA256 query parameter (was the body altered in transit?)",
                    reason="mismatch", provider=self.provider,
                )
        elif media_type in ("application/x-www-form-urlencoded", "") or not body:
            # Counted on the raw bytes (one C pass) before any decoding, parsing or sorting.
            if body and body.count(b"&") + 1 > self.max_params:
                raise PayloadTooLargeError(
                    f"the Twilio form has more than {self.max_params} parameters; raise max_params if Twilio really sends more",
                    limit=self.max_params,
                )
            params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        else:
            # Only form parameters are covered by the signature; any other body must be bound
            # to it through bodySHA256, or it could be swapped freely.
            raise SignatureError(
                f"a {media_type} body needs the bodySHA256 query parameter to be verifiable",
                reason="malformed", provider=self.provider,
            )
        signed_params = twilio_param_string(params)
        matched = False
        for candidate in variants:
            for token in self.tokens:
                expected = twilio_signature_of(token, candidate, signed_params)
                # Evaluate every combination: the time taken does not reveal which one matched.
                matched |= hmac.compare_digest(expected.encode(), given.encode())
        if not matched:
            raise SignatureError(
                "X-Twilio-Signature does not match the public URL and parameters for any active auth token; "
                "check the auth token and that the URL Twilio called is the one rebuilt here "
                "(configure base_url or trusted_proxies behind a TLS proxy)",
                reason="mismatch", provider=self.provider,
            )
        delivery = VerifiedDelivery(self.provider, "", body, h, public, media_type)
        if not body_hashes:
            delivery._form = params
        key = self._dedupe_key(delivery) if self._dedupe_key else _twilio_key(variants[0], signed_params)
        delivery.dedupe_key = _fit_key(key)
        return delivery


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
    if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
        return data["id"]
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
        missing = [prefix + n for n, v in zip(("id", "timestamp", "signature"), (msg_id, ts_text, signatures)) if v is None]
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
