"""Secrets in free text, exception messages and tracebacks never reach a log line; ids are never masked."""

from __future__ import annotations

import io
import json
import logging
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from surefoot import context
from surefoot.logging import Redactor, configure_logging, get_logger, redact_secrets

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFsaWNlIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
SECRETS = {
    "password": "hunter2-Correct-Horse",
    "stripe": "sk_live_51HxYzAbCdEfGhIjKlMnOp",
    "jwt": JWT,
    "url_password": "s3cr3t-db-pw",
    "api_key": "k-0f9e8d7c6b5a",
    "github": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
}


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def _assert_no_secret(text: str) -> None:
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} leaked: {text}"


class PaymentError(RuntimeError):
    pass


def _charge() -> None:
    try:
        raise ConnectionError(f"connect postgresql://app:{SECRETS['url_password']}@db.internal:5432/pay refused")
    except ConnectionError as exc:
        raise PaymentError(
            f"charge failed: password={SECRETS['password']} key {SECRETS['stripe']} "
            f"headers {{'Authorization': 'Bearer {SECRETS['jwt']}', 'X-Api-Key': '{SECRETS['api_key']}'}} "
            f"token {SECRETS['github']}"
        ) from exc


def test_a_raised_exception_logged_by_structlog_leaks_no_secret() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", level="INFO")
    log = get_logger("billing")
    try:
        _charge()
    except PaymentError:
        log.exception("charge_failed", customer="c-1")
    raw = buf.getvalue()
    _assert_no_secret(raw)
    (line,) = _lines(buf)
    # The traceback is there (both exceptions, the chain), only the values are gone.
    assert "PaymentError: charge failed: password=[REDACTED]" in line["exception"]
    assert "ConnectionError: connect postgresql://app:[REDACTED]@db.internal:5432/pay" in line["exception"]
    assert "'Authorization': '[REDACTED]'" in line["exception"]
    assert line["level"] == "error"


def test_a_raised_exception_logged_by_stdlib_leaks_no_secret() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", level="INFO")
    try:
        _charge()
    except PaymentError as exc:
        logging.getLogger("payments").exception("charge failed: %s", exc)
        logging.getLogger("payments").error("again", extra={"error": exc, "detail": str(exc)})
    _assert_no_secret(buf.getvalue())
    first, second = _lines(buf)
    assert "[REDACTED]" in first["event"] and "[REDACTED]" in first["exception"]
    assert second["error"].startswith("PaymentError: charge failed: password=[REDACTED]")


def test_secrets_are_redacted_at_debug_even_with_unmasked_pii() -> None:
    redactor = Redactor(unmasked_pii_at_debug=True)
    out = redactor(None, "debug", {"event": f"login password={SECRETS['password']} by alice@example.com",
                                   "nested": {"why": f"Bearer {SECRETS['jwt']}"}})
    assert out["event"] == "login password=[REDACTED] by alice@example.com"  # PII kept at DEBUG
    assert out["nested"] == {"why": "Bearer [REDACTED]"}


def test_console_format_is_redacted_too() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="console", level="INFO")
    try:
        _charge()
    except PaymentError:
        get_logger("billing").exception("charge_failed")
    _assert_no_secret(buf.getvalue())
    assert "[REDACTED]" in buf.getvalue()


