"""Secret-looking values in free text: exception messages, tracebacks, SQL errors, URLs.

:func:`redact_secrets` replaces, anywhere in a string:

* the value after a secret-named key, in the forms code and libraries print them
  (``password=hunter2``, ``"api_key": "k-123"``, ``{'client_secret': 's'}``,
  ``Authorization: Bearer eyJ...``, ``?access_token=abc&x=1``): the key and separator stay,
  the value becomes ``[REDACTED]`` (quotes kept; an authorization scheme word such as
  ``Bearer`` or ``ApiKey`` goes with it). A key is secret-named when it is, or ends
  with (after ``_``, ``-`` or ``.``), one of ``password``, ``passwd``, ``passphrase``,
  ``pass``, ``pwd``, ``secret``, ``secret_key``, ``token``, ``api_key``/``apikey``/``api-key``,
  ``access_key``, ``private_key``, ``auth``, ``authorization``, ``credential(s)``,
  ``cookie``, ``signature``;
* the whole value of a ``Cookie:`` / ``Set-Cookie:`` header line (every cookie, not the first);
* ``Bearer <token>`` and ``Basic <base64 of user:password>`` credentials;
* JSON Web Tokens (``eyJ...``.``...``.``...``);
* API keys recognisable by their shape: Stripe (``sk_live_``, ``sk_test_``, ``rk_``, ``whsec_``),
  OpenAI/Anthropic (``sk-...``), GitHub (``ghp_``, ``gho_``, ``ghs_``, ``ghu_``, ``ghr_``,
  ``github_pat_``), Slack (``xox?-``), AWS access key ids (``AKIA...``), Google (``AIza...``),
  SendGrid (``SG.x.y``), GitLab (``glpat-``);
* the password of a URL with credentials (``postgresql://app:s3cret@db/x`` →
  ``postgresql://app:[REDACTED]@db/x``);
* the bound parameters of a database error: SQLAlchemy appends them to its message as a
  ``[parameters: ...]`` line; that line becomes ``[parameters: [REDACTED]]`` (the statement
  itself stays, as with SQLAlchemy's own ``hide_parameters=True``).

The patterns are linear (no nested quantifiers over the same characters) and only run on
strings that contain one of their trigger words.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable

from .._core.extras import lazy_pattern

__all__ = ["redact_secrets", "REDACTED"]

REDACTED = "[REDACTED]"

_NAMES = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret[_-]?key|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|auth|authorization|credentials?|(?P<cookie>cookie)|signature)"
)
# Not glued to a letter or digit on the left, except the "n" of a written-out "\n" (three
# single-character checks: as fast as one, where an alternation of lookbehinds is not).
_KEY_START = r"(?<![A-MO-QSU-Za-mo-qsu-z0-9])(?<![^\\][nrt])(?<!^[nrt])"
# Authorization schemes: the scheme word stays part of the value, so its credentials go too.
_SCHEMES = r"(?:bearer|basic|digest|token|apikey|api-key|key|negotiate|ntlm|hmac|mac)"
_KEY_VALUE = (
    # the key: a secret name, alone or as the last part of a compound name (db_password,
    # X-Api-Key, stripe.secret: only the name itself is matched, so the scan stays linear);
    # never glued to a letter or digit on either side (but "\r\nCookie" as bytes print it is
    # a line break then the key)
    rf"{_KEY_START}{_NAMES}(?![A-Za-z0-9_])"
    # the separator, with the quote that may close a quoted key: = : ": ': \":
    r"(?P<sep>\\?[\"']?\s*[:=]\s*)"
    # the value: a quoted string, or an (optional scheme and) unquoted run; after a cookie
    # key (a Cookie / Set-Cookie header) the run is every cookie of the line ("a=1; b=2")
    r"(?P<value>\\\"(?:[^\"\\\n]|\\[^\"\n])*\\\"|\"[^\"\n]*\"|'[^'\n]*'"
    rf"|(?(cookie)[^\s\"'\\<>][^\n\r\"'\\<>]*|[\"']?(?:{_SCHEMES}\s+)?[^\s\"'&,;)}}\]<>]+))"
)
_SHAPES = (
    r"(?P<scheme>(?<![A-Za-z0-9])bearer\s+[A-Za-z0-9\-._~+/]{8,}=*)(?![A-Za-z0-9\-._~+/=])"
    r"|(?P<basic>(?<![A-Za-z0-9])basic\s+(?P<b64>[A-Za-z0-9+/]{6,}={0,2}))(?![A-Za-z0-9+/=])"
    r"|(?P<key>(?-i:(?<![A-Za-z0-9])(?:"
    r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"  # a JSON Web Token
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,}|whsec_[A-Za-z0-9+/=]{8,}"
    r"|sk-[A-Za-z0-9_\-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{30,}"
    r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}|glpat-[A-Za-z0-9_\-]{20,}"
    r")))"
    # scheme://user:password@ (the password never contains "/", "@" or spaces unencoded)
    r"|(?P<url>(?<=://)[^\s/:@]*:)(?P<urlpw>[^\s/@]+)(?=@)"
)


@functools.cache
def _secrets_pattern() -> re.Pattern[str]:
    # Compiled on first use: most processes never log a string that passes the pre-checks
    # below, and compiling this pattern is a measurable share of start-up.
    return re.compile(rf"(?P<kv>{_KEY_VALUE})|{_SHAPES}", re.IGNORECASE)


# Cheap pre-checks, so that a string holding none of the patterns costs a few substring scans.
# A "key = value" form needs a separator; it is found on the reversed, lower-cased text, where
# the pattern starts with the separator (a one-character-class scan) instead of trying every
# secret name at every position.
_NAME_LIST = (
    "password", "passwd", "passphrase", "pass", "pwd", "secret", "secret_key", "secret-key", "secretkey",
    "token", "api_key", "api-key", "apikey",
    "access_key", "access-key", "accesskey", "private_key", "private-key", "privatekey", "auth",
    "authorization", "credential", "credentials", "cookie", "signature",
)
_KV_REVERSED: Callable[[str], re.Match[str] | None] = lazy_pattern(
    globals(), "_KV_REVERSED",
    r"[=:]\s*[\"']?\\?(?:"
    + "|".join(re.escape(name[::-1]) for name in sorted(_NAME_LIST, key=len, reverse=True))
    + r")(?:(?![a-z0-9])|(?=[nrt]\\))",  # (reversed: a written-out line break before the key follows it)
    "search",
)
_GITHUB: Callable[[str], re.Match[str] | None] = lazy_pattern(globals(), "_GITHUB", "gh[pousr]_", "search")


def _may_hold_secret(text: str) -> bool:
    if "=" in text or ":" in text:
        if "[parameters: " in text or ("://" in text and "@" in text):
            return True
        if _KV_REVERSED(text.lower()[::-1]) is not None:
            return True
    # Shapes, by a mark each always carries (unrolled: no loop, one C scan per mark).
    if "_" in text and (
        "_live_" in text or "_test_" in text or "whsec_" in text or "github_pat_" in text
        or ("gh" in text and _GITHUB(text) is not None)
    ):
        return True
    if "-" in text and ("sk-" in text or "xox" in text or "glpat-" in text):
        return True
    return (
        "eyJ" in text or "AKIA" in text or "AIza" in text or "SG." in text
        or "earer" in text or "EARER" in text or "asic" in text or "ASIC" in text
    )


# SQLAlchemy's StatementError message: "[SQL: ...]\n[parameters: (...)]" on its own line.
_SQL_PARAMETERS_SUB: Callable[[str, str], str] = lazy_pattern(globals(), "_SQL_PARAMETERS_SUB", r"\[parameters: [^\n]*\]", "sub")
_SQL_PARAMETERS_REDACTED = "[parameters: [REDACTED]]"


def _is_basic_credential(b64: str) -> bool:
    try:
        decoded = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


def _replace(match: re.Match[str]) -> str:
    if match.group("kv") is not None:
        value = match.group("value")
        whole = match.group()
        head = whole[: match.start("value") - match.start()]
        if value.startswith('\\"'):
            return head + '\\"' + REDACTED + '\\"'
        if value[:1] in ("'", '"'):
            return head + value[0] + REDACTED + value[0]
        return head + REDACTED
    if match.group("scheme") is not None:
        return match.group("scheme").split(None, 1)[0] + " " + REDACTED
    if match.group("basic") is not None:
        if not _is_basic_credential(match.group("b64")):
            return match.group()
        return match.group("basic").split(None, 1)[0] + " " + REDACTED
    if match.group("url") is not None:
        return match.group("url") + REDACTED
    return REDACTED


def redact_secrets(text: str) -> str:
    """Return ``text`` with secret-looking values replaced by ``[REDACTED]`` (see the module docs).

    Args:
        text: any string (a message, an exception text, a formatted traceback).

    Returns:
        The redacted string (the same object when nothing needed redacting).
    """
    if not _may_hold_secret(text):
        return text
    if "[parameters: " in text:
        text = _SQL_PARAMETERS_SUB(_SQL_PARAMETERS_REDACTED, text)
    return _secrets_pattern().sub(_replace, text)
