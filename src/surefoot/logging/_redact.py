"""PII redaction for log lines.

What is masked, and how:

* **E-mail addresses** become ``***`` followed by their last 4 characters
  (``alice@example.com`` → ``***.com``).
* **Phone numbers** become ``***`` followed by their last 4 digits
  (``+1 (415) 555-2671`` → ``***2671``). A phone number is a run of 7 or more digits, optionally
  starting with ``+`` or ``(`` and grouped by spaces, dots, dashes or parentheses; it must not
  be glued to a letter, digit, ``+``, ``-`` or ``.`` on its left or to a letter, digit, ``@``
  or ``-word`` on its right. ISO dates (``2025-10-28``), UUIDs, IPv4 addresses and plain
  decimals (``3.14159``) are left alone; other long digit runs (``order 12345678``) are masked
  on purpose: a false positive costs a little readability, a false negative leaks a customer's
  number.
* **Secrets** (fields named ``password``, ``token``, ``authorization``, ``api_key``, ... ) are
  replaced by ``[REDACTED]`` at every level.
* **Message bodies** (fields named ``body``, ``message_body``, ``sms_body``, ...) are replaced
  by ``[omitted: N chars]`` unless ``log_message_bodies`` is on; then their first 50 characters
  are kept (after PII masking, so a cut never reveals half an address).

Masking applies to every string value, at any depth (dicts, lists, tuples, sets), including
the event text, dict keys below the top level and the formatted exception; other objects are
turned into their ``repr`` and masked. Numbers are not inspected, except under the fields
named in ``pii_keys`` (``phone``, ``email``, ...), whose integer values are masked too.
Full values are kept only on DEBUG lines and only when ``log_unmasked_pii`` is on.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Iterable
from typing import Any

__all__ = [
    "Redactor",
    "mask_pii",
    "DEFAULT_BODY_KEYS",
    "DEFAULT_SECRET_KEYS",
    "DEFAULT_PII_KEYS",
    "DEFAULT_SAFE_KEYS",
]

_LOCAL_SPECIALS = frozenset("!#$%&'*+/=?^`{|}~.-_")
_DOMAIN = re.compile(
    r"(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|(?i:xn--)[\w\-]{1,59})(?![\w\-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PHONE = (
    r"(?<![\w+\-.])"  # not glued to a word, sign, dash or dot on the left
    r"(?!\d{4}-\d{2}-\d{2}(?!\d|-\d))"  # an ISO date
    rf"(?!{_OCTET}(?:\.{_OCTET}){{3}}(?![\d.]))"  # an IPv4 address
    r"(?!\d+\.\d+(?!\d|[ \-.()]{1,3}\d))"  # a plain decimal number
    r"(?![0-9a-fA-F]{8}-[0-9a-fA-F]{4}-)"  # a UUID
    r"(?:\+[ \u00a0]?)?\(?\d(?:[ \u00a0\-.()]{0,3}\d){6,}"
    r"(?![\w@]|-\w)"  # not glued to a word, an address or a hyphenated token on the right
)
_PHONE_RE = re.compile(_PHONE)
_TRIGGER = re.compile(r"[\d@]").search
_NON_DIGIT = re.compile(r"\D").sub

DEFAULT_BODY_KEYS = frozenset(
    {"body", "message_body", "sms_body", "email_body", "request_body", "response_body", "text_body"}
)
DEFAULT_SECRET_KEYS = frozenset(
    {
        "password", "passwd", "pwd", "secret", "token", "access_token", "refresh_token", "id_token",
        "api_key", "apikey", "x_api_key", "authorization", "proxy_authorization", "cookie",
        "set_cookie", "client_secret", "private_key", "auth_token", "signing_secret",
    }
)
DEFAULT_PII_KEYS = frozenset({"phone", "phone_number", "msisdn", "email", "email_address", "mobile"})
DEFAULT_SAFE_KEYS = frozenset({"timestamp", "level", "trace_id", "span_id"})

_SCALARS = (int, float, bool, type(None))
_PASSTHROUGH = (datetime.date, datetime.time, datetime.timedelta, uuid.UUID)
_SCALAR_TYPES = frozenset({int, float, bool, type(None)})
_CACHE_MAX = 4096
_CACHEABLE_LEN = 160


def _mask_emails(text: str) -> str:
    # Anchored on each "@": the domain is matched forwards, the local part walked backwards
    # (never into the previous match), which keeps the pass linear on any input.
    out: list[str] = []
    pos = 0
    at = text.find("@")
    while at != -1:
        domain = _DOMAIN.match(text, at + 1)
        if domain is None:
            at = text.find("@", at + 1)
            continue
        start = at
        while start > pos and (text[start - 1].isalnum() or text[start - 1] in _LOCAL_SPECIALS):
            start -= 1
        if start == at:  # no local part: not an address
            at = text.find("@", at + 1)
            continue
        end = domain.end()
        out.append(text[pos:start])
        out.append("***" + text[end - 4 : end])
        pos = end
        at = text.find("@", pos)
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _mask_phone(match: re.Match[str]) -> str:
    return "***" + _NON_DIGIT("", match.group())[-4:]


def _mask(text: str) -> str:
    # Phones first: a phone match never ends on an "@" (its digits would be an address's
    # local part), and the address pass then also swallows a mask left in front of it.
    text = _PHONE_RE.sub(_mask_phone, text)
    if "@" in text:
        text = _mask_emails(text)
    return text


def mask_pii(text: str) -> str:
    """Return ``text`` with e-mail addresses and phone numbers masked to their last 4.

    Args:
        text: any string.

    Returns:
        The masked string (the same object when nothing needed masking).
    """
    if _TRIGGER(text) is None:
        return text
    return _mask(text)


def _mask_number(value: Any) -> str:
    return "***" + _NON_DIGIT("", str(value))[-4:]


def _normalise(keys: Iterable[str]) -> frozenset[str]:
    return frozenset(k.lower().replace("-", "_") for k in keys)


_SECRET, _BODY, _PIIKEY, _SAFE = 1, 2, 3, 4


class Redactor:
    """A structlog processor masking PII, secrets and message bodies (see the module docs).

    Args:
        unmasked_pii_at_debug: keep full e-mail addresses and phone numbers on DEBUG lines
            (``Settings.log_unmasked_pii``).
        log_message_bodies: keep the first ``body_max_chars`` characters of message bodies
            (``Settings.log_message_bodies``) instead of omitting them.
        body_keys: field names holding message bodies.
        body_max_chars: how much of a body is kept when bodies are logged.
        secret_keys: field names whose values are always replaced by ``[REDACTED]``.
        pii_keys: field names whose values are masked even when they are numbers.
        safe_keys: top-level fields surefoot itself fills with a fixed format; not inspected.

    Raises:
        ConfigurationError: ``body_max_chars`` is negative.
    """

    __slots__ = ("_unmasked_debug", "_bodies", "_body_max", "_actions", "_top_actions", "_cache")

    def __init__(
        self,
        *,
        unmasked_pii_at_debug: bool = False,
        log_message_bodies: bool = False,
        body_keys: Iterable[str] = DEFAULT_BODY_KEYS,
        body_max_chars: int = 50,
        secret_keys: Iterable[str] = DEFAULT_SECRET_KEYS,
        pii_keys: Iterable[str] = DEFAULT_PII_KEYS,
        safe_keys: Iterable[str] = DEFAULT_SAFE_KEYS,
    ) -> None:
        if body_max_chars < 0:
            from ..errors import ConfigurationError

            raise ConfigurationError(f"body_max_chars must be >= 0, got {body_max_chars}")
        self._unmasked_debug = unmasked_pii_at_debug
        self._bodies = log_message_bodies
        self._body_max = body_max_chars
        actions: dict[str, int] = {}
        for key in _normalise(pii_keys):
            actions[key] = _PIIKEY
        for key in _normalise(body_keys):
            actions[key] = _BODY
        for key in _normalise(secret_keys):
            actions[key] = _SECRET
        self._actions = actions
        top = dict(actions)
        for key in safe_keys:
            top.setdefault(key, _SAFE)
        self._top_actions = top
        # Short strings repeat across lines (routes, methods, the request's correlation id):
        # remembering their masked form keeps the access log cheap.
        self._cache: dict[str, str] = {}

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """Redact ``event_dict`` in place (the structlog processor protocol)."""
        mask = not (self._unmasked_debug and method_name == "debug")
        action_of = self._top_actions.get
        cached = self._cache.get
        for key, value in event_dict.items():
            action = action_of(key)
            if action is None:
                kind = type(value)
                if kind is str:
                    if mask:
                        masked = cached(value)
                        if masked is None:
                            masked = self._mask_str(value)
                        if masked is not value:
                            event_dict[key] = masked
                elif kind not in _SCALAR_TYPES:
                    event_dict[key] = self._walk(value, mask)
            elif action != _SAFE:
                event_dict[key] = self._special(action, value, mask)
        return event_dict

    def action_of(self, key: str) -> int | None:
        """The special rule for a top-level field (secret, body, PII key, safe), or ``None``."""
        return self._top_actions.get(key)

    def _mask_str(self, value: str) -> str:
        masked = value if _TRIGGER(value) is None else _mask(value)
        if len(value) <= _CACHEABLE_LEN:
            cache = self._cache
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[value] = masked
        return masked

    def redact(self, value: Any, *, mask: bool = True) -> Any:
        """Return ``value`` redacted as a log field would be (nested containers included)."""
        return self._walk(value, mask)

    def _special(self, action: int, value: Any, mask: bool) -> Any:
        if action == _SECRET:
            return "[REDACTED]"
        if action == _BODY:
            if not self._bodies:
                return f"[omitted: {len(value)} chars]" if isinstance(value, (str, bytes)) else "[omitted]"
            text = value if isinstance(value, str) else self._text(value)
            text = self._walk(text, mask)
            return text if len(text) <= self._body_max else text[: self._body_max] + "…"
        # _PIIKEY: numbers too
        if mask and isinstance(value, int) and not isinstance(value, bool):
            return _mask_number(value)
        return self._walk(value, mask)

    @staticmethod
    def _text(value: Any) -> str:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("utf-8", "replace")
        return repr(value)

    def _walk(self, value: Any, mask: bool) -> Any:
        kind = type(value)
        if kind is str:
            if mask:
                masked = self._cache.get(value)
                return masked if masked is not None else self._mask_str(value)
            return value
        if isinstance(value, _SCALARS) or isinstance(value, _PASSTHROUGH):
            return value
        if isinstance(value, str):  # str subclasses such as StrEnum members
            return self._walk(str(value), mask)
        if isinstance(value, dict):
            out = {}
            actions = self._actions
            for key, item in value.items():
                action = actions.get(key.lower().replace("-", "_")) if isinstance(key, str) else None
                new_key = self._walk(key, mask) if isinstance(key, str) else key
                out[new_key] = self._walk(item, mask) if action is None else self._special(action, item, mask)
            return out
        if isinstance(value, (list, tuple)):
            return [self._walk(item, mask) for item in value]
        if isinstance(value, (set, frozenset)):
            return [self._walk(item, mask) for item in value]
        if isinstance(value, BaseException):
            return self._walk(f"{type(value).__name__}: {value}", mask)
        return self._walk(self._text(value), mask)
