"""Twilio: the public URL it signed (:class:`PublicURL`), its verifier and its dedupe key.

Twilio signs the public URL followed by every form parameter in its canonical order, with
HMAC-SHA1 and no timestamp; see :class:`TwilioVerifier`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .._core.signing import (
    twilio_body_hash,
    twilio_param_string,
    twilio_signature_of,
    twilio_url_variants,
)
from ..errors import ConfigurationError
from ._verify import (
    TWILIO_MAX_BODY_BYTES,
    TWILIO_MAX_PARAMS,
    PayloadTooLargeError,
    SignatureError,
    VerifiedDelivery,
    _fit_key,
    _lower,
    _media_type,
    _positive,
    _secrets,
    check_body_size,
)

__all__ = ["PublicURL", "TwilioVerifier", "twilio_dedupe_key"]


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
    canonical order (:func:`~surefoot._core.signing.twilio_param_string`). Nothing
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