def test_sqlalchemy_errors_are_logged_without_their_parameters(db_url: str) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(db_url)
    meta = sqlalchemy.MetaData()
    users = sqlalchemy.Table(
        "leak_users", meta,
        sqlalchemy.Column("email", sqlalchemy.String(200), primary_key=True),
        sqlalchemy.Column("secret_answer", sqlalchemy.String(200)),
    )
    meta.create_all(engine)
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", level="INFO")
    row = {"email": "carol@example.org", "secret_answer": "Rosebud-Sled-1941"}
    try:
        with engine.begin() as conn:
            conn.execute(users.insert(), row)
            conn.execute(users.insert(), row)  # duplicate key
    except sqlalchemy.exc.IntegrityError as exc:
        assert "Rosebud-Sled-1941" in str(exc)  # SQLAlchemy itself puts the parameters in its message
        log = get_logger("db")
        log.exception("insert_failed")
        log.error("insert_failed", error=exc, detail=str(exc))
        logging.getLogger("db").error("insert failed: %s", exc)
    finally:
        meta.drop_all(engine)
        engine.dispose()
    raw = buf.getvalue()
    assert "Rosebud-Sled-1941" not in raw
    assert "carol@example.org" not in raw
    lines = _lines(buf)
    assert len(lines) == 3
    for text in (lines[0]["exception"], lines[1]["error"], lines[1]["detail"], lines[2]["event"]):
        assert "INSERT INTO leak_users" in text  # the statement stays
        assert "[parameters: [REDACTED]]" in text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("correlation_id", "4155552671"),
        ("causation_id", "+14155552671"),
        ("tenant_id", "12345678"),
        ("request_id", "req-4155552671"),
        ("event_id", 987654321012),
        ("message_id", "SM4155552671"),
        ("order_id", 4155552671),
        ("customer_ids", ["4155552671", "4155552672"]),
    ],
)
def test_ids_are_never_masked(field: str, value: object) -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", level="INFO")
    get_logger("x").info("e", **{field: value}, nested={"delivery": {field: value}}, phone="4155552671")
    (line,) = _lines(buf)
    assert line[field] == value
    assert line["nested"]["delivery"][field] == value
    assert line["phone"] == "***2671"  # PII fields are still masked


def test_ids_from_the_request_context_are_logged_intact() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", level="INFO")
    with context.bound(correlation_id="4155552671", tenant_id="31415926", causation_id="27182818"):
        get_logger("x").info("e")
        logging.getLogger("y").warning("w")
    for line in _lines(buf):
        assert (line["correlation_id"], line["tenant_id"], line["causation_id"]) == (
            "4155552671", "31415926", "27182818",
        )


@pytest.mark.parametrize(
    ("raw", "redacted"),
    [
        ("login failed password=hunter2 user=bob", "login failed password=[REDACTED] user=bob"),
        ("cfg {'db_password': 'a b c'}", "cfg {'db_password': '[REDACTED]'}"),
        ('{"client_secret": "xyz", "grant": "cc"}', '{"client_secret": "[REDACTED]", "grant": "cc"}'),
        ("Authorization: Bearer abc.def.ghi-jkl", "Authorization: [REDACTED]"),
        ("sent Bearer abcdefghijkl", "sent Bearer [REDACTED]"),
        ("Basic dXNlcjpwYXNzd29yZA==", "Basic [REDACTED]"),
        ("redis://:pw123456@cache:6379/0", "redis://:[REDACTED]@cache:6379/0"),
        ("GET /cb?code=1&access_token=abc123&state=x", "GET /cb?code=1&access_token=[REDACTED]&state=x"),
        ("key AKIAIOSFODNN7EXAMPLE", "key [REDACTED]"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw rejected", "[REDACTED] rejected"),
        ("OPENAI sk-proj-abcdefghijklmnopqrstuv", "OPENAI [REDACTED]"),
        ('escaped {\\"password\\": \\"hunter2\\"}', 'escaped {\\"password\\": \\"[REDACTED]\\"}'),
        ("SECRET_KEY = 'django-insecure-k3y'", "SECRET_KEY = '[REDACTED]'"),
        ("flask secret_key=k3y loaded", "flask secret_key=[REDACTED] loaded"),
        ("Authorization: ApiKey k3y-123", "Authorization: [REDACTED]"),
        ("Proxy-Authorization: Negotiate YIIGhgYGKwYBBQUC", "Proxy-Authorization: [REDACTED]"),
        ("Cookie: session=abc; csrftoken=xyz", "Cookie: [REDACTED]"),
        ("Set-Cookie: sid=abc; Path=/; HttpOnly", "Set-Cookie: [REDACTED]"),
        ("{'cookie': 'session=abc; csrftoken=xyz'}", "{'cookie': '[REDACTED]'}"),
        (
            "send: b'GET / HTTP/1.1\\r\\nHost: api\\r\\nCookie: session=abc; csrftoken=xyz\\r\\n'",
            "send: b'GET / HTTP/1.1\\r\\nHost: api\\r\\nCookie: [REDACTED]\\r\\n'",
        ),
    ],
)
def test_secret_shapes(raw: str, redacted: str) -> None:
    assert redact_secrets(raw) == redacted


@pytest.mark.parametrize(
    "kept",
    [
        "basic setup works",
        "Basic authentication required",
        "max_tokens=100 prompt_tokens=42 token_type=bearer",
        "idempotency_key=abc-123 cache key hit",
        "tests passed, compass=north, bypass=on",
        "https://example.com:8443/path?q=1",
        "user alice@example.com",  # PII is masked separately, not as a secret
    ],
)
def test_ordinary_text_is_left_alone(kept: str) -> None:
    assert redact_secrets(kept) == kept


_TOKEN = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=30)
_FILLER = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20).filter(
    lambda t: t.isprintable()
)
_KEYS = st.sampled_from(["password", "passwd", "db_password", "client_secret", "api_key", "X-Api-Key",
                         "access_token", "refresh_token", "Authorization", "private_key", "secret",
                         "SECRET_KEY", "Cookie"])


