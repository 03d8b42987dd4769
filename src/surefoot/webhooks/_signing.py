"""Standard Webhooks signing, shared by the inbox verifier and the outbound HTTP sink."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from ..errors import ConfigurationError

__all__ = ["decode_standard_secret", "standard_signature"]


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
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
