"""Idempotency-Key middleware on real SQLite and PostgreSQL, sync and async engines."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.requests import Request


def async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    return url


@dataclass
class App:
    client: Any
    clock: Any
    runs: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    next_status: dict[str, int] = field(default_factory=dict)


@pytest.fixture(params=["sync", "async"])
async def app(request: pytest.FixtureRequest, db_url: str, fake_clock: Any) -> AsyncIterator[App]:
    import httpx
    import sqlalchemy as sa
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from sqlalchemy.ext.asyncio import create_async_engine

    from surefoot.idempotency import IdempotencyMiddleware, create_tables

    sync_engine = sa.create_engine(db_url)
    with sync_engine.begin() as conn:
        create_tables(conn)
        conn.execute(sa.text("DELETE FROM idempotency_keys"))
    if request.param == "sync":
        engine = sync_engine
    else:
        sync_engine.dispose()
        engine = create_async_engine(async_url(db_url))

    api = FastAPI()
    state = App(client=None, clock=fake_clock)

    @api.post("/orders")
    async def create_order(request: Request) -> Any:
        payload = await request.json()
        state.runs.append(payload.get("item", ""))
        state.started.set()
        if state.gate is not None:
            await state.gate.wait()
        status = state.next_status.pop(payload.get("item", ""), 201)
        return JSONResponse(
            {"order": len(state.runs), "item": payload.get("item")},
            status_code=status,
            headers={"Location": f"/orders/{len(state.runs)}", "Set-Cookie": "s=1", "X-Other": "x"},
        )

    @api.patch("/orders/{oid}")
    async def patch_order(oid: int) -> Any:
        state.runs.append(f"patch-{oid}")
        return {"ok": True}

    @api.post("/free")
    async def free() -> Any:
        state.runs.append("free")
        return {"ok": True}

    api.add_middleware(
        IdempotencyMiddleware, engine=engine, paths=["/orders"], required=True, clock=fake_clock,
        lock_timeout=dt.timedelta(seconds=30),
    )
    transport = httpx.ASGITransport(app=api, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        state.client = client
        yield state
    if request.param == "sync":
        engine.dispose()
    else:
        await engine.dispose()


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_completed_request_is_replayed(app: App) -> None:
    headers = key()
    first = await app.client.post("/orders", json={"item": "a"}, headers=headers)
    assert first.status_code == 201 and first.json() == {"order": 1, "item": "a"}
    again = await app.client.post("/orders", json={"item": "a"}, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == "/orders/1" and again.headers["content-type"] == "application/json"
    assert "set-cookie" not in again.headers and "x-other" not in again.headers
    patch_key = key()
    for _ in range(2):
        assert (await app.client.patch("/orders/5", headers=patch_key)).status_code == 200
    assert app.runs == ["a", "patch-5"]


async def test_missing_key_where_required_is_400(app: App) -> None:
    r = await app.client.post("/orders", json={"item": "a"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    for bad in ("", "x" * 300):
        r = await app.client.post("/orders", json={"item": "a"}, headers={"Idempotency-Key": bad})
        assert r.status_code == 400
    # paths not configured, and other methods, pass through without a key
    assert (await app.client.post("/free")).status_code == 200
    assert app.runs == ["free"]


async def test_malformed_keys_are_400_invalid_and_never_run(app: App) -> None:
    for bad in ("", "   ", "x" * 256, "tab\there", "nbsp\xa0here".encode("latin-1")):
        r = await app.client.post("/orders", json={"item": "a"}, headers={"Idempotency-Key": bad})
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", bad
        assert r.json()["code"] == "IDEMPOTENCY_KEY_INVALID", bad
    longest = "k" * 255
    assert (await app.client.post("/orders", json={"item": "a"}, headers={"Idempotency-Key": longest})).status_code == 201
    replay = await app.client.post("/orders", json={"item": "a"}, headers={"Idempotency-Key": longest})
    assert replay.headers["idempotent-replayed"] == "true"
    assert app.runs == ["a"]


async def test_same_key_different_payload_is_422(app: App) -> None:
    headers = key()
    assert (await app.client.post("/orders", json={"item": "a"}, headers=headers)).status_code == 201
    r = await app.client.post("/orders", json={"item": "b"}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    r = await app.client.post("/orders?x=1", json={"item": "a"}, headers=headers)
    assert r.status_code == 422
    assert app.runs == ["a"]


async def test_two_concurrent_requests_with_the_same_key_one_runs_one_gets_409(app: App) -> None:
    app.gate = asyncio.Event()
    headers = key()
    tasks = [asyncio.create_task(app.client.post("/orders", json={"item": "c"}, headers=headers)) for _ in range(2)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    loser = done.pop().result()
    assert loser.status_code == 409, loser.text
    assert loser.json()["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS" and loser.headers["retry-after"] == "1"
    app.gate.set()
    winner = await pending.pop()
    assert winner.status_code == 201
    assert app.runs == ["c"]
    replay = await app.client.post("/orders", json={"item": "c"}, headers=headers)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"


async def test_many_concurrent_requests_with_one_key_run_once(app: App) -> None:
    for trial in range(10):
        headers = key()
        responses = await asyncio.gather(
            *(app.client.post("/orders", json={"item": f"m{trial}"}, headers=headers) for _ in range(6))
        )
        codes = sorted(r.status_code for r in responses)
        assert set(codes) <= {201, 409} and codes.count(201) >= 1, codes
        originals = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
        assert len(originals) == 1
    assert sorted(app.runs) == sorted(f"m{t}" for t in range(10))


async def test_keys_are_scoped_per_client(app: App) -> None:
    headers = key()
    a = await app.client.post("/orders", json={"item": "s"}, headers={**headers, "Authorization": "Bearer A"})
    b = await app.client.post("/orders", json={"item": "s"}, headers={**headers, "Authorization": "Bearer B"})
    assert a.status_code == b.status_code == 201 and "idempotent-replayed" not in b.headers
    assert app.runs == ["s", "s"]


async def test_client_errors_are_stored_and_server_errors_release_the_key(app: App) -> None:
    headers = key()
    app.next_status["e4"] = 409
    assert (await app.client.post("/orders", json={"item": "e4"}, headers=headers)).status_code == 409
    replay = await app.client.post("/orders", json={"item": "e4"}, headers=headers)
    assert replay.status_code == 409 and replay.headers["idempotent-replayed"] == "true"
    headers = key()
    app.next_status["e5"] = 503
    assert (await app.client.post("/orders", json={"item": "e5"}, headers=headers)).status_code == 503
    retry = await app.client.post("/orders", json={"item": "e5"}, headers=headers)
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert app.runs == ["e4", "e5", "e5"]


async def test_keys_expire_and_abandoned_originals_are_taken_over(app: App, db_url: str) -> None:
    import sqlalchemy as sa

    from surefoot.idempotency import purge_expired_keys

    headers = key()
    assert (await app.client.post("/orders", json={"item": "x"}, headers=headers)).status_code == 201
    app.clock.advance(dt.timedelta(hours=24, seconds=1).total_seconds())
    again = await app.client.post("/orders", json={"item": "x"}, headers=headers)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert app.runs == ["x", "x"]

    # A record left in progress by a dead process blocks only until lock_timeout.
    engine = sa.create_engine(db_url)
    stuck = str(uuid.uuid4())
    with engine.begin() as conn:
        from surefoot.idempotency._store import claim

        found = claim(
            conn, scope="ip:10.0.0.1", key=stuck, fingerprint="f" * 64, method="POST", path="/orders",
            now=dt.datetime.fromtimestamp(app.clock.time(), dt.UTC),
            lock_for=dt.timedelta(seconds=30), ttl=dt.timedelta(hours=24),
        )
        assert found.outcome == "new"
        conn.execute(sa.text("UPDATE idempotency_keys SET fingerprint = :f WHERE key = :k"), {"f": "0" * 64, "k": stuck})
    r = await app.client.post("/orders", json={"item": "y"}, headers={"Idempotency-Key": stuck})
    assert r.status_code in (409, 422)
    app.clock.advance(31)
    app.clock.advance(dt.timedelta(hours=24).total_seconds())
    assert purge_expired_keys(engine, batch_size=1, clock=app.clock) >= 2
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM idempotency_keys")).scalar_one() == 0
    engine.dispose()


async def test_a_dead_original_is_taken_over_after_lock_timeout_by_the_same_payload(app: App) -> None:
    """The original hangs (as if its process died): the same request gets 409 until
    ``lock_timeout`` (30 s here), then runs; another payload with that key is still refused."""
    hung = asyncio.Event()
    app.gate = hung
    headers = key()
    original = asyncio.create_task(app.client.post("/orders", json={"item": "t"}, headers=headers))
    await asyncio.wait_for(app.started.wait(), 10)
    app.gate = None
    early = await app.client.post("/orders", json={"item": "t"}, headers=headers)
    assert early.status_code == 409 and early.headers["retry-after"] == "1"
    app.clock.advance(29)
    assert (await app.client.post("/orders", json={"item": "t"}, headers=headers)).status_code == 409
    app.clock.advance(2)
    other = await app.client.post("/orders", json={"item": "other"}, headers=headers)
    assert other.status_code == 422
    taken_over = await app.client.post("/orders", json={"item": "t"}, headers=headers)
    assert taken_over.status_code == 201 and "idempotent-replayed" not in taken_over.headers
    replay = await app.client.post("/orders", json={"item": "t"}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == taken_over.json()
    assert app.runs == ["t", "t"]
    hung.set()
    await original


async def test_handler_exception_releases_the_key(db_url: str, fake_clock: Any) -> None:
    import httpx
    import sqlalchemy as sa
    from fastapi import FastAPI

    from surefoot.idempotency import IdempotencyMiddleware, create_tables

    engine = sa.create_engine(db_url)
    create_tables(engine)
    api = FastAPI()
    calls = []

    @api.post("/boom")
    async def boom() -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")
        return {"ok": True}

    api.add_middleware(IdempotencyMiddleware, engine=engine, clock=fake_clock)
    transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        headers = key()
        assert (await client.post("/boom", headers=headers)).status_code == 500
        assert (await client.post("/boom", headers=headers)).status_code == 200
        replay = await client.post("/boom", headers=headers)
        assert replay.headers["idempotent-replayed"] == "true"
    assert len(calls) == 2
    engine.dispose()


async def test_server_errors_can_be_stored_like_stripe(db_url: str, fake_clock: Any) -> None:
    import httpx
    import sqlalchemy as sa
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from surefoot.idempotency import IdempotencyMiddleware, create_tables

    engine = sa.create_engine(db_url)
    create_tables(engine)
    api = FastAPI()
    calls = []

    @api.post("/unavailable")
    async def unavailable() -> Any:
        calls.append(1)
        return JSONResponse({"n": len(calls)}, status_code=503)

    api.add_middleware(IdempotencyMiddleware, engine=engine, clock=fake_clock, store_server_errors=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api") as client:
        headers = key()
        first = await client.post("/unavailable", headers=headers)
        second = await client.post("/unavailable", headers=headers)
    assert first.status_code == second.status_code == 503 and second.json() == {"n": 1}
    assert second.headers["idempotent-replayed"] == "true" and calls == [1]
    engine.dispose()


def test_cli_creates_the_table_and_purges_only_expired_keys(db_url: str, subprocess_env: dict[str, str]) -> None:
    import subprocess
    import sys

    import sqlalchemy as sa

    from surefoot.idempotency import idempotency_keys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "surefoot", "idempotency", *args, "--url", db_url],
            env=subprocess_env, capture_output=True, text=True, timeout=60,
        )

    out = cli("migrate")
    assert out.returncode == 0 and "idempotency tables ready" in out.stdout, out.stderr
    engine = sa.create_engine(db_url)
    now = dt.datetime.now(dt.UTC)
    try:
        with engine.begin() as conn:
            conn.execute(idempotency_keys.delete())
            conn.execute(idempotency_keys.insert(), [
                {"scope": "ip:1", "key": f"k{i}", "fingerprint": "f" * 64, "method": "POST", "path": "/orders",
                 "status": "completed", "created_at": now - dt.timedelta(days=2), "locked_until": now,
                 "expires_at": now + dt.timedelta(hours=hours)}
                for i, hours in enumerate((-30, -1, 12))
            ])
        out = cli("purge", "--batch-size", "1", "--yes")
        assert out.returncode == 0, out.stderr
        assert "deleted 2 expired idempotency key(s)" in out.stdout
        with engine.connect() as conn:
            assert [r[0] for r in conn.execute(sa.select(idempotency_keys.c.key))] == ["k2"]
    finally:
        engine.dispose()