@st.composite
def secrets_in_text(draw) -> tuple[str, str]:
    token = draw(_TOKEN)
    form = draw(st.sampled_from(["kv", "json", "repr", "bearer", "stripe", "jwt", "url", "query"]))
    key = draw(_KEYS)
    if form == "kv":
        text = f"{key}={token}"
    elif form == "json":
        text = json.dumps({key: token})
    elif form == "repr":
        text = repr({key: token})
    elif form == "bearer":
        text = f"Bearer {token}"
    elif form == "stripe":
        token = "sk_" + draw(st.sampled_from(["live", "test"])) + "_" + token
        text = token
    elif form == "jwt":
        token = f"eyJ{token}.{token[::-1]}.{token}"
        text = token
    elif form == "url":
        text = f"postgresql://app:{token}@db/x"
    else:
        text = f"https://api.example.com/v1?{key}={token}&page=2"
    return text, token


@given(secrets_in_text(), _FILLER, _FILLER, st.sampled_from([" ", "\n", ": ", ", ", "\t", "("]))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_no_secret_survives_in_text(sample, before, after, sep) -> None:
    text, token = sample
    assume(token not in before and token not in after)
    out = redact_secrets(before + sep + text + sep + after)
    assert token not in out, out


@given(secrets_in_text(), st.sampled_from(["info", "error", "debug"]))
@settings(max_examples=50, deadline=None)
def test_no_secret_survives_in_an_exception_traceback(sample, level) -> None:
    text, token = sample
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json", level="DEBUG")
    try:
        raise ValueError(f"upstream said: {text}")
    except ValueError:
        getattr(get_logger("x"), level)("failed", exc_info=True)
    assert token not in buf.getvalue()


_FRAGMENTS = st.sampled_from([
    "password", "Passwd", "api-key", "X-Api-Key", "token", "auth", "Authorization", "cookie", "signature",
    "=", ": ", '"', "'", "\\", " ", "\t", "Bearer ", "basic ", "BASIC\t", "eyJ", "abc.def", "sk_live_", "sk-",
    "ghp_", "github_pat_", "xoxb-", "AKIA", "AIza", "SG.", "glpat-", "://", "user:", "@", "db", "_", "-",
    "dXNlcjpwYXNz", "0123456789abcdef", "ABCDEFGHIJKLMNOP", "[parameters: ", "]", "\n",
    "\\r\\n", "Set-Cookie: ", "secret_key", "ApiKey ", "; ", "n",
])


@given(st.lists(_FRAGMENTS, max_size=12).map("".join))
@settings(max_examples=500)
def test_the_pre_check_never_skips_a_string_the_patterns_would_change(text) -> None:
    from surefoot.logging import _secrets

    full = _secrets._SQL_PARAMETERS_SUB(_secrets._SQL_PARAMETERS_REDACTED, text)
    assert redact_secrets(text) == _secrets._secrets_pattern().sub(_secrets._replace, full)
