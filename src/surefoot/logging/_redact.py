"""PII redaction for log lines.

What is masked, and how:

* **E-mail addresses** become ``***`` followed by their last 4 characters
  (``alice@example.com`` → ``***.com``), also when the ``@`` is percent-encoded
  (``alice%40example.com``, as in a logged URL) or fullwidth (``alice＠example.com``), and when
  the domain's dots are fullwidth or ideographic (``．``, ``。``). An address cut short after
  its ``@`` at the end of the text (``alice@exam...``, ``alice@exam…``) becomes ``***...``.
* **Phone numbers** become ``***`` followed by their last 4 digits
  (``+1 (415) 555-2671`` → ``***2671``). A phone number is a run of 7 or more digits, optionally
  starting with ``+`` or ``(`` and grouped by spaces (including non-breaking, thin and
  narrow no-break spaces: U+00A0, U+2009, U+202F, U+2007), dots, dashes, slashes
  (``030/1234567``) or parentheses, in any script's digits; it must not
  be glued to a letter, digit, ``+``, ``-`` or ``.`` on its left or to a letter, digit, ``@``
  or ``-word`` on its right. ISO dates (``2025-10-28``), dates with slashes (``28/10/2025``,
  ``2025/10/28``), UUIDs, IPv4 addresses and plain
  decimals (``3.14159``) are left alone; other long digit runs (``order 12345678``) are masked
  on purpose: a false positive costs a little readability, a false negative leaks a customer's
  number.
* **Secrets** (fields named ``password``, ``token``, ``authorization``, ``api_key``, ... ) are
  replaced by ``[REDACTED]`` at every level.
* **Secrets in free text** — in messages, field values, exception messages and formatted
  tracebacks — are replaced by ``[REDACTED]`` at every level, DEBUG included:
  ``password=...``, ``"api_key": "..."``, ``Bearer ...``, JSON Web Tokens, provider keys
  (``sk_live_...``, ``ghp_...``, ...), the password of ``scheme://user:password@host`` URLs,
  and the bound parameters of SQLAlchemy errors (``[parameters: [REDACTED]]``; the statement
  stays). See :func:`surefoot.logging.redact_secrets` for the full list.
* **Ids are never masked**: fields named ``id``, ending in ``_id``/``_ids`` (``correlation_id``,
  ``causation_id``, ``tenant_id``, ``request_id``, ``event_id``, ``order_id``, ...) or listed in
  ``id_keys`` are logged exactly as given, numbers included, so a client's id can be found
  in the logs (a field that is also a secret key stays ``[REDACTED]``).
* **Message bodies** (fields named ``body``, ``message_body``, ``sms_body``, ...) are replaced
  by ``[omitted: N chars]`` unless ``log_message_bodies`` is on; then their first 50 characters
  are kept (after PII masking, so a cut never reveals half an address).

Masking applies to every other string value, at any depth (dicts, lists, tuples, sets), including
the event text, dict keys below the top level and the formatted exception; other objects are
turned into their ``repr`` and masked. Numbers are not inspected, except under the fields
named in ``pii_keys`` (``phone``, ``email``, ...), whose numbers (integers and floats) are
masked too.
Full values are kept only on DEBUG lines and only when ``log_unmasked_pii`` is on.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .._core.extras import lazy_pattern
from ._secrets import redact_secrets

__all__ = [
    "Redactor",
    "mask_pii",
    "DEFAULT_BODY_KEYS",
    "DEFAULT_SECRET_KEYS",
    "DEFAULT_PII_KEYS",
    "DEFAULT_SAFE_KEYS",
    "DEFAULT_ID_KEYS",
    "redact_secrets",
]

_LOCAL_SPECIALS = frozenset("!#$%&'*+/=?^`{|}~.-_")
_URL_LOCAL_SPECIALS = frozenset("%+.-_~*")
_DOT = "[.\uff0e\u3002\uff61]"  # ASCII, fullwidth, ideographic and halfwidth ideographic full stops
# Compiled on first use (an "@" in a logged string), like the other patterns used only there.
_DOMAIN_MATCH: Callable[[str, int], re.Match[str] | None] = lazy_pattern(
    globals(), "_DOMAIN_MATCH",
    rf"(?:[^\W_](?:[\w\-]{{0,61}}[^\W_])?{_DOT})+(?:[^\W\d_]{{2,63}}|(?i:xn--)[\w\-]{{1,59}})(?![\w\-])",
    "match",
)
# An address cut short by whoever shortened the text ("ada@example.c...", "ada@exa…"): the
# rest of the domain up to a "..." or "…" that ends the text.
_CUT_DOMAIN_MATCH: Callable[[str, int], re.Match[str] | None] = lazy_pattern(
    globals(), "_CUT_DOMAIN_MATCH", rf"[\w\-]*(?:{_DOT}[\w\-]*)*?(?:\.\.\.|…)\Z", "match",
)
# "@" as written, percent-encoded (a logged URL or query string), fullwidth and small.
_AT = re.compile("@|%40|\uff20|\ufe6b")
_SPACES = "\u00a0\u2007\u2009\u202f"  # non-breaking, figure, thin and narrow no-break spaces
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PHONE = (
    r"(?<![\w+\-.])"  # not glued to a word, sign, dash or dot on the left
    r"(?<!\b\d/)(?<!\b\d\d/)"  # nor the rest of a date with slashes (28/10/2025 12:34)
    r"(?!\d{4}-\d{2}-\d{2}(?!\d|-\d))"  # an ISO date
    rf"(?!{_OCTET}(?:\.{_OCTET}){{3}}(?![\d.]))"  # an IPv4 address
    r"(?!(?:\d{1,2}/\d{1,2}/\d{2,4}|\d{4}/\d{1,2}/\d{1,2})(?!\d|/\d))"  # a date with slashes
    rf"(?!\d+\.\d+(?!\d|[ {_SPACES}\-.()/]{{1,3}}\d))"  # a plain decimal number
    r"(?![0-9a-fA-F]{8}-[0-9a-fA-F]{4}-)"  # a UUID
    rf"(?:\+[ {_SPACES}]?)?\(?\d(?:[ {_SPACES}\-.()/]{{0,3}}\d){{6,}}"
    "(?![\\w@\uff20\ufe6b]|%40|-\\w)"  # not glued to a word, an address or a hyphenated token on the right
)
_PHONE_RE = re.compile(_PHONE)
_TRIGGER = re.compile("[\\d@\uff20\ufe6b]").search
_NON_DIGIT: Callable[[str, str], str] = lazy_pattern(globals(), "_NON_DIGIT", r"\D", "sub")

DEFAULT_BODY_KEYS = frozenset(
    {"body", "message_body", "sms_body", "email_body", "request_body", "response_body", "text_body"}
)
DEFAULT_SECRET_KEYS = frozenset(
    {
        "password", "passwd", "pwd", "secret", "token", "access_token", "refresh_token", "id_token",
        "api_key", "apikey", "x_api_key", "authorization", "proxy_authorization", "cookie",
        "set_cookie", "client_secret", "private_key", "auth_token", "signing_secret", "secret_key",
    }
)
DEFAULT_PII_KEYS = frozenset({"phone", "phone_number", "msisdn", "email", "email_address", "mobile"})
DEFAULT_SAFE_KEYS = frozenset({"timestamp", "level", "trace_id", "span_id"})
DEFAULT_ID_KEYS = frozenset(
    {"correlation_id", "causation_id", "tenant_id", "request_id", "event_id", "message_id", "delivery_id"}
)

_SCALARS = (int, float, bool, type(None))
_PASSTHROUGH = (datetime.date, datetime.time, datetime.timedelta, uuid.UUID)
_KEPT_AS_IS = _SCALARS + _PASSTHROUGH
_SCALAR_TYPES = frozenset({int, float, bool, type(None)})
_CACHE_MAX = 4096
_CACHEABLE_LEN = 160


def _mask_emails(text: str) -> str:
    # Anchored on each "@": the domain is matched forwards, the local part walked backwards
    # (never into the previous match), which keeps the pass linear on any input.
    out: list[str] = []
    pos = 0
    found = _AT.search(text)
    while found is not None:
        at = found.start()
        domain = _DOMAIN_MATCH(text, found.end())
        cut = False
        if domain is None:
            domain = _CUT_DOMAIN_MATCH(text, found.end())
            if domain is None:
                found = _AT.search(text, at + 1)
                continue
            cut = True
        start = at
        # Before a percent-encoded "@" the address sits in a URL, where "/", "?", "=", "&"
        # and the like are delimiters, not part of the local part.
        specials = _URL_LOCAL_SPECIALS if text[at] == "%" else _LOCAL_SPECIALS
        while start > pos and (text[start - 1].isalnum() or text[start - 1] in specials):
            start -= 1
        if start == at:  # no local part: not an address
            found = _AT.search(text, at + 1)
            continue
        end = domain.end()
        out.append(text[pos:start])
        # A cut address keeps nothing of itself, only the mark of the cut.
        out.append("***" + ("..." if text.endswith("...") else "…") if cut else "***" + text[end - 4 : end])
        pos = end
        found = _AT.search(text, pos)
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
    return _mask_emails(text)


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


#: How deep containers are walked; what lies deeper is written as :data:`TOO_DEEP`.
MAX_DEPTH = 64
TOO_DEEP = "[too deep]"
#: What a container found inside itself is written as.
CIRCULAR = "[circular]"


def _unloggable(value: Any, exc: BaseException) -> str:
    return f"[unloggable {type(value).__name__}: {type(exc).__name__}]"


def _mask_number(value: int | float) -> str:
    # 4155552671.0 is the phone number 4155552671: its last 4 digits, not "6710".
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "***" + _NON_DIGIT("", str(value))[-4:]


def _normalise(keys: Iterable[str]) -> frozenset[str]:
    return frozenset(k.lower().replace("-", "_") for k in keys)


_PLAIN, _SECRET, _BODY, _PIIKEY, _SAFE, _ID = 0, 1, 2, 3, 4, 5
_KEYS_MAX = 4096


def _is_id_key(normalised: str) -> bool:
    return normalised == "id" or normalised.endswith(("_id", "_ids"))


class Redactor:
    """A structlog processor masking PII, secrets and message bodies (see the module docs).

    Args:
        unmasked_pii_at_debug: keep full e-mail addresses and phone numbers on DEBUG lines
            (``Settings.log_unmasked_pii``); secrets are redacted at every level regardless.
        log_message_bodies: keep the first ``body_max_chars`` characters of message bodies
            (``Settings.log_message_bodies``) instead of omitting them.
        body_keys: field names holding message bodies.
        body_max_chars: how much of a body is kept when bodies are logged.
        secret_keys: field names whose values are always replaced by ``[REDACTED]``.
        pii_keys: field names whose values are masked even when they are numbers.
        safe_keys: top-level fields surefoot itself fills with a fixed format; not inspected.
        id_keys: field names logged exactly as given, besides ``id`` and every name ending in
            ``_id`` or ``_ids`` (at any depth; ``-`` and ``_`` and case do not matter).

    Raises:
        ConfigurationError: ``body_max_chars`` is negative.
    """

    __slots__ = ("_unmasked_debug", "_bodies", "_body_max", "_actions", "_top_actions", "_cache", "_keys",
                 "_top_keys")

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
        id_keys: Iterable[str] = DEFAULT_ID_KEYS,
    ) -> None:
        if body_max_chars < 0:
            from ..errors import ConfigurationError

            raise ConfigurationError(f"body_max_chars must be >= 0, got {body_max_chars}")
        self._unmasked_debug = unmasked_pii_at_debug
        self._bodies = log_message_bodies
        self._body_max = body_max_chars
        actions: dict[str, int] = {}
        for key in _normalise(id_keys):
            actions[key] = _ID
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
        # Field names repeat on every line: the rule of each name seen is remembered (bounded),
        # so a line costs one dict lookup per field whatever the rules are.
        self._keys: dict[Any, int] = {}
        self._top_keys: dict[Any, int] = {}
        # Short strings repeat across lines (routes, methods, messages): remembering their
        # masked form keeps the access log cheap.
        self._cache: dict[str, str] = {}

    def __call__(self, logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        """Redact ``event_dict`` in place (the structlog processor protocol)."""
        mask = not (self._unmasked_debug and method_name == "debug")
        known = self._top_keys.get
        cached = self._cache.get
        for key, value in event_dict.items():
            action = known(key)
            if action is None:
                action = self._learn(key, True)
            if action == _PLAIN:
                kind = type(value)
                if kind is str:
                    if mask:
                        masked = cached(value)
                        if masked is None:
                            masked = self._mask_str(value)
                    else:
                        masked = redact_secrets(value)
                    if masked is not value:
                        event_dict[key] = masked
                elif kind not in _SCALAR_TYPES:
                    event_dict[key] = self._walk_field(value, mask)
            elif action < _SAFE:
                event_dict[key] = self._special_field(action, value, mask)
        return event_dict

    # A log call never raises because of what it logs: a value whose ``repr`` fails (or any
    # other surprise while redacting it) is written as a placeholder, the rest of the line
    # as usual. Only non-string values take these (a ``try`` costs nothing until it raises).
    def _walk_field(self, value: Any, mask: bool) -> Any:
        try:
            return self._walk(value, mask)
        except Exception as exc:
            return _unloggable(value, exc)

    def _special_field(self, action: int, value: Any, mask: bool) -> Any:
        try:
            return self._special(action, value, mask)
        except Exception as exc:
            return _unloggable(value, exc)

    def _learn(self, key: Any, top: bool) -> int:
        """The rule for field name ``key`` (remembered)."""
        if isinstance(key, str):
            normalised = key.lower().replace("-", "_")
            action = (self._top_actions.get(key) if top else None) or self._actions.get(normalised)
            if action is None:
                action = _ID if _is_id_key(normalised) else _PLAIN
        else:
            action = _PLAIN
        memo = self._top_keys if top else self._keys
        if len(memo) >= _KEYS_MAX:
            memo.clear()
        memo[key] = action
        return action

    def action_of(self, key: str) -> int | None:
        """The special rule for a top-level field (secret, body, PII key, safe, id), or ``None``."""
        action = self._top_keys.get(key)
        if action is None:
            action = self._learn(key, True)
        return None if action == _PLAIN else action

    def is_verbatim(self, key: str) -> bool:
        """True when the top-level field ``key`` is written exactly as given (an id, a safe field)."""
        return self.action_of(key) in (_SAFE, _ID)

    def _mask_str(self, value: str) -> str:
        masked = redact_secrets(value)
        if _TRIGGER(masked) is not None:
            masked = _mask(masked)
        if len(value) <= _CACHEABLE_LEN:
            cache = self._cache
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[value] = masked
        return masked

    def mask_text(self, value: str) -> str:
        """``value`` redacted as a plain string field at INFO would be (secrets and PII)."""
        masked = self._cache.get(value)
        return masked if masked is not None else self._mask_str(value)

    def redact(self, value: Any, *, mask: bool = True) -> Any:
        """Return ``value`` redacted as a log field would be (nested containers included)."""
        return self._walk_field(value, mask)

    def _special(self, action: int, value: Any, mask: bool, path: set[int] | None = None) -> Any:
        if action == _SECRET:
            return "[REDACTED]"
        if action == _BODY:
            if not self._bodies:
                return f"[omitted: {len(value)} chars]" if isinstance(value, (str, bytes, bytearray)) else "[omitted]"
            text = value if isinstance(value, str) else self._text(value)
            text = self._walk(text, mask)
            return text if len(text) <= self._body_max else text[: self._body_max] + "…"
        if action == _PIIKEY:  # numbers too
            if mask and isinstance(value, (int, float)) and not isinstance(value, bool):
                return _mask_number(value)
            return self._walk(value, mask, path)
        return value  # _ID, _SAFE: as given

    @staticmethod
    def _text(value: Any) -> str:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("utf-8", "replace")
        return repr(value)

    def _walk(self, value: Any, mask: bool, path: set[int] | None = None) -> Any:
        kind = type(value)
        if kind is str:
            if mask:
                masked = self._cache.get(value)
                return masked if masked is not None else self._mask_str(value)
            return redact_secrets(value)
        if isinstance(value, _KEPT_AS_IS):
            return value
        if isinstance(value, str):  # str subclasses such as StrEnum members
            return self._walk(str(value), mask)
        if isinstance(value, (dict, list, tuple, set, frozenset)):
            return self._walk_container(value, mask, path)
        try:
            text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else self._text(value)
        except Exception as exc:  # a broken __repr__ / __str__ costs this value, not the line
            return _unloggable(value, exc)
        return self._walk(text, mask)

    def _walk_container(self, value: Any, mask: bool, path: set[int] | None) -> Any:
        # ``path``: the containers being walked, outermost first. A container inside itself
        # is written once, and nesting is cut at MAX_DEPTH, so any structure gives a line.
        ident = id(value)
        if path is None:
            path = set()
        elif ident in path:
            return CIRCULAR
        elif len(path) >= MAX_DEPTH:
            return TOO_DEEP
        path.add(ident)
        try:
            if isinstance(value, dict):
                out = {}
                known = self._keys.get
                for key, item in value.items():
                    action = known(key)
                    if action is None:
                        action = self._learn(key, False)
                    new_key = self._walk(key, mask) if isinstance(key, str) else key
                    out[new_key] = (
                        self._walk(item, mask, path) if action == _PLAIN else self._special(action, item, mask, path)
                    )
                return out
            return [self._walk(item, mask, path) for item in value]
        finally:
            path.discard(ident)
