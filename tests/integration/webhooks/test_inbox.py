"""The inbox on real SQLite and PostgreSQL, sync and async engines, through FastAPI."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
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
)
from surefoot.webhooks import twilio_dedupe_key

from .conftest import (
    BASE,
    GITHUB_SECRET,
    OLD_SECRETS,
    STANDARD_SECRET,
    STRIPE_SECRET,
    TWILIO_TOKEN,
    Harness,
    rows,
)

PROVIDERS = ("twilio", "stripe", "standard", "github")


def signed(provider: str, ident: str, now: float, *, secret: str | None = None) -> tuple[str, bytes, dict[str, str], str]:
    """(path, body, headers, expected dedupe key) of a valid delivery identified by ``ident``."""
    path = f"/webhooks/{provider}"
    if provider == "twilio":
        params = golden_twilio_voice_status(CallSid=f"CA{ident}")
        key = twilio_dedupe_key(BASE + path, list(params.items()))
        return path, form_body(params), sign_twilio(BASE + path, params, secret or TWILIO_TOKEN), key
    if provider == "stripe":
        body = golden_stripe_event(event_id=f"evt_{ident}")
        return path, body, sign_stripe(body, secret or STRIPE_SECRET, timestamp=now), f"evt_{ident}"
    if provider == "standard":
        body = golden_standard_event()
        return path, body, sign_standard(body, secret or STANDARD_SECRET, msg_id=f"msg_{ident}", timestamp=now), f"msg_{ident}"
    body = golden_github_push(ref=f"refs/heads/{ident}")
    return path, body, sign_github(body, secret or GITHUB_SECRET, delivery_id=ident), "sha256:" + hashlib.sha256(body).hexdigest()


def counts(url: str, key: str) -> tuple[int, int]:
    inbox = rows(url, "SELECT count(*) FROM webhook_events WHERE dedupe_key = :k", k=key)[0][0]
    events = rows(url, "SELECT count(*) FROM outbox_events WHERE causation_id LIKE :k", k=f"%:{key}")[0][0]
    return inbox, events


def metric(registry: Any, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_first_delivery_then_duplicates(provider: str, harness: Harness, client: Any, inbox_url: str) -> None:
    path, body, headers, key = signed(provider, uuid.uuid4().hex[:12], harness.clock.time())
    first = await client.post(path, content=body, headers=headers)
    assert first.status_code == 200, first.text
    for _ in range(2):
        again = await client.post(path, content=body, headers=headers)
        assert again.status_code == 200
    assert harness.calls == [key]
    assert counts(inbox_url, key) == (1, 1)
    (status, stored_headers, payload, attempts, response_status) = rows(
        inbox_url,
        "SELECT status, headers, payload, attempts, response_status FROM webhook_events WHERE dedupe_key = :k",
        k=key,
    )[0]
    assert status == "processed" and attempts == 1 and response_status == 200
    assert payload == body.decode()
    import json

    stored = json.loads(stored_headers) if isinstance(stored_headers, str) else stored_headers
    for name in ("x-twilio-signature", "stripe-signature", "webhook-signature", "x-hub-signature-256"):
        assert stored.get(name, "[redacted]") == "[redacted]"
    assert metric(harness.registry, "webhook_dedupe_hits_total", provider=provider) == 2
    assert metric(
        harness.registry, "webhook_handler_duration_seconds_count", provider=provider, endpoint=path, status="duplicate"
    ) == 2


async def test_replay_five_times_sequentially_and_concurrently_100_trials(
    harness: Harness, client: Any, inbox_url: str
) -> None:
    """ADR-0007: the same delivery 5× in a row and 5× at once → one inbox row, one outbox event."""
    keys = []
    for trial in range(100):
        provider = PROVIDERS[trial % 4]
        path, body, headers, key = signed(provider, f"seq{trial}-{uuid.uuid4().hex[:6]}", harness.clock.time())
        for _ in range(5):
            assert (await client.post(path, content=body, headers=headers)).status_code == 200
        keys.append(key)
        path, body, headers, key = signed(provider, f"par{trial}-{uuid.uuid4().hex[:6]}", harness.clock.time())
        responses = await asyncio.gather(*(client.post(path, content=body, headers=headers) for _ in range(5)))
        assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
        keys.append(key)
    assert sorted(harness.calls) == sorted(keys)  # each handler ran exactly once
    inbox = dict(rows(inbox_url, "SELECT dedupe_key, count(*) FROM webhook_events GROUP BY dedupe_key"))
    assert inbox == {k: 1 for k in keys}
    events = rows(inbox_url, "SELECT causation_id, count(*) FROM outbox_events GROUP BY causation_id")
    assert sorted(c.split(":", 1)[1] for c, n in events if n == 1) == sorted(keys)
    assert len(events) == 200


async def test_handler_failure_rolls_back_and_the_retry_is_processed(harness: Harness, client: Any, inbox_url: str) -> None:
    path, body, headers, key = signed("stripe", uuid.uuid4().hex[:12], harness.clock.time())
    harness.mode[key] = "raise-after-write"
    failed = await client.post(path, content=body, headers=headers)
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    problem = failed.json()
    assert problem["status"] == 500 and "handler exploded" not in failed.text and "Traceback" not in failed.text
    assert counts(inbox_url, key) == (1, 0)  # the outbox event was rolled back
    assert rows(inbox_url, "SELECT status, error FROM webhook_events WHERE dedupe_key = :k", k=key)[0][0] == "failed"
    del harness.mode[key]
    retried = await client.post(path, content=body, headers=headers)
    assert retried.status_code == 200
    assert counts(inbox_url, key) == (1, 1)
    status, attempts, error = rows(
        inbox_url, "SELECT status, attempts, error FROM webhook_events WHERE dedupe_key = :k", k=key
    )[0]
    assert (status, attempts, error) == ("processed", 2, None)
    assert (await client.post(path, content=body, headers=headers)).status_code == 200
    assert harness.calls == [key, key]


@pytest.mark.parametrize("mode", ["ignore", "ignore-return"])
async def test_unknown_tenant_is_a_200_no_op_with_a_warning(
    mode: str, harness: Harness, client: Any, inbox_url: str
) -> None:
    from structlog.testing import capture_logs

    path, body, headers, key = signed("twilio", uuid.uuid4().hex[:12], harness.clock.time())
    harness.mode[key] = mode
    with capture_logs() as logs:
        response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 200
    if mode == "ignore-return":
        assert response.text == "<Response/>"
    assert counts(inbox_url, key) == (1, 0)  # row kept as ignored; the handler's event rolled back
    assert rows(inbox_url, "SELECT status, error FROM webhook_events WHERE dedupe_key = :k", k=key)[0][0] == "ignored"
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert warnings and warnings[0]["event"] == "webhook_ignored"
    assert warnings[0]["provider"] == "twilio" and warnings[0]["event_id"] == key
    again = await client.post(path, content=body, headers=headers)
    assert again.status_code == 200 and harness.calls == [key]


async def test_handler_response_is_sent_and_duplicates_get_the_same_status(harness: Harness, client: Any) -> None:
    path, body, headers, key = signed("twilio", uuid.uuid4().hex[:12], harness.clock.time())
    harness.mode[key] = "twiml"
    r = await client.post(path, content=body, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml") and "<Say>" in r.text
    path, body, headers, key = signed("github", uuid.uuid4().hex[:12], harness.clock.time())
    harness.mode[key] = "accepted"
    assert (await client.post(path, content=body, headers=headers)).status_code == 202
    assert (await client.post(path, content=body, headers=headers)).status_code == 202


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rotated_secret_is_accepted(provider: str, harness: Harness, client: Any) -> None:
    path, body, headers, _ = signed(provider, uuid.uuid4().hex[:12], harness.clock.time(), secret=OLD_SECRETS[provider])
    assert (await client.post(path, content=body, headers=headers)).status_code == 200
    path, body, headers, _ = signed(provider, uuid.uuid4().hex[:12], harness.clock.time(), secret=None)
    assert (await client.post(path, content=body, headers=headers)).status_code == 200


def _failures(provider: str, now: float) -> dict[str, tuple[bytes, dict[str, str], str]]:
    path, body, headers, _ = signed(provider, uuid.uuid4().hex[:12], now)
    sig_header = {
        "twilio": "X-Twilio-Signature",
        "stripe": "Stripe-Signature",
        "standard": "webhook-signature",
        "github": "X-Hub-Signature-256",
    }[provider]
    tampered = body.replace(b"0", b"1", 1) if b"0" in body else body + b" "
    wrong = signed(provider, "x", now, secret={"twilio": "nope", "stripe": "whsec_nope", "standard": "whsec_bm9wZQ==", "github": "nope"}[provider])[2]
    wrong = {**headers, sig_header: wrong[sig_header]}
    cases = {
        "tampered": (tampered, headers, "mismatch"),
        "wrong secret": (body, wrong, "mismatch"),
        "missing": (body, {k: v for k, v in headers.items() if k != sig_header}, "missing_header"),
        "malformed": (body, {**headers, sig_header: "garbage"}, "malformed"),
    }
    if provider == "stripe":
        cases["stale"] = (body, sign_stripe(body, STRIPE_SECRET, timestamp=now - 400), "stale")
        cases["future"] = (body, sign_stripe(body, STRIPE_SECRET, timestamp=now + 400), "future")
    if provider == "standard":
        cases["stale"] = (body, sign_standard(body, STANDARD_SECRET, timestamp=now - 400), "stale")
        cases["future"] = (body, sign_standard(body, STANDARD_SECRET, timestamp=now + 400), "future")
        cases["text timestamp"] = (body, {**headers, "webhook-timestamp": "yesterday"}, "malformed")
    return cases


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_refused_deliveries_answer_401_with_the_reason(
    provider: str, harness: Harness, client: Any, inbox_url: str
) -> None:
    path = f"/webhooks/{provider}"
    for name, (body, headers, reason) in _failures(provider, harness.clock.time()).items():
        r = await client.post(path, content=body, headers={**headers, "X-Correlation-ID": "corr-1"})
        assert r.status_code == 401, (name, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["reason"] == reason, name
        assert problem["status"] == 401 and problem["instance"] == path and problem["code"] == "WEBHOOK_SIGNATURE_INVALID"
        assert {"type", "title", "detail", "correlation_id"} <= set(problem)
        assert metric(harness.registry, "webhook_signature_failures_total", provider=provider, reason=reason) >= 1
    assert harness.calls == []
    assert rows(inbox_url, "SELECT count(*) FROM webhook_events")[0][0] == 0


async def test_retention_deletes_old_rows_in_batches(harness: Harness, client: Any, inbox_url: str) -> None:
    from surefoot.webhooks import apurge_webhook_events, purge_webhook_events

    old_keys = []
    for i in range(7):
        path, body, headers, key = signed("github", f"old-{i}-{uuid.uuid4().hex[:6]}", harness.clock.time())
        assert (await client.post(path, content=body, headers=headers)).status_code == 200
        old_keys.append(key)
    harness.clock.advance(dt.timedelta(days=89).total_seconds())
    path, body, headers, fresh = signed("github", f"new-{uuid.uuid4().hex[:6]}", harness.clock.time())
    assert (await client.post(path, content=body, headers=headers)).status_code == 200
    harness.clock.advance(dt.timedelta(days=1, seconds=1).total_seconds())
    if harness.mode.get("_async") or hasattr(harness.engine, "sync_engine"):
        deleted = await apurge_webhook_events(harness.engine, batch_size=3, max_batches=2, clock=harness.clock)
        assert deleted == 6
        deleted += await apurge_webhook_events(harness.engine, batch_size=3, clock=harness.clock)
    else:
        deleted = purge_webhook_events(harness.engine, batch_size=3, max_batches=2, clock=harness.clock)
        assert deleted == 6
        deleted += purge_webhook_events(harness.engine, batch_size=3, clock=harness.clock)
    assert deleted == 7
    remaining = [r[0] for r in rows(inbox_url, "SELECT dedupe_key FROM webhook_events")]
    assert remaining == [fresh]


async def test_handler_can_parse_the_request_again() -> None:
    """Reading the raw body for verification does not break request.form()/json() or pydantic."""
    import httpx
    import pydantic
    import sqlalchemy as sa
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import create_async_engine

    from surefoot import webhooks
    from surefoot.webhooks import GitHubVerifier, TwilioVerifier, WebhookInbox

    engine = create_async_engine("sqlite+aiosqlite://", poolclass=sa.pool.StaticPool)
    await webhooks.acreate_tables(engine)
    app = FastAPI()
    inbox = WebhookInbox(engine)
    seen: dict[str, Any] = {}

    class Push(pydantic.BaseModel):
        ref: str

    @inbox.endpoint(app, "/twilio", verifier=TwilioVerifier(TWILIO_TOKEN))
    async def on_twilio(delivery: Any) -> None:
        form = await delivery.request.form()
        seen["form"] = dict(form)

    @inbox.endpoint(app, "/github", verifier=GitHubVerifier(GITHUB_SECRET))
    async def on_github(delivery: Any) -> None:
        seen["json"] = await delivery.request.json()
        seen["model"] = delivery.parse(Push)

    params = golden_twilio_voice_status()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        r = await c.post("/twilio", content=form_body(params), headers=sign_twilio("http://test/twilio", params, TWILIO_TOKEN))
        assert r.status_code == 200, r.text
        body = golden_github_push()
        r = await c.post("/github", content=body, headers=sign_github(body, GITHUB_SECRET))
        assert r.status_code == 200, r.text
    await engine.dispose()
    assert seen["form"]["CallStatus"] == "no-answer"
    assert seen["json"]["ref"] == "refs/heads/main"
    assert seen["model"] == Push(ref="refs/heads/main")


def test_handler_kind_must_match_the_engine(tmp_path: Any) -> None:
    import sqlalchemy as sa
    from fastapi import FastAPI

    from surefoot.errors import ConfigurationError
    from surefoot.webhooks import GitHubVerifier, WebhookInbox

    inbox = WebhookInbox(sa.create_engine(f"sqlite:///{tmp_path}/x.db"))

    async def handler(delivery: Any) -> None: ...

    with pytest.raises(ConfigurationError, match="plain 'def'"):
        inbox.endpoint(FastAPI(), "/x", verifier=GitHubVerifier("s"))(handler)


async def test_orm_sessions_join_the_delivery_transaction(inbox_url: str, registry: Any) -> None:
    import httpx
    import sqlalchemy as sa
    from fastapi import FastAPI
    from sqlalchemy.orm import DeclarativeBase, Session

    from surefoot.webhooks import GitHubVerifier, WebhookInbox

    class Base(DeclarativeBase):
        pass

    class Push(Base):
        __tablename__ = f"pushes_{uuid.uuid4().hex[:8]}"
        id = sa.Column(sa.Integer, primary_key=True)
        delivery = sa.Column(sa.String(64))

    engine = sa.create_engine(inbox_url)
    Base.metadata.create_all(engine)
    app = FastAPI()
    inbox = WebhookInbox(engine, registry=registry)

    @inbox.endpoint(app, "/gh", verifier=GitHubVerifier(GITHUB_SECRET))
    def on_push(delivery: Any) -> None:
        branch = delivery.json()["ref"].rsplit("/", 1)[1]
        with Session(bind=delivery.conn) as session:
            session.add(Push(delivery=branch))
            session.commit()  # joins the delivery's transaction: nothing is committed yet
        delivery.add_event("Pushed", {"delivery": delivery.dedupe_key})
        if branch.startswith("fail"):
            raise RuntimeError("after the ORM commit")

    ok, fail = golden_github_push(ref="refs/heads/ok-1"), golden_github_push(ref="refs/heads/fail-1")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.post("/gh", content=ok, headers=sign_github(ok, GITHUB_SECRET))).status_code == 200
            assert (await c.post("/gh", content=fail, headers=sign_github(fail, GITHUB_SECRET))).status_code == 500
        with engine.connect() as conn:
            assert [r[0] for r in conn.execute(sa.select(Push.delivery))] == ["ok-1"]
        ok_key, fail_key = ("sha256:" + hashlib.sha256(b).hexdigest() for b in (ok, fail))
        assert counts(inbox_url, ok_key) == (1, 1) and counts(inbox_url, fail_key) == (1, 0)
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


class _IdInBodyVerifier:
    """A custom provider signing the body with HMAC-SHA256 and keying deliveries on a body field."""

    provider = "acme"

    def verify(self, body: bytes, headers: Any, *, url: str, client: str | None = None) -> Any:
        import hmac

        from surefoot.webhooks import SignatureError, VerifiedDelivery

        given = {k.lower(): v for k, v in headers.items()}.get("x-acme-signature", "")
        if not hmac.compare_digest(given, hmac.new(b"acme-secret", body, hashlib.sha256).hexdigest()):
            raise SignatureError("X-Acme-Signature does not match", reason="mismatch", provider=self.provider)
        delivery = VerifiedDelivery(self.provider, "", body, dict(headers), url, "application/json")
        delivery.dedupe_key = str(delivery.json()["ref"])
        return delivery


def _acme(ref: str) -> tuple[bytes, dict[str, str]]:
    import hmac
    import json

    body = json.dumps({"ref": ref}).encode()
    return body, {"X-Acme-Signature": hmac.new(b"acme-secret", body, hashlib.sha256).hexdigest()}


async def test_a_custom_verifier_with_a_long_dedupe_key_still_dedupes(inbox_url: str, registry: Any) -> None:
    """Keys too long for the column (a whole URL, a long reference) are stored as their SHA-256."""
    import httpx
    import sqlalchemy as sa
    from fastapi import FastAPI

    from surefoot.webhooks import WebhookInbox

    engine = sa.create_engine(inbox_url)
    app = FastAPI()
    inbox = WebhookInbox(engine, registry=registry)
    runs: list[str] = []

    @inbox.endpoint(app, "/acme", verifier=_IdInBodyVerifier())
    def on_acme(delivery: Any) -> None:
        runs.append(delivery.json()["ref"][:5])

    long_ref = "order-" + "x" * 400
    body, headers = _acme(long_ref)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            first = await client.post("/acme", content=body, headers=headers)
            again = await client.post("/acme", content=body, headers=headers)
        assert first.status_code == 200 and again.status_code == 200
        assert runs == ["order"]
        [(key, status)] = rows(inbox_url, "SELECT dedupe_key, status FROM webhook_events")
        assert key == "sha256:" + hashlib.sha256(long_ref.encode()).hexdigest() and status == "processed"
        assert metric(registry, "webhook_dedupe_hits_total", provider="acme") == 1
    finally:
        engine.dispose()


async def test_a_verifier_without_a_dedupe_key_is_refused_not_deduplicated(inbox_url: str, registry: Any) -> None:
    """An empty key would turn every later delivery into a duplicate of the first one."""
    import httpx
    import sqlalchemy as sa
    from fastapi import FastAPI

    from surefoot.errors import ConfigurationError
    from surefoot.webhooks import WebhookInbox

    engine = sa.create_engine(inbox_url)
    app = FastAPI()
    inbox = WebhookInbox(engine, registry=registry)

    @inbox.endpoint(app, "/acme", verifier=_IdInBodyVerifier())
    def on_acme(delivery: Any) -> None:
        raise AssertionError("never runs")

    body, headers = _acme("")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            with pytest.raises(ConfigurationError, match="returned no dedupe key"):
                await client.post("/acme", content=body, headers=headers)
        assert rows(inbox_url, "SELECT count(*) FROM webhook_events")[0][0] == 0
    finally:
        engine.dispose()


async def test_handle_from_a_route_of_your_own(inbox_url: str, registry: Any) -> None:
    """``inbox.handle(request, ...)`` does what ``inbox.endpoint`` does, and checks the handler kind too."""
    import httpx
    import sqlalchemy as sa
    from fastapi import FastAPI

    from surefoot.errors import ConfigurationError
    from surefoot.webhooks import GitHubVerifier, WebhookInbox

    engine = sa.create_engine(inbox_url)
    app = FastAPI()
    inbox = WebhookInbox(engine, registry=registry)
    verifier = GitHubVerifier(GITHUB_SECRET)
    seen: list[str] = []

    def on_push(delivery: Any) -> None:
        seen.append(delivery.json()["ref"])
        delivery.add_event("Pushed", {"ref": delivery.json()["ref"]})

    async def on_push_async(delivery: Any) -> None: ...

    async def github(request: Any) -> Any:
        return await inbox.handle(request, verifier=verifier, handler=on_push, endpoint="/hooks/github")

    async def wrong_kind(request: Any) -> Any:
        return await inbox.handle(request, verifier=verifier, handler=on_push_async, endpoint="/hooks/wrong-kind")

    app.add_route("/hooks/github", github, methods=["POST"])
    app.add_route("/hooks/wrong-kind", wrong_kind, methods=["POST"])

    body = golden_github_push(ref="refs/heads/own-route")
    headers = sign_github(body, GITHUB_SECRET)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.post("/hooks/github", content=body, headers=headers)).status_code == 200
            assert (await client.post("/hooks/github", content=body, headers=headers)).status_code == 200
            forged = await client.post("/hooks/github", content=body, headers={**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64})
            assert forged.status_code == 401 and forged.json()["reason"] == "mismatch"
            with pytest.raises(ConfigurationError, match="plain 'def'"):
                await client.post("/hooks/wrong-kind", content=body, headers=headers)
        assert seen == ["refs/heads/own-route"]
        key = "sha256:" + hashlib.sha256(body).hexdigest()
        assert counts(inbox_url, key) == (1, 1)
        assert metric(registry, "webhook_dedupe_hits_total", provider="github") == 1
    finally:
        engine.dispose()


def test_a_provider_name_that_does_not_fit_is_refused(tmp_path: Any) -> None:
    import sqlalchemy as sa
    from fastapi import FastAPI

    from surefoot.errors import ConfigurationError
    from surefoot.webhooks import GitHubVerifier, WebhookInbox

    inbox = WebhookInbox(sa.create_engine(f"sqlite:///{tmp_path}/x.db"))
    for provider in ("", "p" * 65):
        with pytest.raises(ConfigurationError, match="provider must be a name of 1 to 64 characters"):
            inbox.endpoint(FastAPI(), "/x", verifier=GitHubVerifier("s", provider=provider))


async def test_a_handler_answering_with_something_else_than_a_response_is_a_recorded_failure(
    inbox_url: str, registry: Any
) -> None:
    """Only ``None``, a ``Response`` or ``Ignore(response=Response)``: anything else is rolled back,
    recorded as ``failed`` with a message saying what to return, and answered 500 (so it is retried)."""
    import httpx
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import create_async_engine

    from surefoot.webhooks import GitHubVerifier, Ignore, WebhookInbox

    from .conftest import async_url

    engine = create_async_engine(async_url(inbox_url))
    app = FastAPI()
    inbox = WebhookInbox(engine, registry=registry)

    @inbox.endpoint(app, "/gh", verifier=GitHubVerifier(GITHUB_SECRET))
    async def on_push(delivery: Any) -> Any:
        await delivery.add_event("Pushed", {})
        if delivery.json()["ref"].endswith("dict"):
            return {"ok": True}
        return Ignore("not ours", response="<Response/>")

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for ref in ("refs/heads/dict", "refs/heads/ignore-text"):
                body = golden_github_push(ref=ref)
                r = await client.post("/gh", content=body, headers=sign_github(body, GITHUB_SECRET))
                assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
                key = "sha256:" + hashlib.sha256(body).hexdigest()
                [(status, error)] = rows(inbox_url, "SELECT status, error FROM webhook_events WHERE dedupe_key = :k", k=key)
                assert status == "failed" and "must return None, a Response or Ignore" in error
                assert counts(inbox_url, key) == (1, 0)
    finally:
        await engine.dispose()
