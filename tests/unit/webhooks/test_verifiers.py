"""Signature verifiers against the providers' published vectors and every failure reason."""

from __future__ import annotations

import hashlib
import json

import pytest

from surefoot._core.signing import (
    decode_standard_secret,
    github_signature,
    standard_signature,
    twilio_body_hash,
    twilio_signature,
)
from surefoot.errors import AuthenticationError, ConfigurationError
from surefoot.testing import (
    FakeClock,
    form_body,
    golden_github_push,
    golden_standard_event,
    golden_stripe_event,
    golden_twilio_inbound_sms,
    golden_twilio_voice_status,
    sign_github,
    sign_standard,
    sign_stripe,
    sign_twilio,
    sign_twilio_json,
)
from surefoot.webhooks import (
    GitHubVerifier,
    PublicURL,
    SignatureError,
    StandardWebhooksVerifier,
    StripeVerifier,
    TwilioVerifier,
    Verifier,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DOCS_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOCS_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}


def reason_of(excinfo: pytest.ExceptionInfo[SignatureError]) -> str:
    return excinfo.value.reason


# -- published vectors -------------------------------------------------------------------


def test_twilio_docs_vector() -> None:
    assert twilio_signature("12345", DOCS_URL, DOCS_PARAMS) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilio_python_library_vectors() -> None:
    # twilio-python tests/unit/test_request_validator.py
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309", "To": "+18005551212", "Caller": "+14158675309"}
    assert twilio_signature("12345", DOCS_URL, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    multi = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature("12345", DOCS_URL, multi) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    body = b'{"property": "value", "boolean": true}'
    assert twilio_body_hash(body) == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert twilio_signature("12345", DOCS_URL + "&bodySHA256=" + twilio_body_hash(body)) == "a9nBmqA0ju/hNViExpshrM61xv4="


def test_standard_webhooks_spec_vector() -> None:
    key = decode_standard_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    token = standard_signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert token == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_github_docs_vector() -> None:
    assert github_signature("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


# -- Twilio ------------------------------------------------------------------------------


def test_twilio_docs_vector_verifies_as_a_request() -> None:
    v = TwilioVerifier("12345")
    headers = {**FORM, "X-Twilio-Signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="}
    d = v.verify(form_body(DOCS_PARAMS), headers, url=DOCS_URL)
    assert d.provider == "twilio"
    assert d.form()["Digits"] == "1234"


@pytest.mark.parametrize(
    ("server_url", "signed_url", "expected"),
    [
        # twilio-python: a signature over the port-less URL accepted when the request has a port
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", DOCS_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        # ... and over the URL with the port when the server saw it
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", None, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        # default port added: https → 443, http → 80
        (DOCS_URL, None, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (DOCS_URL.replace("https", "http"), None, "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
)
def test_twilio_port_variants(server_url: str, signed_url: str | None, expected: str) -> None:
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309", "To": "+18005551212", "Caller": "+14158675309"}
    v = TwilioVerifier("12345")
    v.verify(form_body(params), {**FORM, "X-Twilio-Signature": expected}, url=server_url)


def test_twilio_multi_valued_params_sorted_by_value() -> None:
    pairs = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    v = TwilioVerifier("12345")
    v.verify(form_body(pairs), {**FORM, "X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="}, url=DOCS_URL)


def test_twilio_json_body_sha256() -> None:
    url, body, headers = sign_twilio_json("https://api.example.com/hook", {"CallSid": "CA1", "CallStatus": "ringing"}, "tok")
    v = TwilioVerifier("tok")
    d = v.verify(body, headers, url=url)
    assert d.json()["CallSid"] == "CA1"
    with pytest.raises(SignatureError) as e:
        v.verify(body.replace(b"CA1", b"CA2"), headers, url=url)
    assert reason_of(e) == "mismatch"
    with pytest.raises(SignatureError) as e:
        v.verify(body, headers, url=url.replace("bodySHA256=", "bodySHA256=zz"))
    assert reason_of(e) == "malformed"


def test_twilio_json_without_body_hash_is_refused() -> None:
    url = "https://api.example.com/hook"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": twilio_signature("tok", url)}
    with pytest.raises(SignatureError) as e:
        TwilioVerifier("tok").verify(b'{"a":1}', headers, url=url)
    assert reason_of(e) == "malformed"


def test_twilio_failures() -> None:
    url = "https://api.example.com/voice"
    params = golden_twilio_voice_status()
    body = form_body(params)
    headers = sign_twilio(url, params, "tok")
    v = TwilioVerifier("tok")
    v.verify(body, headers, url=url)
    with pytest.raises(SignatureError) as e:  # tampered body
        v.verify(body.replace(b"no-answer", b"completed"), headers, url=url)
    assert reason_of(e) == "mismatch"
    with pytest.raises(SignatureError) as e:  # wrong secret
        TwilioVerifier("other").verify(body, headers, url=url)
    assert reason_of(e) == "mismatch"
    with pytest.raises(SignatureError) as e:  # other URL
        v.verify(body, headers, url=url + "?x=1")
    assert reason_of(e) == "mismatch"
    with pytest.raises(SignatureError) as e:
        v.verify(body, FORM, url=url)
    assert reason_of(e) == "missing_header"
    for bad in ("not base64!", "", "AAAA"):
        with pytest.raises(SignatureError) as e:
            v.verify(body, {**FORM, "X-Twilio-Signature": bad}, url=url)
        assert reason_of(e) == "malformed"


def test_twilio_rotation() -> None:
    url = "https://api.example.com/voice"
    params = golden_twilio_inbound_sms()
    v = TwilioVerifier(["new", "old"])
    v.verify(form_body(params), sign_twilio(url, params, "old"), url=url)
    v.verify(form_body(params), sign_twilio(url, params, "new"), url=url)


def test_twilio_behind_tls_proxy_base_url() -> None:
    public = "https://api.example.com/hooks/voice?tenant=7"
    params = golden_twilio_voice_status()
    headers = sign_twilio(public, params, "tok")
    internal = "http://10.0.0.5:8000/hooks/voice?tenant=7"
    with pytest.raises(SignatureError):
        TwilioVerifier("tok").verify(form_body(params), headers, url=internal)
    TwilioVerifier("tok", base_url="https://api.example.com").verify(form_body(params), headers, url=internal)


def test_twilio_forwarded_headers_only_from_trusted_proxies() -> None:
    public = "https://api.example.com/hooks/voice"
    params = golden_twilio_voice_status()
    headers = {
        **sign_twilio(public, params, "tok"),
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "api.example.com",
        "X-Forwarded-Port": "443",
    }
    internal = "http://10.0.0.5:8000/hooks/voice"
    v = TwilioVerifier("tok", trusted_proxies=["10.0.0.0/8", "::1"])
    v.verify(form_body(params), headers, url=internal, client="10.1.2.3")
    with pytest.raises(SignatureError) as e:
        v.verify(form_body(params), headers, url=internal, client="203.0.113.9")
    assert reason_of(e) == "mismatch"
    # A non-default forwarded port is kept in the host.
    pu = PublicURL(trusted_proxies=["127.0.0.1"])
    h = {"x-forwarded-proto": "https", "x-forwarded-host": "a.example, b.internal", "x-forwarded-port": "8443"}
    assert pu.resolve("http://x/p?q=1", h, "127.0.0.1") == "https://a.example:8443/p?q=1"


def test_twilio_dedupe_keys_come_from_signed_content_only() -> None:
    url = "https://api.example.com/voice"
    v = TwilioVerifier("tok")
    params = golden_twilio_voice_status()
    with_token = v.verify(form_body(params), sign_twilio(url, params, "tok", idempotency_token="tk-1"), url=url)
    fresh_token = v.verify(form_body(params), sign_twilio(url, params, "tok", idempotency_token="tk-2"), url=url)
    no_token = v.verify(form_body(params), sign_twilio(url, params, "tok"), url=url)
    # I-Twilio-Idempotency-Token is not signed: a replay with a fresh one is the same delivery.
    assert with_token.dedupe_key == fresh_token.dedupe_key == no_token.dedupe_key
    assert with_token.dedupe_key.startswith("sha256:") and "tk-1" not in with_token.dedupe_key
    # The key is a hash of exactly the string Twilio signs: the URL, then the sorted parameters.
    signed = url + "".join(name + value for name, value in sorted(params.items()))
    assert no_token.dedupe_key == "sha256:" + hashlib.sha256(signed.encode()).hexdigest()
    # Parameter order, repeated identical pairs and the port variant sign the same: same key.
    shuffled = list(reversed(list(params.items()))) + [("CallSid", params["CallSid"])]
    d = v.verify(form_body(shuffled), sign_twilio(url, params, "tok"), url="https://api.example.com:443/voice")
    assert d.dedupe_key == no_token.dedupe_key
    # Another signed URL (query) or another value is another delivery.
    d = v.verify(form_body(params), sign_twilio(url + "?step=2", params, "tok"), url=url + "?step=2")
    assert d.dedupe_key != no_token.dedupe_key
    custom = TwilioVerifier("tok", dedupe_key=lambda d: d.form()["Foo"])
    other = {"Foo": "1"}
    assert custom.verify(form_body(other), sign_twilio(url, other, "tok"), url=url).dedupe_key == "1"


def test_a_replay_shifting_characters_between_url_and_form_has_the_same_key() -> None:
    """Twilio signs URL + name1 + value1 + ... concatenated, so characters can be moved from
    the form into the query without breaking the signature. The key follows the signed
    string, so such a forgery is a duplicate of the original, not a new delivery."""
    url = "https://api.example.com/voice?step=1"
    v = TwilioVerifier("tok")
    params = golden_twilio_voice_status()
    original = v.verify(form_body(params), sign_twilio(url, params, "tok"), url=url)
    rest = "".join(name + value for name, value in sorted(params.items()))
    forged_params = [(rest[3:], "")]
    forged = v.verify(form_body(forged_params), sign_twilio(url, params, "tok"), url=url + rest[:3])
    assert forged.form() != original.form()  # a different request the signature cannot tell apart
    assert forged.dedupe_key == original.dedupe_key


def test_two_gather_results_of_one_call_are_two_deliveries() -> None:
    """Two <Gather> actions of one call post CallSid + CallStatus=in-progress with different digits."""
    url = "https://api.example.com/voice/gather"
    v = TwilioVerifier("tok")
    first = golden_twilio_voice_status(CallStatus="in-progress", Digits="1")
    second = golden_twilio_voice_status(CallStatus="in-progress", Digits="2")
    for p in (first, second):
        del p["SequenceNumber"]
    k1 = v.verify(form_body(first), sign_twilio(url, first, "tok"), url=url).dedupe_key
    k2 = v.verify(form_body(second), sign_twilio(url, second, "tok"), url=url).dedupe_key
    assert k1 != k2


def test_twilio_json_dedupe_key_covers_the_body() -> None:
    v = TwilioVerifier("tok")
    keys = set()
    for body in (b'{"a": 1}', b'{"a": 2}'):
        url, raw, headers = sign_twilio_json("https://api.example.com/events", body, "tok")
        keys.add(v.verify(raw, {**headers, "I-Twilio-Idempotency-Token": body.decode()}, url=url).dedupe_key)
        again = v.verify(raw, {**headers, "I-Twilio-Idempotency-Token": "forged"}, url=url).dedupe_key
        assert again in keys
    assert len(keys) == 2


# -- Stripe ------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_764_000_000)


def test_stripe_valid_rotation_and_other_schemes(clock: FakeClock) -> None:
    body = golden_stripe_event()
    v = StripeVerifier(["whsec_new", "whsec_old"], clock=clock)
    d = v.verify(body, sign_stripe(body, "whsec_old", timestamp=clock.time()), url="")
    assert d.dedupe_key == "evt_1QaBcDeFgHiJkLmN"
    # Stripe sends one v1 per secret during its own rotation; a v0 is ignored.
    headers = sign_stripe(body, ["whsec_unknown", "whsec_new"], timestamp=clock.time(), extra_schemes={"v0": "abc"})
    v.verify(body, headers, url="")


def test_stripe_failures(clock: FakeClock) -> None:
    body = golden_stripe_event()
    v = StripeVerifier("whsec_test", clock=clock)
    good = sign_stripe(body, "whsec_test", timestamp=clock.time())
    cases = {
        "tampered": (body.replace(b"4900", b"1"), good, "mismatch"),
        "wrong secret": (body, sign_stripe(body, "whsec_other", timestamp=clock.time()), "mismatch"),
        "stale": (body, sign_stripe(body, "whsec_test", timestamp=clock.time() - 301), "stale"),
        "future": (body, sign_stripe(body, "whsec_test", timestamp=clock.time() + 301), "future"),
        "missing": (body, {}, "missing_header"),
        "no t": (body, {"Stripe-Signature": "v1=" + "0" * 64}, "malformed"),
        "text t": (body, {"Stripe-Signature": "t=abc,v1=" + "0" * 64}, "malformed"),
        "two t": (body, {"Stripe-Signature": good["Stripe-Signature"] + ",t=1"}, "malformed"),
        "only v0": (body, {"Stripe-Signature": f"t={int(clock.time())},v0=abc"}, "mismatch"),
    }
    for name, (b, h, reason) in cases.items():
        with pytest.raises(SignatureError) as e:
            v.verify(b, h, url="")
        assert reason_of(e) == reason, name
    # inside the window on both sides
    v.verify(body, sign_stripe(body, "whsec_test", timestamp=clock.time() - 299), url="")
    v.verify(body, sign_stripe(body, "whsec_test", timestamp=clock.time() + 299), url="")


def test_stripe_dedupe_key_is_the_signed_event_id_else_the_body_hash(clock: FakeClock) -> None:
    from surefoot.webhooks import body_hash_key

    v = StripeVerifier("whsec_test", clock=clock)
    for body in (b'{"object":"event","type":"ping"}', b'{"id":42}', b"not json at all", b"[1,2]"):
        d = v.verify(body, sign_stripe(body, "whsec_test", timestamp=clock.time()), url="")
        assert d.dedupe_key == body_hash_key(body) == "sha256:" + hashlib.sha256(body).hexdigest()
    body = golden_stripe_event(event_id="evt_9")
    assert v.verify(body, sign_stripe(body, "whsec_test", timestamp=clock.time()), url="").dedupe_key == "evt_9"


def test_custom_dedupe_keys_from_signed_content(clock: FakeClock) -> None:
    """The documented form: ``dedupe_key=lambda d: body_hash_key(d.body, d.url)``."""
    from surefoot.webhooks import body_hash_key

    body = golden_github_push()
    headers = sign_github(body, "s3cret")
    by_url = GitHubVerifier("s3cret", dedupe_key=lambda d: body_hash_key(d.body, d.url))
    one = by_url.verify(body, headers, url="https://h.example.com/hooks/a").dedupe_key
    other = by_url.verify(body, headers, url="https://h.example.com/hooks/b").dedupe_key
    assert one != other and one.startswith("sha256:") and len(one) == len("sha256:") + 64
    assert one == by_url.verify(body, {**headers, "X-GitHub-Delivery": "fresh"}, url="https://h.example.com/hooks/a").dedupe_key
    assert body_hash_key(body) == GitHubVerifier("s3cret").verify(body, headers, url="").dedupe_key
    stripe_body = golden_stripe_event(event_id="evt_1")
    stripe = StripeVerifier("whsec_t", clock=clock, dedupe_key=lambda d: "inv:" + d.json()["data"]["object"]["id"])
    key = stripe.verify(stripe_body, sign_stripe(stripe_body, "whsec_t", timestamp=clock.time()), url="").dedupe_key
    assert key == "inv:in_1QaBcDeFgHiJkLmN"
    standard = StandardWebhooksVerifier(SPEC_SECRET, clock=clock, dedupe_key=lambda d: d.json()["type"] + ":" + d.headers["webhook-id"])
    std_body = golden_standard_event()
    std_headers = sign_standard(std_body, SPEC_SECRET, msg_id="msg_1", timestamp=clock.time())
    assert standard.verify(std_body, std_headers, url="").dedupe_key == "invoice.paid:msg_1"
    long_key = StripeVerifier("whsec_t", clock=clock, dedupe_key=lambda d: "k" * 300)
    fitted = long_key.verify(stripe_body, sign_stripe(stripe_body, "whsec_t", timestamp=clock.time()), url="").dedupe_key
    assert fitted == "sha256:" + hashlib.sha256(b"k" * 300).hexdigest()


def test_stripe_key_is_the_whole_secret_string(clock: FakeClock) -> None:
    import hashlib
    import hmac

    body = b'{"id":"evt_1"}'
    ts = int(clock.time())
    sig = hmac.new(b"whsec_abc", f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    StripeVerifier("whsec_abc", clock=clock).verify(body, {"Stripe-Signature": f"t={ts},v1={sig}"}, url="")


# -- Standard Webhooks -------------------------------------------------------------------

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_standard_spec_vector_as_request() -> None:
    clock = FakeClock(1614265330)
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    for secret in (SPEC_SECRET, SPEC_SECRET.removeprefix("whsec_")):
        d = StandardWebhooksVerifier(secret, clock=clock).verify(body, headers, url="")
        assert d.dedupe_key == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    svix = {k.replace("webhook-", "svix-"): v for k, v in headers.items()}
    StandardWebhooksVerifier(SPEC_SECRET, clock=clock).verify(body, svix, url="")
    # a list with an unknown token and a foreign version first
    listed = dict(headers, **{"webhook-signature": "v1a,AAAA v1,bm90LXRoaXM= " + headers["webhook-signature"]})
    StandardWebhooksVerifier(SPEC_SECRET, clock=clock).verify(body, listed, url="")


def test_standard_secret_without_padding() -> None:
    import base64

    key = b"0123456789abcdefghij"  # 20 bytes → base64 needs padding
    secret = "whsec_" + base64.b64encode(key).decode().rstrip("=")
    clock = FakeClock(1_700_000_000)
    body = golden_standard_event()
    headers = sign_standard(body, "whsec_" + base64.b64encode(key).decode(), timestamp=clock.time())
    StandardWebhooksVerifier(secret, clock=clock).verify(body, headers, url="")


def test_standard_failures_and_rotation() -> None:
    clock = FakeClock(1_700_000_000)
    body = golden_standard_event()
    old, new = "whsec_" + "b2xkLXNlY3JldC1rZXk=", "whsec_" + "bmV3LXNlY3JldC1rZXk="
    v = StandardWebhooksVerifier([new, old], clock=clock)
    v.verify(body, sign_standard(body, old, timestamp=clock.time()), url="")
    v.verify(body, sign_standard(body, new, timestamp=clock.time(), prefix="svix"), url="")
    good = sign_standard(body, new, msg_id="msg_1", timestamp=clock.time())
    cases = {
        "tampered": (body + b" ", good, "mismatch"),
        "wrong secret": (body, sign_standard(body, "whsec_" + "d3Jvbmc=", timestamp=clock.time()), "mismatch"),
        "stale": (body, sign_standard(body, new, timestamp=clock.time() - 301), "stale"),
        "future": (body, sign_standard(body, new, timestamp=clock.time() + 301), "future"),
        "missing id": (body, {k: v for k, v in good.items() if k != "webhook-id"}, "missing_header"),
        "missing sig": (body, {k: v for k, v in good.items() if k != "webhook-signature"}, "missing_header"),
        "text ts": (body, dict(good, **{"webhook-timestamp": "soon"}), "malformed"),
        "float ts": (body, dict(good, **{"webhook-timestamp": "1700000000.5"}), "malformed"),
        "no v1": (body, dict(good, **{"webhook-signature": "v1a,abc v2,def"}), "mismatch"),
        "no version": (body, dict(good, **{"webhook-signature": "garbage"}), "malformed"),
        "empty": (body, dict(good, **{"webhook-signature": ""}), "malformed"),
        "changed id": (body, dict(good, **{"webhook-id": "msg_2"}), "mismatch"),
    }
    for name, (b, h, reason) in cases.items():
        with pytest.raises(SignatureError) as e:
            v.verify(b, h, url="")
        assert reason_of(e) == reason, name


def test_standard_bad_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        StandardWebhooksVerifier("whsec_***")


# -- GitHub ------------------------------------------------------------------------------


def test_github_valid_failures_rotation() -> None:
    body = golden_github_push()
    v = GitHubVerifier(["new", "old"])
    d = v.verify(body, sign_github(body, "old", delivery_id="d-1"), url="")
    assert d.dedupe_key == "sha256:" + hashlib.sha256(body).hexdigest()  # the signed body, not X-GitHub-Delivery
    assert d.json()["ref"] == "refs/heads/main"
    good = sign_github(body, "new")
    cases = {
        "tampered": (body[:-1] + b" ", good, "mismatch"),
        "wrong secret": (body, sign_github(body, "nope"), "mismatch"),
        "missing": (body, {"X-Hub-Signature": "sha1=abc"}, "missing_header"),
        "not sha256": (body, {"X-Hub-Signature-256": "sha1=" + "0" * 64}, "malformed"),
        "short": (body, {"X-Hub-Signature-256": "sha256=abc"}, "malformed"),
        "not hex": (body, {"X-Hub-Signature-256": "sha256=" + "z" * 64}, "malformed"),
    }
    for name, (b, h, reason) in cases.items():
        with pytest.raises(SignatureError) as e:
            v.verify(b, h, url="")
        assert reason_of(e) == reason, name


# -- common ------------------------------------------------------------------------------


def test_signature_error_problem_body_never_shows_the_expected_signature(clock: FakeClock) -> None:
    body = golden_stripe_event()
    v = StripeVerifier("whsec_test", clock=clock)
    from surefoot._core.signing import stripe_signature

    expected = stripe_signature("whsec_test", int(clock.time()), body)
    with pytest.raises(SignatureError) as e:
        v.verify(body, {"Stripe-Signature": f"t={int(clock.time())},v1={'0' * 64}"}, url="")
    problem = e.value.problem(instance="/hooks", correlation_id="c-1")
    assert isinstance(e.value, AuthenticationError)
    assert problem["status"] == 401 and problem["reason"] == "mismatch"
    assert problem["code"] == "WEBHOOK_SIGNATURE_INVALID" and problem["details"]["reason"] == "mismatch"
    assert expected not in json.dumps(problem)
    assert set(problem) >= {"type", "title", "status", "detail", "instance", "code", "correlation_id", "reason"}


def test_verifiers_satisfy_the_protocol() -> None:
    for v in (TwilioVerifier("t"), StripeVerifier("s"), StandardWebhooksVerifier(SPEC_SECRET), GitHubVerifier("g")):
        assert isinstance(v, Verifier)


def test_empty_secret_lists_are_refused() -> None:
    for make in (lambda: TwilioVerifier([]), lambda: StripeVerifier(""), lambda: GitHubVerifier([""])):
        with pytest.raises(ConfigurationError):
            make()


def test_public_url_variants() -> None:
    assert PublicURL("https://api.example.com/base").resolve("http://10.0.0.1:8000/hook?a=1", {}, None) == (
        "https://api.example.com/base/hook?a=1"
    )
    pu = PublicURL(trusted_proxies=["::1", "192.168.0.0/16"])
    h = {"x-forwarded-proto": "https", "x-forwarded-host": "api.example.com"}
    assert pu.resolve("http://internal/h", h, "::1") == "https://api.example.com/h"
    assert pu.resolve("http://internal/h", h, "192.168.4.4") == "https://api.example.com/h"
    assert pu.resolve("http://internal/h", h, "8.8.8.8") == "http://internal/h"
    assert pu.resolve("http://internal/h", h, "not-an-ip") == "http://internal/h"
    assert pu.resolve("http://internal/h", {**h, "x-forwarded-port": "443"}, "::1") == "https://api.example.com/h"
    with pytest.raises(ConfigurationError):
        PublicURL("api.example.com")
    with pytest.raises(ConfigurationError):
        PublicURL(trusted_proxies=["10.0.0.0/33"])


def test_twilio_get_webhook_signs_the_query_only() -> None:
    url = "https://api.example.com/voice?CallSid=CA1&CallStatus=ringing"
    headers = {"X-Twilio-Signature": twilio_signature("tok", url)}
    d = TwilioVerifier("tok").verify(b"", headers, url=url)
    assert d.form() == {}
    with pytest.raises(SignatureError):
        TwilioVerifier("tok").verify(b"", headers, url=url.replace("ringing", "completed"))


def test_twilio_unparsable_url_is_malformed_not_a_crash() -> None:
    with pytest.raises(SignatureError) as e:
        TwilioVerifier("tok").verify(b"", {"X-Twilio-Signature": twilio_signature("tok", "x")}, url="http://[::1/x")
    assert reason_of(e) == "malformed"
