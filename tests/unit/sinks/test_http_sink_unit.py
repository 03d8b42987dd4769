"""HttpSink pieces that need no server: Retry-After parsing, signature headers, status mapping."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from surefoot.outbox import Event, RetryLater, SinkDisabled, SinkError
from surefoot.outbox.sinks import HttpSink, parse_retry_after
from surefoot.testing import FakeClock

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Standard Webhooks spec's example secret
NOW = 1_445_412_000.0  # Wed, 21 Oct 2015 07:20:00 GMT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", None),
        ("soon", None),
        ("99999999999999999999999", 86_400.0),
        ("100000", 86_400.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 480.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 480.0),  # RFC 850, still allowed by RFC 9110
        ("Wed Oct 21 07:28:00 2015", 480.0),  # asctime
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),  # in the past: now
        ("Wed, 32 Oct 2015 07:28:00 GMT", None),
        ("٣", None),  # a non-ASCII digit is not delta-seconds
    ],
)
def test_parse_retry_after_examples(value, expected):
    assert parse_retry_after(value, now=NOW) == expected


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.none(), st.text(), st.from_regex(r"\s*[0-9]{1,40}(\.[0-9]{0,5})?\s*", fullmatch=True)),
       now=st.floats(allow_nan=True, allow_infinity=True),
       max_delay=st.floats(min_value=0, max_value=1e9))
def test_parse_retry_after_never_raises(value, now, max_delay):
    result = parse_retry_after(value, now=now, max_delay=max_delay)
    assert result is None or 0.0 <= result <= max_delay


@settings(max_examples=100, deadline=None)
@given(
    when=st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(9999, 1, 1)),
)
def test_parse_retry_after_reads_any_http_date(when):
    aware = when.replace(tzinfo=dt.UTC, microsecond=0)
    header = email.utils.format_datetime(aware, usegmt=True)
    result = parse_retry_after(header, now=NOW, max_delay=1e12)
    assert result == pytest.approx(max(0.0, aware.timestamp() - NOW))


def _independent_verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(token == f"v1,{expected}" for token in headers["webhook-signature"].split(" "))


def test_signature_matches_the_spec_example():
    # the Standard Webhooks reference vector: id, timestamp, body and expected signature
    sink = HttpSink("https://example.com/hook", secrets=SECRET)
    event = Event("E", {}, event_id="msg_p5jXN8AQM9LWM0D4loKWxJek")
    body = b'{"test": 2432232314}'
    headers = sink.signature_headers(event, body, 1614265330)
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@settings(max_examples=50, deadline=None)
@given(body=st.binary(max_size=200), event_id=st.text(min_size=1, max_size=40), timestamp=st.integers(0, 2**40))
def test_every_secret_signs_and_an_independent_verifier_accepts(body, event_id, timestamp):
    other = "whsec_" + base64.b64encode(b"another key of some length").decode()
    sink = HttpSink("https://example.com/hook", secrets=[SECRET, other])
    headers = sink.signature_headers(Event("E", {}, event_id=event_id), body, timestamp)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert _independent_verify(headers, body, SECRET)
    assert _independent_verify(headers, body, other)
    assert not _independent_verify(headers, body + b"x", SECRET)


@pytest.mark.parametrize("name", ["webhook-id", "Webhook-Signature", "CONTENT-TYPE", "x-correlation-id"])
def test_static_headers_cannot_override_what_the_sink_sets(name):
    from surefoot.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="may not set"):
        HttpSink("https://example.com/hook", secrets=SECRET, headers={name: "spoof"})


def test_forwarded_headers_are_limited():
    sink = HttpSink(
        "https://example.com/hook",
        secrets=SECRET,
        headers={"X-Api-Key": "k"},
        forward_headers=("traceparent",),
    )
    event = Event("E", {}, headers={"traceparent": "00-a-b-01", "x-internal-secret": "do not leak"})
    headers = sink.signature_headers(event, b"{}", 1)
    assert headers["webhook-id"] == event.event_id
    assert headers["traceparent"] == "00-a-b-01"
    assert headers["X-Api-Key"] == "k"
    assert "x-internal-secret" not in headers


def _sink_answering(status: int, headers: dict[str, str] | None = None, clock=None) -> tuple[HttpSink, list]:
    calls: list[httpx.Request] = []

    def respond(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, headers=headers or {}, text="nope" if status >= 400 else "")

    client = httpx.AsyncClient(transport=httpx.MockTransport(respond), follow_redirects=False)
    sink = HttpSink("https://example.com/hook", secrets=SECRET, client=client, clock=clock or FakeClock(), registry=CollectorRegistry())
    return sink, calls


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_any_2xx_is_delivered(status):
    sink, calls = _sink_answering(status)
    assert await sink.send_many([Event("E", {})]) == [None]
    assert len(calls) == 1 and calls[0].headers["content-type"] == "application/json"


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
async def test_any_3xx_is_a_failure(status):
    sink, _ = _sink_answering(status, {"location": "https://elsewhere.example/x?token=secret"})
    [result] = await sink.send_many([Event("E", {})])
    assert type(result) is SinkError and result.status_code == status
    assert "token=secret" not in str(result)  # query strings may carry credentials


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_throttling_statuses_retry_later(status):
    clock = FakeClock(start=NOW)
    sink, _ = _sink_answering(status, {"retry-after": "Wed, 21 Oct 2015 07:20:30 GMT"}, clock=clock)
    [result] = await sink.send_many([Event("E", {})])
    assert isinstance(result, RetryLater) and result.retry_after == 30.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 500, 501, 505])
async def test_other_errors_are_plain_sink_errors(status):
    sink, _ = _sink_answering(status)
    [result] = await sink.send_many([Event("E", {})])
    assert type(result) is SinkError and result.status_code == status and "nope" in str(result)


async def test_gone_disables_and_a_failing_hook_is_contained():
    def hook(record) -> None:
        raise RuntimeError("hook bug")

    sink, calls = _sink_answering(410)
    sink._on_disabled = hook
    [first] = await sink.send_many([Event("E", {})])
    [second] = await sink.send_many([Event("E", {})])
    assert isinstance(first, SinkDisabled) and isinstance(second, SinkDisabled)
    assert len(calls) == 1
    assert sink.disabled_endpoints["https://example.com/hook"].disabled_at == FakeClock().time()
