from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

TWILIO_TOKEN = "twilio-token"
STRIPE_SECRET = "whsec_stripe_test_secret"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GITHUB_SECRET = "It's a Secret to Everybody"
BASE = "https://hooks.example.com"
OLD_STANDARD = "whsec_b2xkLXN0YW5kYXJkLXNlY3JldA=="
OLD_SECRETS = {"twilio": "old-token", "stripe": "whsec_old", "standard": OLD_STANDARD, "github": "old-github-secret"}


def async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    return url


def reset(url: str) -> None:
    import sqlalchemy as sa

    from surefoot import outbox, webhooks

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            outbox.create_tables(conn)
            webhooks.create_tables(conn)
            conn.execute(sa.text("DELETE FROM webhook_events"))
            conn.execute(sa.text("DELETE FROM outbox_events"))
    finally:
        engine.dispose()


@pytest.fixture
def inbox_url(db_url: str) -> Iterator[str]:
    """A sync URL with empty ``webhook_events`` and ``outbox_events`` (SQLite and PostgreSQL)."""
    reset(db_url)
    yield db_url


@dataclass
class Harness:
    app: Any
    engine: Any
    registry: Any
    clock: Any
    calls: list[str] = field(default_factory=list)
    mode: dict[str, Any] = field(default_factory=dict)


def build_app(engine: Any, registry: Any, clock: Any) -> Harness:
    """An app with one endpoint per provider; each handler writes one outbox event."""
    from fastapi import FastAPI
    from starlette.responses import Response

    from surefoot.webhooks import (
        GitHubVerifier,
        Ignore,
        StandardWebhooksVerifier,
        StripeVerifier,
        TwilioVerifier,
        WebhookInbox,
    )

    app = FastAPI()
    inbox = WebhookInbox(engine, registry=registry, clock=clock)
    h = Harness(app, engine, registry, clock)
    verifiers = {
        "twilio": TwilioVerifier(["old-token", TWILIO_TOKEN], base_url=BASE),
        "stripe": StripeVerifier(["whsec_old", STRIPE_SECRET], clock=clock),
        "standard": StandardWebhooksVerifier([OLD_STANDARD, STANDARD_SECRET], clock=clock),
        "github": GitHubVerifier([GITHUB_SECRET, "old-github-secret"]),
    }

    def decide(delivery: Any) -> Any:
        h.calls.append(delivery.dedupe_key)
        mode = h.mode.get(delivery.dedupe_key)
        if mode == "raise":
            raise RuntimeError("handler exploded")
        if mode == "ignore":
            raise Ignore("unknown number")
        if mode == "ignore-return":
            return Ignore("unknown tenant", response=Response("<Response/>", media_type="text/xml"))
        if mode == "twiml":
            return Response("<Response><Say>Hi</Say></Response>", media_type="text/xml", status_code=200)
        if mode == "accepted":
            return Response(status_code=202)
        return None

    for provider, verifier in verifiers.items():
        path = f"/webhooks/{provider}"
        if inbox.is_async:

            async def handler(delivery: Any, _provider: str = provider) -> Any:
                await delivery.add_event("WebhookReceived", {"provider": _provider, "key": delivery.dedupe_key})
                result = decide(delivery)
                if h.mode.get(delivery.dedupe_key) == "raise-after-write":
                    raise RuntimeError("after write")
                return result

        else:

            def handler(delivery: Any, _provider: str = provider) -> Any:  # type: ignore[misc]
                delivery.add_event("WebhookReceived", {"provider": _provider, "key": delivery.dedupe_key})
                result = decide(delivery)
                if h.mode.get(delivery.dedupe_key) == "raise-after-write":
                    raise RuntimeError("after write")
                return result

        handler.__name__ = f"on_{provider}"
        inbox.endpoint(app, path, verifier=verifier)(handler)
    return h


@pytest.fixture(params=["sync", "async"])
async def harness(request: pytest.FixtureRequest, inbox_url: str, registry: Any, fake_clock: Any) -> AsyncIterator[Harness]:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    if request.param == "sync":
        engine = sa.create_engine(inbox_url, pool_size=10, max_overflow=10)
    else:
        engine = create_async_engine(async_url(inbox_url), pool_size=10, max_overflow=10)
    try:
        yield build_app(engine, registry, fake_clock)
    finally:
        if request.param == "sync":
            engine.dispose()
        else:
            await engine.dispose()


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[Any]:
    import httpx

    transport = httpx.ASGITransport(app=harness.app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


def rows(url: str, sql: str, **params: Any) -> list[Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()
