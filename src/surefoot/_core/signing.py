"""Signature primitives of the webhook providers surefoot verifies (and signs, in tests).

Each function computes exactly what the provider's official library computes; the verifiers
in :mod:`surefoot.webhooks._verify` and :mod:`surefoot.webhooks._twilio` and the helpers in :mod:`surefoot.testing` are built on
them, and the Standard Webhooks ones are also used by the outbound HTTP sink.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError

__all__ = [
    "decode_standard_secret",
    "standard_signature",
    "stripe_signature",
    "github_signature",
    "twilio_signature",
    "twilio_signature_of",
    "twilio_param_string",
    "twilio_body_hash",
    "twilio_url_variants",
    "sorted_params",
]


def decode_standard_secret(secret: str | bytes) -> bytes:
    """Return the key bytes of a Standard Webhooks secret (``whsec_<base64>``, padding optional).

    Raises:
        ConfigurationError: the secret is not base64 after the ``whsec_`` prefix.
    """
    if isinstance(secret, bytes):
        return secret
    text = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    text = text.strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(
            "a Standard Webhooks secret must be 'whsec_' followed by base64 key bytes"
        ) from exc


def standard_signature(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """Return the ``v1,<base64>`` token for one message (HMAC-SHA256 of ``id.timestamp.body``)."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode("utf-8", "surrogatepass"), hashlib.sha256)
    mac.update(body)  # no copy of a large body
    return "v1," + base64.b64encode(mac.digest()).decode()


def stripe_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """Return the hex ``v1`` signature Stripe sends for ``body`` at ``timestamp``.

    The key is the whole endpoint secret (``whsec_...``) as UTF-8 — Stripe does not
    base64-decode it, unlike Standard Webhooks.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)  # no copy of a large body
    return mac.hexdigest()


def github_signature(secret: str | bytes, body: bytes) -> str:
    """Return the ``X-Hub-Signature-256`` value (``sha256=<hex>``) GitHub sends for ``body``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def sorted_params(params: Mapping[str, str | Iterable[str]] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Normalise form parameters to the ``(name, value)`` pairs Twilio signs, in signing order.

    Twilio's own validator (twilio-python ``RequestValidator.compute_signature``) iterates
    ``sorted(set(names))`` and, per name, ``sorted(set(values))``: names are sorted, the
    values of a repeated name are sorted among themselves, and a repeated identical
    ``name=value`` pair counts once. Sorting the distinct pairs gives exactly that order.
    """
    pairs: set[tuple[str, str]] = set()
    if isinstance(params, Mapping):
        for name, value in params.items():
            if isinstance(value, str):
                pairs.add((name, value))
            else:
                pairs.update((name, v) for v in value)
    else:
        pairs.update(params)
    return sorted(pairs)


def twilio_param_string(params: Mapping[str, str | Iterable[str]] | Iterable[tuple[str, str]] = ()) -> str:
    """The part of Twilio's signed string after the URL: ``name1 + value1 + name2 + value2 ...``
    over :func:`sorted_params`."""
    return "".join(name + value for name, value in sorted_params(params))


def twilio_signature_of(token: str, url: str, param_string: str) -> str:
    """``X-Twilio-Signature`` of ``url`` followed by an already built :func:`twilio_param_string`."""
    mac = hmac.new(token.encode(), (url + param_string).encode("utf-8", "surrogatepass"), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def twilio_signature(token: str, url: str, params: Mapping[str, str | Iterable[str]] | Iterable[tuple[str, str]] = ()) -> str:
    """Return the ``X-Twilio-Signature`` value for a request to ``url`` with form ``params``.

    base64(HMAC-SHA1(auth token, url + name1 + value1 + name2 + value2 ...)), parameters in
    :func:`sorted_params` order. For JSON requests pass no params: the ``bodySHA256`` query
    parameter in ``url`` carries the body's hash instead.
    """
    return twilio_signature_of(token, url, twilio_param_string(params))


def twilio_body_hash(body: bytes) -> str:
    """Return the hex SHA-256 of a JSON request body, as Twilio puts it in ``bodySHA256``."""
    return hashlib.sha256(body).hexdigest()


def twilio_url_variants(url: str) -> list[str]:
    """Return the URLs Twilio's official validator tries: any port removed, default port added.

    Twilio computes signatures inconsistently with respect to the port, so the official
    validators accept a signature over either form; so do we.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    try:
        port = parts.port
    except ValueError:
        port = None
    without_port = urlunsplit(parts._replace(netloc=prefix + host)) if port else url
    if port:
        with_port = url
    else:
        default = 443 if parts.scheme == "https" else 80
        with_port = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))
    return [without_port] if without_port == with_port else [without_port, with_port]
