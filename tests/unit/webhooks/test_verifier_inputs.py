"""Hostile header values and oversized bodies: every verifier answers 401/413, never crashes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot.errors import ConfigurationError
from surefoot.testing import (
    FakeClock,
    golden_stripe_event,
    sign_github,
    sign_standard,
    sign_stripe,
    sign_twilio,
)
from surefoot.webhooks import (
    GitHubVerifier,
    PayloadTooLargeError,
    SignatureError,
    StandardWebhooksVerifier,
    StripeVerifier,
    TwilioVerifier,
)

NOW = 1_764_000_000
STANDARD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def verifiers() -> list[object]:
    clock = FakeClock(NOW)
    return [
        TwilioVerifier("tok"),
        TwilioVerifier("tok", trusted_proxies=["127.0.0.0/8"]),
        StripeVerifier("whsec_x", clock=clock),
        StandardWebhooksVerifier(STANDARD, clock=clock),
        GitHubVerifier("s"),
    ]


@pytest.mark.parametrize("digits", [13, 40, 4300, 4301, 5000, 100_000])
def test_stripe_overlong_timestamp_is_malformed(digits: int) -> None:
    body = golden_stripe_event()
    v1 = sign_stripe(body, "whsec_x", timestamp=NOW)["Stripe-Signature"].split(",", 1)[1]
    header = f"t={'9' * digits},{v1}"
    with pytest.raises(SignatureError) as e:
        StripeVerifier("whsec_x", clock=FakeClock(NOW)).verify(body, {"Stripe-Signature": header}, url="")
    assert e.value.reason == "malformed"


@pytest.mark.parametrize("value", ["9" * 5000, "１７６４００００００", "-1", "+1", "1e9", "", " ", "0x10", "1_000"])
def test_garbage_numeric_timestamps_are_malformed_everywhere(value: str) -> None:
    body = golden_stripe_event()
    with pytest.raises(SignatureError) as e:
        StripeVerifier("whsec_x", clock=FakeClock(NOW)).verify(body, {"Stripe-Signature": f"t={value},v1=00"}, url="")
    assert e.value.reason == "malformed"
    headers = {**sign_standard(body, STANDARD, timestamp=NOW), "webhook-timestamp": value}
    with pytest.raises(SignatureError) as e:
        StandardWebhooksVerifier(STANDARD, clock=FakeClock(NOW)).verify(body, headers, url="")
    assert e.value.reason == "malformed"


# Header values as str: any code point a client could smuggle (latin-1 over HTTP, anything
# from a framework that decodes), long runs of digits, and near-valid shapes.
ANY_TEXT = st.text(max_size=200)
NEAR_VALID = st.sampled_from(
    ["t=", "t=1,v1=", "t=" + "1" * 5000 + ",v1=ab", "v1,", "v1," + "A" * 44, "sha256=", "sha256=" + "0" * 64,
     "9" * 5000, "-5", "application/json", "application/x-www-form-urlencoded", "[::1]:x", "https", "0" * 64,
     "t=1,t=2,v1=a", "v1a,xyz v1,abc", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="]
)
HEADERS = st.dictionaries(
    st.sampled_from([
        "X-Twilio-Signature", "I-Twilio-Idempotency-Token", "Stripe-Signature", "webhook-id", "webhook-timestamp",
        "webhook-signature", "svix-id", "svix-timestamp", "svix-signature", "X-Hub-Signature-256", "X-GitHub-Delivery",
        "Content-Type", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
    ]),
    st.one_of(ANY_TEXT, NEAR_VALID),
    max_size=8,
)
URLS = st.sampled_from(
    ["https://h.example/x", "http://h.example:99999/x", "https://h.example/x?bodySHA256=zz", "x", "http://[::1/x", ""]
)


@settings(max_examples=400, deadline=None)
@given(headers=HEADERS, body=st.one_of(st.binary(max_size=200), st.just(b"a=1&a=1&b=2")), url=URLS)
def test_no_header_value_makes_any_verifier_raise_anything_but_401_or_413(headers: dict[str, str], body: bytes, url: str) -> None:
    for verifier in verifiers():
        try:
            verifier.verify(body, headers, url=url, client="127.0.0.1")  # type: ignore[attr-defined]
        except SignatureError as exc:
            assert exc.reason in {"missing_header", "malformed", "stale", "future", "mismatch"}
            assert exc.status == 401
        except PayloadTooLargeError as exc:
            assert exc.status == 413


def test_body_and_parameter_limits_are_checked_before_verification() -> None:
    url = "https://h.example/voice"
    many = b"&".join(b"a=%d" % i for i in range(1001))
    with pytest.raises(PayloadTooLargeError):
        TwilioVerifier("tok").verify(many, {"X-Twilio-Signature": "A" * 27 + "="}, url=url)
    params = [("a", str(i)) for i in range(1001)]
    # With a raised limit the same (signed) form is verified.
    TwilioVerifier("tok", max_params=2000).verify(many, sign_twilio(url, params, "tok"), url=url)
    big = b"x" * (1024 * 1024 + 1)
    with pytest.raises(PayloadTooLargeError):
        TwilioVerifier("tok").verify(big, {"X-Twilio-Signature": "A" * 27 + "="}, url=url)
    with pytest.raises(PayloadTooLargeError):
        GitHubVerifier("s", max_body_bytes=10).verify(b"x" * 11, sign_github(b"x" * 11, "s"), url="")
    with pytest.raises(PayloadTooLargeError):
        StripeVerifier("whsec_x", max_body_bytes=10, clock=FakeClock(NOW)).verify(
            b"x" * 11, sign_stripe(b"x" * 11, "whsec_x", timestamp=NOW), url=""
        )
    with pytest.raises(PayloadTooLargeError):
        StandardWebhooksVerifier(STANDARD, max_body_bytes=10, clock=FakeClock(NOW)).verify(
            b"x" * 11, sign_standard(b"x" * 11, STANDARD, timestamp=NOW), url=""
        )
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigurationError, match="max_body_bytes"):
            GitHubVerifier("s", max_body_bytes=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="max_params"):
            TwilioVerifier("t", max_params=bad)  # type: ignore[arg-type]


def test_provider_default_limits() -> None:
    mib = 1024 * 1024
    assert TwilioVerifier("t").max_body_bytes == mib and TwilioVerifier("t").max_params == 1000
    assert StripeVerifier("whsec_x").max_body_bytes == 5 * mib
    assert StandardWebhooksVerifier(STANDARD).max_body_bytes == 5 * mib
    assert GitHubVerifier("s").max_body_bytes == 25 * mib
