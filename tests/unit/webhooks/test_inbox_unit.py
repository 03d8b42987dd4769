"""Inbox pieces that need no server: redaction, custom verifiers, the CLI hook, lazy imports."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from surefoot.webhooks import SignatureError, VerifiedDelivery


def test_redact_headers_masks_signatures_and_credentials() -> None:
    from surefoot.webhooks import redact_headers

    out = redact_headers(
        {"X-Twilio-Signature": "s", "Stripe-Signature": "t=1,v1=x", "Authorization": "Bearer t", "Cookie": "c",
         "X-Custom-Secret": "k", "Content-Type": "application/json"},
        frozenset({"x-custom-secret"}),
    )
    assert out == {
        "x-twilio-signature": "[redacted]", "stripe-signature": "[redacted]", "authorization": "[redacted]",
        "cookie": "[redacted]", "x-custom-secret": "[redacted]", "content-type": "application/json",
    }


def test_causation_id_fits_the_outbox_column() -> None:
    from surefoot.webhooks._inbox import causation_id

    assert causation_id("stripe", "evt_1") == "stripe:evt_1"
    long = causation_id("twilio", "x" * 200)
    assert len(long) <= 128 and long.startswith("twilio:sha256:")


class HeaderTokenVerifier:
    """A custom provider: a shared token in a header and the id in the JSON body."""

    provider = "acme"

    def verify(self, body: bytes, headers: Mapping[str, str], *, url: str, client: str | None = None) -> VerifiedDelivery:
        import hmac

        given = {k.lower(): v for k, v in headers.items()}.get("x-acme-token")
        if given is None:
            raise SignatureError("X-Acme-Token is missing", reason="missing_header", provider=self.provider)
        if not hmac.compare_digest(given.encode(), b"s3cret"):
            raise SignatureError("X-Acme-Token is wrong", reason="mismatch", provider=self.provider)
        delivery = VerifiedDelivery(self.provider, "", body, dict(headers), url, "application/json")
        delivery.dedupe_key = str(delivery.json()["id"])
        return delivery


async def test_a_custom_verifier_plugs_into_the_inbox(tmp_path: Any, registry: Any) -> None:
    import httpx
    import sqlalchemy as sa
    from starlette.applications import Starlette

    from surefoot.webhooks import Verifier, WebhookInbox, create_tables

    assert isinstance(HeaderTokenVerifier(), Verifier)
    engine = sa.create_engine(f"sqlite:///{tmp_path}/acme.db")
    create_tables(engine)
    app = Starlette()  # a plain Starlette app works too (add_route)
    inbox = WebhookInbox(engine, registry=registry)
    seen = []

    @inbox.endpoint(app, "/acme", verifier=HeaderTokenVerifier())
    def on_acme(delivery: Any) -> None:
        seen.append(delivery.payload["id"])

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/acme", content=b'{"id": 7}', headers={"X-Acme-Token": "s3cret"})
        assert r.status_code == 200
        r = await c.post("/acme", content=b'{"id": 7}', headers={"X-Acme-Token": "s3cret"})
        assert r.status_code == 200
        r = await c.post("/acme", content=b'{"id": 8}', headers={"X-Acme-Token": "nope"})
        assert r.status_code == 401 and r.json()["reason"] == "mismatch"
    assert seen == [7]
    assert registry.get_sample_value("webhook_dedupe_hits_total", {"provider": "acme"}) == 1
    assert registry.get_sample_value("webhook_signature_failures_total", {"provider": "acme", "reason": "mismatch"}) == 1
    engine.dispose()


def test_cli_purges_old_deliveries(tmp_path: Any, subprocess_env: dict[str, str]) -> None:
    import sqlalchemy as sa

    from surefoot.webhooks import create_tables, webhook_events

    url = f"sqlite:///{tmp_path}/cli.db"
    engine = sa.create_engine(url)
    create_tables(engine)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        for i, age in enumerate((100, 91, 10)):
            conn.execute(webhook_events.insert().values(
                provider="github", dedupe_key=f"d{i}", received_at=now - dt.timedelta(days=age),
                headers={}, payload="{}", status="processed",
            ))
    out = subprocess.run(
        [sys.executable, "-m", "surefoot", "webhooks", "purge", "--url", url, "--batch-size", "1", "--yes"],
        env=subprocess_env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "deleted 2 webhook event(s) older than 90d" in out.stdout
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(sa.select(webhook_events.c.dedupe_key))] == ["d2"]
    engine.dispose()


def test_verifiers_import_without_sqlalchemy_or_fastapi(subprocess_env: dict[str, str]) -> None:
    code = (
        "import sys, surefoot, surefoot.webhooks, surefoot.idempotency;"
        "surefoot.webhooks.StripeVerifier('whsec_x');"
        "bad = [m for m in ('sqlalchemy', 'fastapi', 'starlette') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_retention_arguments_are_checked(tmp_path: Any) -> None:
    import sqlalchemy as sa

    from surefoot.errors import ConfigurationError
    from surefoot.webhooks import purge_webhook_events

    engine = sa.create_engine(f"sqlite:///{tmp_path}/r.db")
    with pytest.raises(ConfigurationError):
        purge_webhook_events(engine, older_than=dt.timedelta(0))
    with pytest.raises(ConfigurationError):
        purge_webhook_events(engine, batch_size=0)
    with pytest.raises(ConfigurationError, match="timedelta"):
        purge_webhook_events(engine, older_than=90)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="batch_size"):
        purge_webhook_events(engine, batch_size=10.5)  # type: ignore[arg-type]


async def test_purging_with_the_wrong_twin_says_which_one_to_use(tmp_path: Any) -> None:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from surefoot.errors import ConfigurationError
    from surefoot.webhooks import apurge_webhook_events, purge_webhook_events

    sync_engine = sa.create_engine(f"sqlite:///{tmp_path}/r.db")
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/r.db")
    try:
        with pytest.raises(ConfigurationError, match="apurge_webhook_events"):
            purge_webhook_events(async_engine)
        with pytest.raises(ConfigurationError, match="call purge_webhook_events"):
            await apurge_webhook_events(sync_engine)
    finally:
        sync_engine.dispose()
        await async_engine.dispose()


async def test_oversized_bodies_are_refused_before_verification(tmp_path: Any, registry: Any) -> None:
    import httpx
    import sqlalchemy as sa
    from fastapi import FastAPI

    from surefoot.webhooks import WebhookInbox, create_tables

    engine = sa.create_engine(f"sqlite:///{tmp_path}/big.db")
    create_tables(engine)
    app = FastAPI()
    inbox = WebhookInbox(engine, registry=registry, max_body_bytes=64)
    inbox.endpoint(app, "/acme", verifier=HeaderTokenVerifier())(lambda delivery: None)

    async def chunks():
        for _ in range(10):
            yield b"x" * 10

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/acme", content=b'{"id": 1}' + b" " * 100, headers={"X-Acme-Token": "s3cret"})
        assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
        r = await c.post("/acme", content=chunks(), headers={"X-Acme-Token": "s3cret"})  # no Content-Length
        assert r.status_code == 413
        assert (await c.post("/acme", content=b'{"id": 1}', headers={"X-Acme-Token": "s3cret"})).status_code == 200
    engine.dispose()


async def test_endpoints_on_an_api_router_and_a_starlette_router(tmp_path: Any, registry: Any) -> None:
    import httpx
    import sqlalchemy as sa
    from fastapi import APIRouter, FastAPI
    from starlette.routing import Mount, Router

    from surefoot.testing import golden_github_push, sign_github
    from surefoot.webhooks import GitHubVerifier, WebhookInbox, create_tables

    engine = sa.create_engine(f"sqlite:///{tmp_path}/routers.db")
    create_tables(engine)
    inbox = WebhookInbox(engine, registry=registry)
    seen: list[str] = []
    api_router, plain_router = APIRouter(prefix="/hooks"), Router()

    @inbox.endpoint(api_router, "/github", verifier=GitHubVerifier("s1"))
    def on_api(delivery: Any) -> None:
        seen.append("api:" + delivery.json()["ref"])

    @inbox.endpoint(plain_router, "/github", verifier=GitHubVerifier("s2", provider="github-legacy"))
    def on_plain(delivery: Any) -> None:
        seen.append("plain:" + delivery.json()["ref"])

    app = FastAPI()
    app.include_router(api_router)
    app.router.routes.append(Mount("/legacy", app=plain_router))
    body = golden_github_push(ref="refs/heads/r1")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            for _ in range(2):
                assert (await client.post("/hooks/github", content=body, headers=sign_github(body, "s1"))).status_code == 200
                assert (await client.post("/legacy/github", content=body, headers=sign_github(body, "s2"))).status_code == 200
            wrong = await client.post("/legacy/github", content=body, headers=sign_github(body, "s1"))
            assert wrong.status_code == 401 and wrong.json()["reason"] == "mismatch"
        assert seen == ["api:refs/heads/r1", "plain:refs/heads/r1"]
        assert registry.get_sample_value("webhook_dedupe_hits_total", {"provider": "github"}) == 1
        assert registry.get_sample_value("webhook_dedupe_hits_total", {"provider": "github-legacy"}) == 1
    finally:
        engine.dispose()
