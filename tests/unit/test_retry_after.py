"""One Retry-After parser: the retry, the circuit breaker and the HTTP sink read a header alike."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot._core.retry_after import parse_retry_after
from surefoot.outbox.sinks import parse_retry_after as sink_parse
from surefoot.resilience import retry_after_of as breaker_retry_after_of
from surefoot.resilience._retry import retry_after_of as retry_retry_after_of

NOW = 1_445_412_000.0  # Wed, 21 Oct 2015 07:20:00 GMT


class Response:
    def __init__(self, status_code: int, headers: dict) -> None:
        self.status_code = status_code
        self.headers = headers


def test_the_sink_uses_the_shared_parser() -> None:
    assert sink_parse is parse_retry_after


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,3})?", fullmatch=True),
    st.integers(0, 10**6).map(lambda s: email.utils.formatdate(NOW + s, usegmt=True)),
    st.text(max_size=20),
))
def test_retry_breaker_and_sink_agree(value: str) -> None:
    shared = parse_retry_after(value, now=NOW, max_delay=float("inf"))
    via_retry = retry_retry_after_of(Response(503, {"Retry-After": value}), NOW)
    via_breaker = breaker_retry_after_of(Response(503, {"Retry-After": value}), NOW)
    assert via_retry == shared
    # The breaker only lets a positive delay force it open.
    assert via_breaker == (shared if shared else None)


@pytest.mark.parametrize(("value", "expected"), [
    (b"120", 120.0), (2.5, 2.5), (-1, 0.0), (True, None), (float("nan"), None), ("1e3", None), ("-5", None),
])
def test_non_text_values(value, expected) -> None:
    assert parse_retry_after(value, now=NOW) == expected
