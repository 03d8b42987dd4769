from __future__ import annotations

import io
import json
import re
import string
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surefoot.logging import Redactor, configure_logging, get_logger, mask_pii

# Text around the PII: anything but digits and "@" (so every digit and "@" left in the output
# can only come from what the redactor let through).
FILLER = st.text(
    alphabet=st.characters(blacklist_categories=("Nd", "Cs"), blacklist_characters="@%\uff20\ufe6b"),
    max_size=30,
)
# What separates PII from the text around it: a character that is neither part of a word nor
# of a number (a phone glued to letters, like "abc4155552671", is an identifier, not a phone).
SEPARATORS = st.sampled_from([" ", "\n", "\t", ",", ";", ":", "=", "(", ")", "[", "]", "<", ">", '"', "/", "|"])


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=string.digits, min_size=n, max_size=n)


@st.composite
def phones(draw) -> str:
    """Phone numbers as people write them: E.164, national, grouped, bracketed."""
    style = draw(st.sampled_from(["e164", "us", "us_paren", "intl_grouped", "national_grouped"]))
    if style == "e164":
        return "+" + draw(st.sampled_from("123456789")) + draw(_digits(draw(st.integers(6, 13))))
    if style == "us":
        sep = draw(st.sampled_from(["-", ".", " ", "/", "\u00a0", "\u2009", "\u202f"]))
        return sep.join([draw(_digits(3)), draw(_digits(3)), draw(_digits(4))])
    if style == "us_paren":
        prefix = draw(st.sampled_from(["", "+1 "]))
        return f"{prefix}({draw(_digits(3))}) {draw(_digits(3))}-{draw(_digits(4))}"
    groups = draw(st.lists(st.integers(2, 4), min_size=3, max_size=5))
    # Spaces as typographers and word processors write them (non-breaking, thin, narrow
    # no-break, figure) and slashes (030/1234567) group digits too.
    sep = draw(st.sampled_from([" ", "-", ".", "/", "\u00a0", "\u2009", "\u202f", "\u2007"]))
    body = sep.join(draw(_digits(n)) for n in groups)
    if sum(groups) < 7:
        body += sep + draw(_digits(4))
    if style == "intl_grouped":
        return "+" + draw(st.sampled_from(["1", "33", "44", "49", "351"])) + " " + body
    return "0" + body


# "@" as written, percent-encoded (an address inside a logged URL), fullwidth and small.
AT_SIGNS = ["@", "%40", "\uff20", "\ufe6b"]


@st.composite
def emails(draw) -> str:
    address = draw(st.emails())
    local, _, domain = address.rpartition("@")
    at = draw(st.sampled_from(AT_SIGNS))
    if at == "%40":  # inside a URL the whole address is percent-encoded, not only its "@"
        local = urllib.parse.quote(local, safe="")
    return local + at + domain


EMAILS = emails()
# Numbers shaped exactly like a date (0000-00-00, 00/00/0000, 0000/00/00) are left alone by design.
_DATES = re.compile(r"\d{4}-\d\d-\d\d|\d{1,2}/\d{1,2}/\d{2,4}|\d{4}/\d{1,2}/\d{1,2}")
PHONES = phones().filter(lambda p: _DATES.fullmatch(p) is None)
PII = st.one_of(PHONES, EMAILS)


@st.composite
def text_with_pii(draw) -> tuple[str, list[str]]:
    items = draw(st.lists(PII, min_size=1, max_size=3))
    parts = [draw(FILLER)]
    for item in items:
        parts += [draw(SEPARATORS), item, draw(SEPARATORS), draw(FILLER)]
    return "".join(parts), items


def _assert_clean(text: str) -> None:
    for at in AT_SIGNS:
        assert at not in text, text
    # No run of more than 4 digits survives, even split by phone-style separators.
    assert re.search(r"\d(?:[ \u00a0\u2007\u2009\u202f.\-()/]{0,3}\d){4,}", text) is None, text


@given(text_with_pii())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_no_email_or_phone_survives_in_text(sample) -> None:
    text, items = sample
    masked = mask_pii(text)
    _assert_clean(masked)
    for item in items:
        assert item not in masked


def _nested(leaf: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.tuples(children, children),
            # id-named keys (``ID``, ``order-id``, ...) are logged as given, at any depth
            st.dictionaries(FILLER.filter(lambda k: not _id_named(k)), children, max_size=3),
        ),
        max_leaves=8,
    )


def _id_named(key: str) -> bool:
    normalised = key.lower().replace("-", "_")
    return normalised == "id" or normalised.endswith(("_id", "_ids"))


@given(
    st.dictionaries(
        st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
            # fixed-format fields and ids (``id``, ``*_id``, ``*_ids``) are logged as given
            lambda k: k not in {"timestamp", "level", "trace_id", "span_id", "id"}
            and not k.endswith(("_id", "_ids"))
        ),
        _nested(st.one_of(text_with_pii().map(lambda s: s[0]), FILLER, st.booleans(), st.none())),
        max_size=4,
    ),
    text_with_pii(),
    st.sampled_from(["info", "warning", "error", "critical", "exception", "debug"]),
)
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_no_email_or_phone_survives_in_nested_fields(fields, event, level) -> None:
    redactor = Redactor()  # log_unmasked_pii off: masked at every level, DEBUG included
    event_dict = {"event": event[0], **fields}
    out = redactor(None, level, event_dict)
    rendered = json.dumps(out, ensure_ascii=False, default=str)
    _assert_clean(rendered.replace('\\"', ""))


