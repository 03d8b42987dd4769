"""Idempotency-Key: bounded request buffering and a scope the client cannot choose.

On real SQLite and PostgreSQL through FastAPI, with sync and async engines.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.requests import Request

MiB = 1024 * 1024


def async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    return url


@pytest.fixture(params=["sync", "async"])
async def make_app(request: pytest.FixtureRequest, db_url: str, fake_clock: Any) -> AsyncIterator[Callable[..., Any]]:
    """``make_app(**middleware_kwargs) -> (api, runs, client_for(address))``."""
    import sqlalchemy as sa
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import create_async_engine

    from surefoot.idempotency import IdempotencyMiddleware, create_tables

    sync_engine = sa.create_engine(db_url)
    with sync_engine.begin() as conn:
        create_tables(conn)
        conn.execute(sa.text("DELETE FROM idempotency_keys"))
    engine: Any = sync_engine
    if request.param == "async":
        sync_engine.dispose()
        engine = create_async_engine(async_url(db_url))
    clients: list[httpx.AsyncClient] = []

    def make(**kwargs: Any) -> tuple[Any, list[str], Callable[[str], httpx.AsyncClient]]:
        api = FastAPI()
        runs: list[str] = []

        @api.post("/transfers")
        async def transfer(req: Request) -> Any:
            body = await req.body()
            runs.append(f"{len(body)}:{req.headers.get('authorization', '-')}")
            return {"transfer": len(runs), "secret": f"receipt-{len(runs)}", "size": len(body)}

        api.add_middleware(IdempotencyMiddleware, engine=engine, clock=fake_clock, **kwargs)

        def client_for(address: str) -> httpx.AsyncClient:
            c = httpx.AsyncClient(transport=httpx.ASGITransport(app=api, client=(address, 5000)), base_url="http://api", timeout=60)
            clients.append(c)
            return c

        return api, runs, client_for

    yield make
    for c in clients:
        await c.aclose()
    if request.param == "sync":
        engine.dispose()
    else:
        await engine.dispose()


def keyed(**extra: str) -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4()), **extra}


def rows(db_url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM idempotency_keys")).scalar_one())
    finally:
        engine.dispose()


def assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:200]
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 413 and problem["code"] == "PAYLOAD_TOO_LARGE" and problem["instance"] == "/transfers"
    assert str(MiB) in problem["detail"]


# -- bounded buffering -------------------------------------------------------------------


async def test_a_300_mb_streamed_keyed_body_is_never_held(make_app: Any, db_url: str) -> None:
    _, runs, client_for = make_app()
    chunk = b"x" * MiB
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(300):
            pulled += len(chunk)
            if pulled > 16 * MiB:
                raise AssertionError("the middleware kept reading a body far past its limit")
            yield chunk

    response = await client_for("10.0.0.1").post("/transfers", content=body(), headers=keyed())
    assert_413(response)
    assert pulled <= 2 * MiB, f"{pulled} bytes were read for a 1 MiB limit"
    assert runs == [] and rows(db_url) == 0  # the key was never claimed


async def test_a_declared_300_mb_keyed_body_is_refused_before_reading(make_app: Any, db_url: str) -> None:
    api, runs, _ = make_app()
    received: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": len(received) < 100}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/transfers", "raw_path": b"/transfers", "query_string": b"", "root_path": "",
        "headers": [(b"idempotency-key", b"k-1"), (b"content-length", str(300 * MiB).encode()), (b"host", b"api")],
        "client": ("10.0.0.1", 1), "server": ("api", 80),
    }
    await api(scope, receive, send)
    assert sent[0]["status"] == 413 and received == []
    assert runs == [] and rows(db_url) == 0


async def test_bodies_up_to_the_limit_are_keyed_and_the_limit_is_configurable(make_app: Any) -> None:
    _, runs, client_for = make_app(max_body_bytes=2 * MiB)
    client = client_for("10.0.0.1")
    headers = keyed()
    big = b"y" * (2 * MiB)
    first = await client.post("/transfers", content=big, headers=headers)
    again = await client.post("/transfers", content=big, headers=headers)
    assert first.status_code == again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert len(runs) == 1
    over = await client.post("/transfers", content=big + b"z", headers=keyed())
    assert over.status_code == 413
    # Without a key nothing is buffered or limited by the middleware.
    assert (await client.post("/transfers", content=big + b"z")).status_code == 200


# -- scope -------------------------------------------------------------------------------


async def test_a_client_chosen_tenant_header_does_not_reach_another_clients_response(make_app: Any) -> None:
    _, runs, client_for = make_app()
    headers = keyed(**{"X-Tenant-ID": "acme"})
    victim = await client_for("203.0.113.7").post("/transfers", json={"amount": 5}, headers=headers)
    assert victim.status_code == 200
    # Another client, elsewhere, guesses or learns the key and claims the same tenant.
    attacker = await client_for("198.51.100.9").post("/transfers", json={"amount": 5}, headers=headers)
    assert "idempotent-replayed" not in attacker.headers
    assert attacker.json()["secret"] != victim.json()["secret"]
    assert len(runs) == 2


async def test_a_stored_response_is_only_returned_to_the_credential_that_created_it(make_app: Any) -> None:
    _, runs, client_for = make_app()
    client = client_for("10.0.0.1")  # one address: a shared proxy
    headers = keyed()
    mine = await client.post("/transfers", json={"a": 1}, headers={**headers, "Authorization": "Bearer alice"})
    theirs = await client.post("/transfers", json={"a": 1}, headers={**headers, "Authorization": "Bearer mallory"})
    assert "idempotent-replayed" not in theirs.headers and theirs.json()["secret"] != mine.json()["secret"]
    replay = await client.post("/transfers", json={"a": 1}, headers={**headers, "Authorization": "Bearer alice"})
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == mine.json()
    assert len(runs) == 2


async def test_a_trusted_gateway_header_narrows_the_scope(make_app: Any) -> None:
    _, runs, client_for = make_app(trusted_headers=["X-Tenant-ID"])
    client = client_for("10.0.0.1")
    headers = keyed(Authorization="Bearer service-account")
    a = await client.post("/transfers", json={"a": 1}, headers={**headers, "X-Tenant-ID": "t-1"})
    b = await client.post("/transfers", json={"a": 1}, headers={**headers, "X-Tenant-ID": "t-2"})
    again = await client.post("/transfers", json={"a": 1}, headers={**headers, "X-Tenant-ID": "t-1"})
    assert "idempotent-replayed" not in b.headers and again.headers["idempotent-replayed"] == "true"
    assert again.json() == a.json() and len(runs) == 2


async def test_a_custom_scope_function(make_app: Any) -> None:
    def by_user(scope: dict[str, Any]) -> str:
        return "user:" + dict(scope["headers"]).get(b"x-user", b"anon").decode()

    _, runs, client_for = make_app(scope=by_user)
    headers = keyed()
    await client_for("10.0.0.1").post("/transfers", json={}, headers={**headers, "X-User": "u1"})
    again = await client_for("10.9.9.9").post("/transfers", json={}, headers={**headers, "X-User": "u1"})
    other = await client_for("10.0.0.1").post("/transfers", json={}, headers={**headers, "X-User": "u2"})
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in other.headers
    assert len(runs) == 2


async def test_long_scopes_that_share_a_prefix_are_different_principals(make_app: Any, db_url: str) -> None:
    """A scope over 255 characters is stored as its SHA-256, never cut short."""
    org = "org:" + "o" * 300

    def by_org_user(scope: dict[str, Any]) -> str:
        return org + "/user:" + dict(scope["headers"]).get(b"x-user", b"anon").decode()

    _, runs, client_for = make_app(scope=by_org_user)
    client = client_for("10.0.0.1")
    headers = keyed()
    mine = await client.post("/transfers", json={"a": 1}, headers={**headers, "X-User": "alice"})
    theirs = await client.post("/transfers", json={"a": 1}, headers={**headers, "X-User": "mallory"})
    again = await client.post("/transfers", json={"a": 1}, headers={**headers, "X-User": "alice"})
    assert "idempotent-replayed" not in theirs.headers and theirs.json()["secret"] != mine.json()["secret"]
    assert again.headers["idempotent-replayed"] == "true" and again.json() == mine.json()
    assert len(runs) == 2 and rows(db_url) == 2


async def test_a_scope_function_that_returns_no_principal_is_a_clear_error(make_app: Any) -> None:
    from surefoot.errors import ConfigurationError

    _, runs, client_for = make_app(scope=lambda s: None)
    with pytest.raises(ConfigurationError, match="scope function must return a non-empty string"):
        await client_for("10.0.0.1").post("/transfers", json={}, headers=keyed())
    assert runs == []


async def test_scope_from_an_authentication_middleware_running_before_it(make_app: Any) -> None:
    """The documented pattern: the user Starlette's AuthenticationMiddleware put in the scope;
    anonymous requests keep the default scope, so they never share one principal."""
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.middleware.authentication import AuthenticationMiddleware

    from surefoot.idempotency import default_client_key

    class SessionUser(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> Any:
            user = conn.headers.get("x-session-user")
            return (AuthCredentials(["authenticated"]), SimpleUser(user)) if user else None

    def by_user(s: dict[str, Any]) -> str:
        return "user:" + s["user"].identity if s["user"].is_authenticated else default_client_key(s)

    api, runs, client_for = make_app(scope=by_user)
    api.add_middleware(AuthenticationMiddleware, backend=SessionUser())  # added last: runs first
    headers = keyed()
    ada = await client_for("10.0.0.1").post("/transfers", json={"a": 1}, headers={**headers, "X-Session-User": "ada"})
    ada_elsewhere = await client_for("10.7.7.7").post("/transfers", json={"a": 1}, headers={**headers, "X-Session-User": "ada"})
    bob = await client_for("10.0.0.1").post("/transfers", json={"a": 1}, headers={**headers, "X-Session-User": "bob"})
    assert ada_elsewhere.headers["idempotent-replayed"] == "true" and ada_elsewhere.json() == ada.json()
    assert "idempotent-replayed" not in bob.headers and bob.json()["secret"] != ada.json()["secret"]
    anon_a = await client_for("10.0.0.2").post("/transfers", json={"a": 1}, headers=headers)
    anon_b = await client_for("10.0.0.3").post("/transfers", json={"a": 1}, headers=headers)
    assert "idempotent-replayed" not in anon_a.headers and "idempotent-replayed" not in anon_b.headers
    assert len(runs) == 4
