"""Correlation, causation and tenant ids: read, validated, echoed, bound everywhere."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid

import pytest
from fastapi import BackgroundTasks, FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.concurrency import run_in_threadpool

from surefoot import context
from surefoot._core.settings import Settings
from surefoot.http import install_http
from surefoot.http._middleware import _fast_uuid4, _valid

from .conftest import client


def make_app(registry, **options):
    app = FastAPI()
    seen: dict[str, object] = {}

    @app.get("/ids")
    async def ids():
        return context.current()

    @app.get("/sync")
    def sync_ids():  # FastAPI runs it in the thread pool
        return {**context.current(), "thread": threading.current_thread().name}

    @app.get("/threadpool")
    async def threadpool():
        return await run_in_threadpool(context.current)

    @app.get("/to-thread")
    async def to_thread():
        return await asyncio.to_thread(context.current)

    @app.get("/spawn")
    async def spawn():
        task = asyncio.create_task(asyncio.sleep(0, result=None))
        await task

        async def child():
            return context.current()

        return await asyncio.create_task(child())

    @app.get("/background")
    async def background(tasks: BackgroundTasks):
        tasks.add_task(lambda: seen.setdefault("background", context.current()))
        return {}

    @app.get("/background-sync")
    async def background_sync(tasks: BackgroundTasks):
        def job():
            seen["background_sync"] = context.current()

        tasks.add_task(job)
        return {}

    install_http(app, registry=registry, **options)
    return app, seen


async def test_generates_and_echoes_an_id(registry, logs):
    app, _ = make_app(registry)
    async with client(app) as c:
        resp = await c.get("/ids")
    cid = resp.headers["x-correlation-id"]
    assert uuid.UUID(cid).version == 4
    assert resp.json() == {"correlation_id": cid}
    access = [e for e in logs if e["event"] == "http_request"]
    assert access and access[0]["correlation_id"] == cid


async def test_header_priority_and_validation(registry):
    app, _ = make_app(registry)
    async with client(app) as c:
        both = await c.get("/ids", headers={"X-Request-ID": "req-1", "X-Correlation-ID": "corr-1"})
        only_request = await c.get("/ids", headers={"X-Request-ID": "req-2"})
        bad_first = await c.get("/ids", headers={"X-Correlation-ID": "bad id!", "X-Request-ID": "req-3"})
        too_long = await c.get("/ids", headers={"X-Correlation-ID": "a" * 129})
    assert both.json()["correlation_id"] == "corr-1"
    assert both.headers["x-correlation-id"] == "corr-1"
    assert only_request.json()["correlation_id"] == "req-2"
    assert bad_first.json()["correlation_id"] == "req-3"
    generated = too_long.json()["correlation_id"]
    assert generated != "a" * 129 and uuid.UUID(generated)


async def test_configured_header_list(registry):
    app, _ = make_app(registry, settings=Settings(correlation_headers=["Traceparent-Id", "X-Amzn-Trace-Id"]))
    async with client(app) as c:
        resp = await c.get("/ids", headers={"X-Amzn-Trace-Id": "Root-1", "X-Correlation-ID": "ignored"})
    assert resp.json()["correlation_id"] == "Root-1"
    # echoed under the first configured header
    assert resp.headers["traceparent-id"] == "Root-1"


async def test_causation_and_tenant(registry):
    app, _ = make_app(registry)
    async with client(app) as c:
        resp = await c.get("/ids", headers={"X-Causation-ID": "evt-9", "X-Tenant-ID": "acme"})
    body = resp.json()
    assert body["causation_id"] == "evt-9"
    assert body["tenant_id"] == "acme"


async def test_tenant_resolver_and_failing_resolver(registry, logs):
    app, _ = make_app(registry, tenant_resolver=lambda scope: scope["path"].strip("/").upper())
    async with client(app) as c:
        assert (await c.get("/ids")).json()["tenant_id"] == "IDS"
        # the header wins over the hook
        assert (await c.get("/ids", headers={"X-Tenant-ID": "t1"})).json()["tenant_id"] == "t1"

    def broken(scope):
        raise RuntimeError("tenant lookup down")

    app2, _ = make_app(registry, tenant_resolver=broken)
    async with client(app2) as c:
        resp = await c.get("/ids")
    assert resp.status_code == 200 and "tenant_id" not in resp.json()
    assert any(e["event"] == "tenant_resolver_failed" for e in logs)


@pytest.mark.parametrize("path", ["/sync", "/threadpool", "/to-thread", "/spawn"])
async def test_ids_reach_threads_and_tasks(registry, path):
    app, _ = make_app(registry)
    async with client(app) as c:
        resp = await c.get(path, headers={"X-Correlation-ID": "abc-123", "X-Tenant-ID": "acme"})
    body = resp.json()
    assert body["correlation_id"] == "abc-123"
    assert body["tenant_id"] == "acme"


@pytest.mark.parametrize("path,key", [("/background", "background"), ("/background-sync", "background_sync")])
async def test_ids_reach_background_tasks(registry, path, key):
    app, seen = make_app(registry)
    async with client(app) as c:
        await c.get(path, headers={"X-Correlation-ID": "bg-1"})
    assert seen[key]["correlation_id"] == "bg-1"


async def test_ids_are_reset_after_the_request(registry):
    app, _ = make_app(registry)
    async with client(app) as c:
        await c.get("/ids", headers={"X-Correlation-ID": "leak-check"})
    assert context.correlation_id.get() is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=140))
def test_fast_validation_matches_context_valid_id(raw):
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        assert _valid(raw) is None
        return
    assert (_valid(raw) is not None) == context.valid_id(text)
    if _valid(raw) is not None:
        assert _valid(raw) == text


def test_generated_ids_are_uuid4():
    for _ in range(200):
        value = _fast_uuid4()
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and str(parsed) == value
        assert context.valid_id(value)


def test_generated_ids_are_unique_across_batches_and_forks():
    seen = {_fast_uuid4() for _ in range(1000)}
    assert len(seen) == 1000
    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, _fast_uuid4().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert uuid.UUID(child).version == 4
    assert child != _fast_uuid4()  # the child made its own ids, not the parent's next one


def test_a_batch_of_ids_is_the_random_bits_in_uuid4_form():
    # Each id is the next 128 bits of one random draw with the version and variant set, in
    # order: the batch is cut exactly, with no id shifted, merged or dropped.
    import random

    from surefoot.http import _middleware as mw

    state = random.getstate()
    try:
        mw._drop_ids()
        random.seed(20261205)
        made = [_fast_uuid4() for _ in range(mw._ID_BATCH)]
        random.seed(20261205)
        bits = random.getrandbits(128 * mw._ID_BATCH)
    finally:
        random.setstate(state)
        mw._drop_ids()
    mask = (1 << 128) - 1
    expected = []
    for i in range(mw._ID_BATCH):
        value = (bits >> (128 * (mw._ID_BATCH - 1 - i))) & mask
        value = (value & ~((0xF << 76) | (0x3 << 62))) | (0x4 << 76) | (0x2 << 62)
        expected.append(str(uuid.UUID(int=value)))
    # The first id is handed out at once; the rest are popped from the end of the batch.
    assert made == [expected[0], *expected[:0:-1]]


async def test_invalid_causation_and_tenant_values_are_ignored(registry):
    app, _ = make_app(registry, tenant_resolver=lambda scope: "from-resolver" if scope["path"] == "/ids" else None)
    async with client(app) as c:
        hostile = await c.get("/ids", headers=[
            ("X-Causation-ID", "evt 9; drop"), ("X-Tenant-ID", "t" * 129),
        ])
        non_ascii = await c.get("/ids", headers=[
            ("X-Causation-ID", "évt".encode()), ("X-Tenant-ID", "ténant".encode()),
            ("X-Correlation-ID", "çid".encode()),
        ])
    body = hostile.json()
    assert "causation_id" not in body
    assert body["tenant_id"] == "from-resolver"  # no valid header: the resolver decides
    body = non_ascii.json()
    assert "causation_id" not in body and body["tenant_id"] == "from-resolver"
    assert uuid.UUID(body["correlation_id"])  # generated, never the raw value
    assert non_ascii.headers["x-correlation-id"] == body["correlation_id"]


async def test_many_duplicate_correlation_headers_first_valid_wins(registry):
    app, _ = make_app(registry)
    headers = [("X-Request-ID", "req-early")]
    headers += [("X-Correlation-ID", "x" * 4096)] * 200  # long, invalid, repeated
    headers += [("X-Correlation-ID", "corr-good"), ("X-Correlation-ID", "corr-later")]
    async with client(app) as c:
        resp = await c.get("/ids", headers=headers)
    assert resp.json()["correlation_id"] == "corr-good"  # the first header in priority order
    assert resp.headers.get_list("x-correlation-id") == ["corr-good"]


async def test_duplicate_causation_and_tenant_headers_first_valid_wins(registry):
    app, _ = make_app(registry)
    async with client(app) as c:
        resp = await c.get("/ids", headers=[
            ("X-Causation-ID", "bad value"), ("X-Causation-ID", "evt-1"), ("X-Causation-ID", "bad again"),
            ("X-Tenant-ID", "acme"), ("X-Tenant-ID", "t" * 200), ("X-Tenant-ID", "globex"),
        ])
    body = resp.json()
    assert body["causation_id"] == "evt-1" and body["tenant_id"] == "acme"