@given(text_with_pii())
@settings(max_examples=30, deadline=None)
def test_end_to_end_json_line_at_info_has_no_pii(sample) -> None:
    text, items = sample
    buf = io.StringIO()
    configure_logging(stream=buf, fmt="json")
    get_logger("x").info(text, note=text, nested={"k": [text]})
    line = json.loads(buf.getvalue())
    for key in ("event", "note"):
        _assert_clean(line[key])
    _assert_clean(line["nested"]["k"][0])


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("alice@example.com", "***.com"),
        ("write to bob.smith+tag@mail.example.co.uk today", "write to ***o.uk today"),
        ("+14155552671", "***2671"),
        ("+1 (415) 555-2671", "***2671"),
        ("(415) 555-2671", "***2671"),
        ("415.555.2671", "***2671"),
        ("07911 123456", "***3456"),
        ("+44 7911 123456", "***3456"),
        ("06 12 34 56 78", "***5678"),
        ("tel:+4930123456", "tel:***3456"),
        # the known gaps: percent-encoded and fullwidth "@", typographic spaces, slashes
        ("GET /invite?to=user%40example.com", "GET /invite?to=***.com"),
        ("user\uff20example.com", "***.com"),
        ("user@example\uff0ecom", "***\uff0ecom"),
        ("415\u2009555\u20092671", "***2671"),
        ("+44\u00a07911\u00a0123456", "***3456"),
        ("06\u202f12\u202f34\u202f56\u202f78", "***5678"),
        ("030/1234567", "***4567"),
        ("+49 (0)30/123 456 78", "***5678"),
        ("28/10/2025 call +1 415 555 2671", "28/10/2025 call ***2671"),
        ("GET /api/v2/4155552671", "GET /api/v2/***2671"),
        ("mobile.ph.v4155552671@example.com", "***.com"),
        ("reply ada@exam...", "reply ***..."),
        ("reply ada@example.co...", "reply ***e.co..."),
    ],
)
def test_masking_scheme(raw: str, masked: str) -> None:
    assert mask_pii(raw) == masked


@pytest.mark.parametrize(
    "kept",
    [
        "2025-10-28T10:30:45.123456Z",
        "2025-10-28 10:30:45",
        "client 192.168.100.200",
        "took 3.14159265 s",
        "550e8400-e29b-41d4-a716-446655440000",
        "id 12347389-963e-45f9-94cf-a0c2c2cce629",
        "12345678-1234-1234-1234-123456789012",
        "build 20251028-rc1",
        "/users/123/orders/4567",
        "HTTP/1.1 200",
        "GET",
        "due 28/10/2025",
        "archive/2025/10/28/report",
        "due 28/10/2025 12:34",
        "sent 10/28/2025 09:15:00 UTC",
        "on 1/2/2025 12:34 and 2025/10/28 12:34:56",
    ],
)
def test_common_non_pii_is_left_alone(kept: str) -> None:
    assert mask_pii(kept) == kept


def test_secrets_are_redacted_at_every_level_even_nested() -> None:
    redactor = Redactor(unmasked_pii_at_debug=True)
    out = redactor(
        None, "debug",
        {"event": "e", "password": "hunter2", "headers": {"Authorization": "Bearer x", "X-Api-Key": "k"}},
    )
    assert out["password"] == "[REDACTED]"
    assert out["headers"] == {"Authorization": "[REDACTED]", "X-Api-Key": "[REDACTED]"}


def test_pii_keys_mask_numbers_too_and_other_numbers_are_left() -> None:
    out = Redactor()(None, "info", {"event": "e", "phone": 4155552671, "count": 4155552671})
    assert out == {"event": "e", "phone": "***2671", "count": 4155552671}


def test_objects_are_rendered_then_masked() -> None:
    class User:
        def __repr__(self) -> str:
            return "User(email='carol@example.org')"

    out = Redactor()(None, "info", {"event": "e", "user": User(), "err": KeyError("dave@x.io"), "raw": b"+14155552671"})
    # RFC 5322 allows = and ' in the local part, so the match starts at "email="
    assert out["user"] == "User(***.org')"
    assert "dave" not in out["err"]
    assert out["raw"] == "***2671"


def test_bodies_with_flag_are_masked_before_truncation() -> None:
    redactor = Redactor(log_message_bodies=True, body_max_chars=20)
    out = redactor(None, "info", {"event": "e", "body": "x" * 10 + " alice@example.com and more"})
    # cut after masking: the cut can never leave half an address readable
    assert out["body"] == "x" * 10 + " ***.com a…"
    assert Redactor()(None, "info", {"event": "e", "message_body": b"abc"})["message_body"] == "[omitted: 3 chars]"


def test_long_inputs_stay_linear() -> None:
    import time

    text = ("a" * 5000 + "@") * 4 + "1 " * 10_000
    started = time.perf_counter()
    mask_pii(text)
    # generous bound: a quadratic regex would take seconds here
    assert time.perf_counter() - started < 1.0


def test_negative_body_limit_is_refused() -> None:
    from surefoot.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        Redactor(body_max_chars=-1)


@given(st.uuids())
@settings(max_examples=300)
def test_uuids_such_as_correlation_ids_are_never_masked(value) -> None:
    assert mask_pii(str(value)) == str(value)
    assert mask_pii(f"request {value} done") == f"request {value} done"


@given(text_with_pii(), st.integers(0, 80))
@settings(max_examples=100)
def test_logged_bodies_never_leak_pii_whatever_the_cut(sample, limit) -> None:
    text, _ = sample
    out = Redactor(log_message_bodies=True, body_max_chars=limit)(None, "info", {"event": "e", "body": text})
    body = out["body"]
    assert len(body) <= limit + 1
    _assert_clean(body)
