"""hypothesis: arbitrary header values and bodies never make a webhook endpoint answer 500."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surefoot.testing import FakeClock, golden_stripe_event, sign_stripe

from .conftest import STRIPE_SECRET, build_app

HEADER_NAMES = [
    "X-Twilio-Signature",
    "I-Twilio-Idempotency-Token",
    "Stripe-Signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "X-Hub-Signature-256",
    "X-GitHub-Delivery",
    "Content-Type",
    "Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
]
# Header values as an HTTP client can send them: visible latin-1, spaces and tabs.
VALUES = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80)
INTERESTING = st.sampled_from(
    ["", "t=1,v1=", "v1,", "sha256=", "1700000000", "application/json", "application/x-www-form-urlencoded",
     "[", "[::1]:x", "a:b:c", "https", "99999999999999999999", "t=abc", " v1,AAAA", "0" * 64,
     "9" * 5000, "t=" + "9" * 5000 + ",v1=" + "0" * 64]
)


class SyncClient:
    """Drives the ASGI app from synchronous hypothesis tests on a private event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Any, harness: Any) -> None:
        self.loop, self.client, self.harness = loop, client, harness

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.loop.run_until_complete(self.client.post(path, **kwargs))


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import sqlalchemy as sa
    from prometheus_client import CollectorRegistry

    from surefoot import outbox, webhooks
    from surefoot.webhooks import TwilioVerifier

    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/fuzz.db"
    engine = sa.create_engine(url)
    outbox.create_tables(engine)
    webhooks.create_tables(engine)
    clock = FakeClock(1_700_000_000)
    harness = build_app(engine, CollectorRegistry(), clock)
    # One more Twilio endpoint that believes forwarded headers from the test client.
    from surefoot.webhooks import WebhookInbox

    WebhookInbox(engine, registry=harness.registry, clock=clock).endpoint(
        harness.app, "/webhooks/twilio-proxied", verifier=TwilioVerifier("t", trusted_proxies=["127.0.0.0/8"])
    )(lambda delivery: None)
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 40000)),
        base_url="https://hooks.example.com",
    )
    yield SyncClient(loop, client, harness)
    loop.run_until_complete(client.aclose())
    loop.close()
    engine.dispose()


PATHS = st.sampled_from(
    ["/webhooks/twilio", "/webhooks/stripe", "/webhooks/standard", "/webhooks/github", "/webhooks/twilio-proxied"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=PATHS,
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), st.one_of(VALUES, INTERESTING), max_size=8),
    body=st.one_of(st.binary(max_size=300), st.just(b"a=1&b=2"), st.just(b'{"id": 5}')),
)
def test_arbitrary_headers_and_bodies_never_cause_a_500(fuzz_client: Any, path: str, headers: dict[str, str], body: bytes) -> None:
    raw = {k: v.encode("latin-1") for k, v in headers.items()}
    response = fuzz_client.post(path, content=body, headers=raw)
    assert response.status_code < 500, response.text
    if response.status_code == 401:
        assert response.json()["reason"] in {"missing_header", "malformed", "stale", "future", "mismatch"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200), extra=st.one_of(VALUES, INTERESTING))
def test_validly_signed_arbitrary_bodies_never_cause_a_500(fuzz_client: Any, body: bytes, extra: str) -> None:
    """A correctly signed body that is not the JSON we expect is handled (hash dedupe key)."""
    now = fuzz_client.harness.clock.time()
    headers = sign_stripe(body, STRIPE_SECRET, timestamp=now)
    headers = {k: v.encode() for k, v in headers.items()}
    headers["X-GitHub-Delivery"] = extra.encode("latin-1")
    response = fuzz_client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 200, response.text
    golden = golden_stripe_event(event_id="evt_fuzz")
    assert fuzz_client.post("/webhooks/stripe", content=golden, headers=sign_stripe(golden, STRIPE_SECRET, timestamp=now)).status_code == 200


@pytest.mark.parametrize("digits", [13, 4301, 5000])
def test_an_overlong_stripe_timestamp_is_a_401_malformed(fuzz_client: Any, digits: int) -> None:
    body = golden_stripe_event(event_id="evt_overlong")
    v1 = sign_stripe(body, STRIPE_SECRET, timestamp=fuzz_client.harness.clock.time())["Stripe-Signature"].split(",", 1)[1]
    headers = {"Stripe-Signature": f"t={'9' * digits},{v1}", "Content-Type": "application/json"}
    response = fuzz_client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "malformed"


@pytest.mark.parametrize("header", ["webhook-timestamp", "svix-timestamp"])
def test_an_overlong_standard_timestamp_is_a_401_malformed(fuzz_client: Any, header: str) -> None:
    prefix = header.split("-")[0]
    headers = {f"{prefix}-id": "msg_1", header: "9" * 5000, f"{prefix}-signature": "v1,AAAA"}
    response = fuzz_client.post("/webhooks/standard", content=b"{}", headers=headers)
    assert response.status_code == 401 and response.json()["reason"] == "malformed"
