"""Secret-looking values in free text: exception messages, tracebacks, SQL errors, URLs.

:func:`redact_secrets` replaces, anywhere in a string:

* the value after a secret-named key, in the forms code and libraries print them
  (``password=hunter2``, ``"api_key": "k-123"``, ``{'client_secret': 's'}``,
  ``Authorization: Bearer eyJ...``, ``?access_token=abc&x=1``): the key and separator stay,
  the value becomes ``[REDACTED]`` (quotes kept). A key is secret-named when it is, or ends
  with (after ``_``, ``-`` or ``.``), one of ``password``, ``passwd``, ``passphrase``,
  ``pass``, ``pwd``, ``secret``, ``token``, ``api_key``/``apikey``/``api-key``,
  ``access_key``, ``private_key``, ``auth``, ``authorization``, ``credential(s)``,
  ``cookie``, ``signature``;
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
import re

__all__ = ["redact_secrets", "REDACTED"]

REDACTED = "[REDACTED]"

_NAMES = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|auth|authorization|credentials?|cookie|signature)"
)
_KEY_VALUE = (
    # the key: a secret name, alone or as the last part of a compound name (db_password,
    # X-Api-Key, stripe.secret: only the name itself is matched, so the scan stays linear);
    # never glued to a letter or digit on either side
    rf"(?<![A-Za-z0-9]){_NAMES}(?![A-Za-z0-9_])"
    # the separator, with the quote that may close a quoted key: = : ": ': \":
    r"(?P<sep>\\?[\"']?\s*[:=]\s*)"
    # the value: a quoted string, or an (optional scheme and) unquoted run
    r"(?P<value>\\\"(?:[^\"\\\n]|\\[^\"\n])*\\\"|\"[^\"\n]*\"|'[^'\n]*'"
    r"|[\"']?(?:(?:bearer|basic|digest|token)\s+)?[^\s\"'&,;)}\]<>]+)"
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
_SECRETS = re.compile(rf"(?P<kv>{_KEY_VALUE})|{_SHAPES}", re.IGNORECASE)
# Cheap pre-check on the lower-cased text: a string without any of these literals cannot match
# a pattern above (a plain literal alternation is several times faster than the full pattern).
_TRIGGER = re.compile(
    "|".join(
        re.escape(word)
        for word in (
            "pass", "pwd", "secret", "token", "key", "auth", "cookie", "credential", "signature", "bearer",
            "basic", "eyj", "_live_", "_test_", "whsec_", "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
            "github_pat_", "xox", "akia", "aiza", "sg.", "glpat-", "://", "[parameters: ",
        )
    )
).search
# SQLAlchemy's StatementError message: "[SQL: ...]\n[parameters: (...)]" on its own line.
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*\]")
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
    if _TRIGGER(text.lower()) is None:
        return text
    if "[parameters: " in text:
        text = _SQL_PARAMETERS.sub(_SQL_PARAMETERS_REDACTED, text)
    return _SECRETS.sub(_replace, text)
