"""A captured, validly signed delivery replayed with unsigned headers changed is still a duplicate.

Through a real FastAPI app on SQLite and PostgreSQL (sync and async engines): whatever an
attacker can change without breaking the signature — a fresh ``I-Twilio-Idempotency-Token``
or ``X-GitHub-Delivery``, extra headers, extra signature tokens for other schemes — the
handler runs once and one outbox event exists.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from surefoot.testing import (
    form_body,
    golden_github_push,
    golden_standard_event,
    golden_stripe_event,
    golden_twilio_voice_status,
    sign_github,
    sign_standard,
    sign_stripe,
    sign_twilio,
    sign_twilio_json,
)

from .conftest import (
    BASE,
    GITHUB_SECRET,
    STANDARD_SECRET,
    STRIPE_SECRET,
    TWILIO_TOKEN,
    Harness,
    rows,
)

REPLAYS = 6


def capture(provider: str, now: float) -> tuple[str, bytes, dict[str, str]]:
    ident = uuid.uuid4().hex[:12]
    path = f"/webhooks/{provider}"
    if provider == "twilio":
        params = golden_twilio_voice_status(CallSid=f"CA{ident}")
        return path, form_body(params), sign_twilio(BASE + path, params, TWILIO_TOKEN, idempotency_token=f"tok-{ident}")
    if provider == "twilio-json":
        url, body, headers = sign_twilio_json(BASE + "/webhooks/twilio", {"CallSid": f"CA{ident}"}, TWILIO_TOKEN)
        return url[len(BASE):], body, {**headers, "I-Twilio-Idempotency-Token": f"tok-{ident}"}
    if provider == "stripe":
        body = golden_stripe_event(event_id=f"evt_{ident}")
        return path, body, sign_stripe(body, STRIPE_SECRET, timestamp=now)
    if provider == "standard":
        body = golden_standard_event(id=ident)
        return path, body, sign_standard(body, STANDARD_SECRET, msg_id=f"msg_{ident}", timestamp=now)
    body = golden_github_push(ref=f"refs/heads/{ident}")
    return path, body, sign_github(body, GITHUB_SECRET, delivery_id=str(uuid.uuid4()))


def forge(provider: str, headers: dict[str, str], i: int) -> dict[str, str]:
    """Change everything outside the signature, differently on every replay."""
    out = {**headers, "User-Agent": f"replayer/{i}", "X-Request-ID": uuid.uuid4().hex, "X-Replay": str(i)}
    if provider.startswith("twilio"):
        out["I-Twilio-Idempotency-Token"] = uuid.uuid4().hex
        if provider == "twilio":
            out["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    if provider == "github":
        out["X-GitHub-Delivery"] = str(uuid.uuid4())
        out["X-GitHub-Event"] = "ping" if i % 2 else "push"
    if provider == "stripe":
        out["Stripe-Signature"] = headers["Stripe-Signature"] + f",v0=deadbeef{i},v1={'0' * 64}"
    if provider == "standard":
        out["webhook-signature"] = headers["webhook-signature"] + f" v1,{'A' * 43}= v1a,xyz{i}"
    return out


@pytest.mark.parametrize("provider", ["twilio", "twilio-json", "stripe", "standard", "github"])
async def test_replays_with_unsigned_headers_changed_are_duplicates(
    provider: str, harness: Harness, client: Any, inbox_url: str
) -> None:
    path, body, headers = capture(provider, harness.clock.time())
    first = await client.post(path, content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert len(harness.calls) == 1
    key = harness.calls[0]
    for i in range(REPLAYS):
        again = await client.post(path, content=body, headers=forge(provider, headers, i))
        assert again.status_code == 200, again.text
    assert harness.calls == [key], "a replay with a forged unsigned header ran the handler again"
    assert rows(inbox_url, "SELECT count(*) FROM webhook_events")[0][0] == 1
    assert rows(inbox_url, "SELECT count(*) FROM outbox_events")[0][0] == 1
    name = "twilio" if provider.startswith("twilio") else provider
    assert harness.registry.get_sample_value("webhook_dedupe_hits_total", {"provider": name}) == REPLAYS


async def test_two_gather_results_of_one_call_both_run(harness: Harness, client: Any, inbox_url: str) -> None:
    path = "/webhooks/twilio"
    sid = f"CA{uuid.uuid4().hex[:12]}"
    for digits in ("1", "2"):
        params = golden_twilio_voice_status(CallSid=sid, CallStatus="in-progress", Digits=digits)
        del params["SequenceNumber"]
        r = await client.post(path, content=form_body(params), headers=sign_twilio(BASE + path, params, TWILIO_TOKEN))
        assert r.status_code == 200, r.text
    assert len(set(harness.calls)) == 2
    assert rows(inbox_url, "SELECT count(*) FROM outbox_events")[0][0] == 2


async def test_a_replay_moving_form_characters_into_the_query_is_a_duplicate(
    harness: Harness, client: Any, inbox_url: str
) -> None:
    """URL + form is signed as one concatenated string: a replay can move the form's first
    characters into the query and still verify. It must not run the handler again."""
    path = "/webhooks/twilio?step=1"
    params = golden_twilio_voice_status(CallSid=f"CA{uuid.uuid4().hex[:12]}")
    headers = sign_twilio(BASE + path, params, TWILIO_TOKEN)
    assert (await client.post(path, content=form_body(params), headers=headers)).status_code == 200
    rest = "".join(name + value for name, value in sorted(params.items()))
    forged = await client.post(path + rest[:3], content=form_body([(rest[3:], "")]), headers=headers)
    assert forged.status_code == 200, forged.text
    assert len(harness.calls) == 1
    assert rows(inbox_url, "SELECT count(*) FROM outbox_events")[0][0] == 1
