"""Handlers written the way users write them, on a running dispatcher (SQLite and PostgreSQL).

Each delivery runs in its own task with a copied context: httpx against a real HTTP server,
anyio cancel scopes, ``asyncio.timeout``, surefoot's Timeout/Policy and context variables all
behave as in any coroutine; a failing or misbehaving handler never takes a worker down.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time

import pytest
import sqlalchemy as sa
import structlog

from surefoot import outbox
from surefoot.errors import ConfigurationError
from surefoot.outbox import Dispatcher, OutboxSettings, events_table

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

FAST = dict(poll_interval_seconds=0.05, retention_interval_seconds=0, stats_interval_seconds=0.2,
            backoff_base_seconds=0.01, backoff_cap_seconds=0.05, cancel_grace_seconds=0.2,
            watchdog_interval_seconds=0.1)


def _settings(**kw) -> OutboxSettings:
    return OutboxSettings(**{**FAST, **kw})


def _add(engine, *specs):
    with engine.begin() as conn:
        return [outbox.add(conn, name, payload) for name, payload in specs]


def _rows(engine):
    with engine.connect() as conn:
        return {r["payload"].get("n", r["id"]): r for r in conn.execute(sa.select(events_table)).mappings()}


async def _until(predicate, timeout=20.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


@pytest.fixture
def http_server():
    """A real HTTP server on loopback that records the JSON bodies it receives."""
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            payload = b'{"sid": "SM1"}'
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def captured_logs():
    """Log lines as the running service would emit them, contextvars merged in."""
    from surefoot.testing import capture_logs

    structlog.contextvars.clear_contextvars()
    with capture_logs() as logs:
        yield logs
    structlog.contextvars.clear_contextvars()


async def test_handlers_using_httpx_anyio_asyncio_timeout_and_policy(engine, registry, http_server):
    import anyio
    import httpx

    from surefoot.resilience import Policy, Timeout

    url, received = http_server
    results: dict[str, object] = {}
    policy = Policy(name="provider", timeout=5.0)
    guard = Timeout(0.05, name="slow-step")

    async def send_sms(event):  # the reference flow: a provider call through httpx
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.post(f"{url}/sms", json={"to": event.payload["to"]})
            response.raise_for_status()
        results["sms"] = response.json()["sid"]

    async def with_anyio(event):
        with anyio.move_on_after(0.01) as scope:
            await anyio.sleep(5)
        results["anyio"] = scope.cancelled_caught

    async def with_asyncio_timeout(event):
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(5)
        except TimeoutError:
            results["asyncio_timeout"] = "fired"

    async def with_policy(event):
        async def call():
            async with httpx.AsyncClient() as client:
                return (await client.post(f"{url}/policy", json={"n": 1})).status_code

        results["policy"] = await policy.acall(call)
        try:
            async with guard.scope():
                await asyncio.sleep(5)
        except TimeoutError:
            results["timeout_scope"] = "fired"

    _add(engine, ("SendSms", {"to": "+15550001"}), ("Anyio", {}), ("AsyncioTimeout", {}), ("Policy", {}))
    d = Dispatcher(engine, registry=registry, settings=_settings(listen=False),
                   handlers={"SendSms": send_sms, "Anyio": with_anyio,
                             "AsyncioTimeout": with_asyncio_timeout, "Policy": with_policy})
    async with d.running():
        assert await _until(lambda: d.delivered == 4), (d.delivered, _rows(engine))
    assert results == {"sms": "SM1", "anyio": True, "asyncio_timeout": "fired", "policy": 201,
                       "timeout_scope": "fired"}
    assert {"to": "+15550001"} in received
    assert all(r["dispatched_at"] is not None and r["attempts"] == 1 for r in _rows(engine).values())


async def test_a_timeout_escaping_a_handler_fails_only_that_event_and_workers_live_on(engine, registry):
    delivered = []

    async def times_out(event):
        async with asyncio.timeout(0.01):
            await asyncio.sleep(5)  # TimeoutError escapes: a failed delivery, nothing more

    async def ok(event):
        delivered.append(event.payload["n"])

    async def cancels_itself(event):
        raise asyncio.CancelledError()  # e.g. a library that turns its own timeout into this

    _add(engine, ("TimesOut", {"n": 0}), ("CancelsItself", {"n": 9}))
    d = Dispatcher(engine, registry=registry, settings=_settings(listen=False, max_attempts=2, concurrency=1),
                   handlers={"TimesOut": times_out, "Ok": ok, "CancelsItself": cancels_itself})
    async with d.running():
        assert await _until(lambda: registry.get_sample_value(
            "outbox_dead_letters_total", {"event_name": "TimesOut"}) == 1)
        assert await _until(lambda: registry.get_sample_value(
            "outbox_dead_letters_total", {"event_name": "CancelsItself"}) == 1)
        _add(engine, *[("Ok", {"n": i}) for i in range(1, 4)])
        assert await _until(lambda: len(delivered) == 3), delivered
        assert all(not t.done() for t in d._workers.values())
    assert registry.get_sample_value("outbox_dispatcher_worker_restarts_total", {"reason": "died"}) is None


async def test_context_bound_by_a_handler_never_leaks(engine, registry, captured_logs):
    seen_later: list[dict] = []

    async def binds(event):
        structlog.contextvars.bind_contextvars(customer="acme")
        structlog.get_logger("app").info("handled")
        raise RuntimeError("fails so the dispatcher logs after it")

    def sync_binds(event):
        structlog.contextvars.bind_contextvars(customer="sync-acme")

    async def later(event):
        seen_later.append(dict(structlog.contextvars.get_contextvars()))

    _add(engine, ("Binds", {"n": 0}))
    d = Dispatcher(engine, registry=registry, settings=_settings(listen=False, concurrency=1, max_attempts=1),
                   handlers={"Binds": binds, "SyncBinds": sync_binds, "Later": later})
    async with d.running():
        assert await _until(lambda: registry.get_sample_value(
            "outbox_dead_letters_total", {"event_name": "Binds"}) == 1)
        _add(engine, ("SyncBinds", {"n": 1}))
        assert await _until(lambda: d.delivered == 1)
        _add(engine, ("Later", {"n": 2}))
        assert await _until(lambda: d.delivered == 2)
    handled = [e for e in captured_logs if e["event"] == "handled"]
    assert handled and handled[0]["customer"] == "acme" and handled[0]["event_name"] == "Binds"
    assert seen_later and "customer" not in seen_later[0]
    assert seen_later[0]["event_name"] == "Later"
    dispatcher_lines = [e for e in captured_logs if e["event"].startswith("outbox_")]
    assert any(e["event"] == "outbox_dead_lettered" for e in dispatcher_lines)
    assert all("customer" not in e for e in dispatcher_lines), dispatcher_lines
    assert "customer" not in structlog.contextvars.get_contextvars()


async def test_one_slow_handler_does_not_fail_its_batch_mates(engine, registry):
    async def maybe_slow(event):
        if event.payload["n"] == 1:
            await asyncio.sleep(3600)

    def sync_ok(event):
        return None

    _add(engine, ("A", {"n": 0}), ("A", {"n": 1}), ("A", {"n": 2}), ("S", {"n": 3}))
    d = Dispatcher(engine, registry=registry, settings=_settings(listen=False), handler_timeout=0.3,
                   handlers={"A": maybe_slow, "S": sync_ok})
    assert await d.drain(max_batches=1) == 4
    rows = _rows(engine)
    assert [n for n, r in rows.items() if r["dispatched_at"] is not None] == [0, 2, 3]
    assert rows[1]["dispatched_at"] is None and "handler_timeout" in rows[1]["last_error"]
    assert registry.get_sample_value("outbox_dispatch_failures_total", {"event_name": "A"}) == 1
    await d.aclose()


async def test_a_dying_worker_is_logged_counted_and_replaced(engine, registry, captured_logs):
    class FlakyBackoff:  # user code the worker calls: it fails once
        calls = 0

        def delay(self, attempts, rng):
            FlakyBackoff.calls += 1
            if FlakyBackoff.calls == 1:
                raise ZeroDivisionError("backoff bug")
            return 0.01

    delivered = []

    async def fails(event):
        raise ValueError("provider down")

    async def ok(event):
        delivered.append(event.payload["n"])

    _add(engine, ("Fails", {"n": 0}))
    d = Dispatcher(engine, registry=registry, backoff=FlakyBackoff(),
                   settings=_settings(listen=False, concurrency=1, max_attempts=3),
                   handlers={"Fails": fails, "Ok": ok})
    async with d.running():
        assert await _until(lambda: registry.get_sample_value(
            "outbox_dispatcher_worker_restarts_total", {"reason": "died"}) == 1)
        _add(engine, ("Ok", {"n": 1}))
        assert await _until(lambda: delivered == [1])
        assert await _until(lambda: registry.get_sample_value(
            "outbox_dead_letters_total", {"event_name": "Fails"}) == 1)
    died = [e for e in captured_logs if e["event"] == "outbox_worker_died"]
    assert len(died) == 1 and died[0]["level"] == "error"
    assert died[0]["error_type"] == "ZeroDivisionError" and "backoff bug" in died[0]["error_message"]
    # the dead worker's claim was given back (attempt undone), so the event used all 3 attempts
    with engine.connect() as conn:
        dead = conn.execute(sa.text("SELECT attempts FROM outbox_dead_letters")).scalar_one()
    assert dead == 3


async def test_stop_has_a_deadline_and_reports_what_it_abandoned(engine, registry):
    started, give_up = asyncio.Event(), asyncio.Event()

    async def stubborn(event):
        started.set()
        while not give_up.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue  # swallows cancellation

    async def polite(event):
        await asyncio.sleep(3600)

    events = _add(engine, ("Stubborn", {"n": 0}), ("Polite", {"n": 1}))
    d = Dispatcher(engine, registry=registry, settings=_settings(listen=False, concurrency=1),
                   handlers={"Stubborn": stubborn, "Polite": polite})
    await d.start()
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.1)
    began = time.monotonic()
    report = await asyncio.wait_for(d.stop(timeout=0.2), 15)
    try:
        assert time.monotonic() - began < 5
        rows = _rows(engine)
        stubborn_id = rows[0]["id"]
        assert report.abandoned_events == (stubborn_id,)
        assert report.abandoned_tasks == (f"surefoot-outbox-delivery-{stubborn_id}",)
        assert report.released == 1 and not report.clean
        # the polite one is back at once; the abandoned one stays leased until its lease ends
        assert rows[1]["claim_token"] is None and rows[1]["attempts"] == 0
        assert rows[0]["claim_token"] is not None and rows[0]["dispatched_at"] is None
        assert events[0].event_name == "Stubborn"
    finally:
        give_up.set()
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("threads", [2])
async def test_hung_sync_handlers_never_stop_other_deliveries(engine, registry, threads):
    release = threading.Event()
    delivered = []

    def hangs(event):
        release.wait(60)  # a sync client without a timeout, hanging

    def ok(event):
        delivered.append(event.payload["n"])

    # more hung handlers than the default thread pool has threads (min(32, cpus + 4))
    _add(engine, *[("Hangs", {"n": 100 + i}) for i in range(8)], *[("Ok", {"n": i}) for i in range(20)])
    d = Dispatcher(engine, registry=registry, handler_timeout=0.3,
                   settings=_settings(listen=False, max_attempts=2, handler_threads=threads, batch_size=5),
                   handlers={"Hangs": hangs, "Ok": ok})
    try:
        async with d.running():
            # every event delivered (at least once: on a loaded machine an Ok handler may pass
            # its 0.3 s timeout and be delivered again, which is the outbox's contract)
            assert await _until(lambda: set(delivered) == set(range(20)), timeout=30), sorted(delivered)
            assert await _until(lambda: registry.get_sample_value(
                "outbox_dead_letters_total", {"event_name": "Hangs"}) == 8, timeout=30)
    finally:
        release.set()
    assert registry.get_sample_value("outbox_dead_letters_total", {"event_name": "Ok"}) is None


async def test_heartbeat_metric_and_health_check(engine, registry):
    from surefoot.health import Health

    d = Dispatcher(engine, registry=registry, settings=_settings(listen=False), handlers={"A": lambda e: None})
    check = d.health_check()
    with pytest.raises(RuntimeError, match="not running"):
        await check()
    health = Health(registry=registry, cache_seconds=0)
    health.add("outbox", check)
    async with d.running():
        first = registry.get_sample_value("outbox_dispatcher_heartbeat_timestamp_seconds")
        assert first is not None and abs(first - time.time()) < 5
        await asyncio.sleep(0.35)
        assert registry.get_sample_value("outbox_dispatcher_heartbeat_timestamp_seconds") > first
        details = await check()
        assert details["workers"] == 2 and details["heartbeat_age_seconds"] < 1
        health.mark_ready()
        ready, body = await health.readiness()
        assert ready, body
    report = await health.run(use_cache=False)
    assert report.status == "unhealthy" and "not running" in report.components["outbox"].error
    for bad in ({"max_heartbeat_age": 0}, {"max_database_age": -1}, {"max_database_age": "26"}):
        with pytest.raises(ConfigurationError, match="positive number of seconds"):
            d.health_check(**bad)


async def test_watchdog_replaces_a_silent_worker(engine, registry, captured_logs):
    started = asyncio.Event()
    delivered = []

    async def slow(event):
        if not started.is_set():
            started.set()
            await asyncio.sleep(3600)  # only the first time: the watchdog cuts it
        delivered.append(event.payload["n"])

    async def ok(event):
        delivered.append(event.payload["n"])

    _add(engine, ("Slow", {"n": 0}))
    d = Dispatcher(engine, registry=registry, handler_timeout=60,
                   settings=_settings(listen=False, concurrency=1), handlers={"Slow": slow, "Ok": ok})
    d._stuck_after = lambda: 0.5  # a worker silent longer than its longest legitimate step
    async with d.running():
        await asyncio.wait_for(started.wait(), 10)
        assert await _until(lambda: registry.get_sample_value(
            "outbox_dispatcher_worker_restarts_total", {"reason": "stuck"}) is not None, timeout=10)
        d._stuck_after = lambda: 60.0
        _add(engine, ("Ok", {"n": 1}))
        assert await _until(lambda: sorted(delivered) == [0, 1])
    stuck = [e for e in captured_logs if e["event"] == "outbox_worker_stuck"]
    assert stuck and stuck[0]["level"] == "error"
    # the stuck worker's batch was released when it was cancelled (attempt undone), then redelivered
    assert _rows(engine)[0]["dispatched_at"] is not None and _rows(engine)[0]["attempts"] == 1


def test_readyz_follows_the_dispatchers_health_check(engine, tmp_path):
    import contextlib
    import io

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import surefoot
    from surefoot.health import Health
    from surefoot.logging import reset_logging

    got = []
    d = Dispatcher(engine, settings=_settings(listen=False), handlers={"A": lambda e: got.append(e.payload["n"])})
    health = Health(service="svc", version="1", cache_seconds=0)
    health.add("outbox", d.health_check())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with d.running():
            yield

    app = FastAPI(lifespan=lifespan)
    surefoot.install(app, health=health, log_options={"stream": io.StringIO(), "fmt": "json"})
    try:
        with TestClient(app) as client:
            _add(engine, ("A", {"n": 7}))
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.json()
            component = client.get("/health").json()["components"]["outbox"]
            assert component["status"] == "healthy" and component["details"]["workers"] == 2
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                time.sleep(0.02)
            assert got == [7]
            # the dispatcher stops (e.g. it was shut down on its own): readiness says so
            client.portal.call(d.stop)
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "outbox" in ready.json()["reason"]
    finally:
        reset_logging()


async def test_a_sink_whose_close_hangs_cannot_hold_stop(engine, registry):
    class StuckSink:
        name = "stuck"

        async def open(self):
            return None

        async def close(self):
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if released.is_set():
                        raise

        async def send_many(self, events):
            return [None] * len(events)

    released = asyncio.Event()
    d = Dispatcher(engine, registry=registry, settings=_settings(listen=False), sinks={"A": StuckSink()})
    await d.start()
    report = await asyncio.wait_for(d.stop(), 10)
    try:
        assert not report.clean and len(report.abandoned_tasks) == 1
    finally:
        released.set()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task() and "close" in repr(task.get_coro()):
                task.cancel()
        await asyncio.sleep(0.05)


async def test_a_delivery_ignoring_its_timeout_is_abandoned_logged_and_counted(engine, registry, captured_logs):
    give_up = asyncio.Event()

    async def stubborn(event):
        while not give_up.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue  # swallows the handler_timeout cancellation

    async def ok(event):
        return None

    _add(engine, ("Stubborn", {"n": 0}), ("Ok", {"n": 1}))
    d = Dispatcher(engine, registry=registry, settings=_settings(listen=False), handler_timeout=0.2,
                   handlers={"Stubborn": stubborn, "Ok": ok})
    try:
        assert await d.drain(max_batches=1) == 2
        assert registry.get_sample_value("outbox_deliveries_abandoned_total", {"reason": "handler_timeout"}) == 1
        [line] = [e for e in captured_logs if e["event"] == "outbox_delivery_abandoned"]
        assert line["level"] == "error" and line["reason"] == "handler_timeout"
        rows = _rows(engine)
        assert rows[1]["dispatched_at"] is not None  # its batch-mate was acknowledged
        # left leased (not retried while it may still be running), not dispatched
        assert rows[0]["dispatched_at"] is None and rows[0]["claim_token"] is not None
        assert await d.drain() == 0
    finally:
        give_up.set()
        await d.aclose()
