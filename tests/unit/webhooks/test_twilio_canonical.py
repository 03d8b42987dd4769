"""Twilio's canonical form, checked against Twilio's published vectors and an independent model.

The vectors are the ones in twilio-python's ``tests/unit/test_request_validator.py``; the
model below is written from Twilio's documented algorithm, not from surefoot's signer, so the
verifier is checked against something it does not share code with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot.webhooks import SignatureError, TwilioVerifier

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def twilio_model(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    """Twilio's RequestValidator.compute_signature: for each distinct name in sorted order,
    each distinct value of that name in sorted order, appended as name + value."""
    data = url
    for name in sorted({n for n, _ in pairs}):
        for value in sorted({v for n, v in pairs if n == name}):
            data += name + value
    mac = hmac.new(token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


# -- published vectors, through the verifier ---------------------------------------------


def test_published_vector_single_values() -> None:
    TwilioVerifier(TOKEN).verify(urlencode(PARAMS).encode(), {**FORM, "X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}, url=URL)


def test_published_vector_repeated_identical_pair_counts_once() -> None:
    """twilio-python test_compute_signature_duplicate_{multi,query}_dict."""
    body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234"
    d = TwilioVerifier(TOKEN).verify(body, {**FORM, "X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="}, url=URL)
    assert d.form_items().count(("Digits", "1234")) == 2  # the handler still sees the body as sent


def test_published_vector_repeated_values_sorted() -> None:
    body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"
    TwilioVerifier(TOKEN).verify(body, {**FORM, "X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="}, url=URL)


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        (URL.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # port removed
        (URL.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        (URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # :443 added
        (URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # :80 added
    ],
)
def test_published_port_vectors(url: str, signature: str) -> None:
    TwilioVerifier(TOKEN).verify(urlencode(PARAMS).encode(), {**FORM, "X-Twilio-Signature": signature}, url=url)


def test_published_body_hash_vector() -> None:
    body = b'{"property": "value", "boolean": true}'
    url = URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="}
    TwilioVerifier(TOKEN).verify(body, headers, url=url)


def test_the_model_reproduces_the_published_vectors() -> None:
    assert twilio_model(TOKEN, URL, list(PARAMS.items())) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    dup = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert twilio_model(TOKEN, URL, dup) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


# -- the verifier agrees with the model on arbitrary forms ---------------------------------

NAMES = st.sampled_from(["Digits", "Sid", "SidAccount", "a", "b", "Body", "ÄÖ", "x y"])
VALUES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(NAMES, st.one_of(VALUES, st.sampled_from(["1234", "5678", ""]))), max_size=12))
def test_verifier_accepts_exactly_what_the_model_signs(pairs: list[tuple[str, str]]) -> None:
    body = urlencode(pairs).encode()
    v = TwilioVerifier(TOKEN)
    v.verify(body, {**FORM, "X-Twilio-Signature": twilio_model(TOKEN, URL, pairs)}, url=URL)
    # A signature over the pairs with one duplicated pair removed is the same signature...
    if len(set(pairs)) < len(pairs):
        v.verify(body, {**FORM, "X-Twilio-Signature": twilio_model(TOKEN, URL, list(set(pairs)))}, url=URL)
    # ...while any other content is refused.
    forged = twilio_model(TOKEN, URL, pairs + [("Injected", "1")])
    with pytest.raises(SignatureError):
        v.verify(body, {**FORM, "X-Twilio-Signature": forged}, url=URL)
