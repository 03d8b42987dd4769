"""RED metrics: labels from the framework's routing, caps, 499, background time, websockets."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from fastapi import APIRouter, BackgroundTasks, FastAPI, WebSocket
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router

from surefoot import context
from surefoot._core.settings import Settings
from surefoot.http import SurefootMiddleware, install_http
from surefoot.http import _middleware as mw

from .conftest import client, count, samples


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/plain")
    async def plain():
        return {"ok": True}

    @app.get("/status/{code}")
    async def status(code: int):
        return Response(status_code=code)

    @app.get("/boom")
    async def boom():
        raise KeyError("x")

    inner = APIRouter(prefix="/inner")

    @inner.get("/things/{thing_id}")
    async def thing(thing_id: int):
        return {"id": thing_id}

    outer = APIRouter(prefix="/outer")
    outer.include_router(inner)
    app.include_router(outer, prefix="/api/v1")

    sub = FastAPI()

    @sub.get("/deep/{x}")
    async def deep(x: str):
        return x

    app.mount("/tenants/{tenant}", sub)
    return app


@pytest.mark.parametrize(
    "path,route,status",
    [
        ("/plain", "/plain", "200"),
        ("/status/201", "/status/{code}", "201"),
        ("/status/418", "/status/{code}", "418"),
        ("/status/503", "/status/{code}", "503"),
        ("/api/v1/outer/inner/things/7", "/api/v1/outer/inner/things/{thing_id}", "200"),
        ("/tenants/acme/deep/x", "/tenants/{tenant}/deep/{x}", "200"),
        ("/no/such/path", "", "404"),
        ("/tenants/acme/nothing-here", "", "404"),
    ],
)
async def test_route_template_and_exact_status(registry, path, route, status):
    app = fastapi_app()
    install_http(app, registry=registry)
    async with client(app) as c:
        await c.get(path)
    assert count(registry, http_route=route, http_response_status_code=status, http_request_method="GET") == 1
    assert count(registry) == 1


async def test_405_keeps_the_route(registry):
    app = fastapi_app()
    install_http(app, registry=registry)
    async with client(app) as c:
        resp = await c.post("/plain")
    assert resp.status_code == 405
    assert count(registry, http_route="/plain", http_response_status_code="405") == 1


async def test_error_type(registry):
    app = fastapi_app()
    install_http(app, registry=registry)
    async with client(app) as c:
        await c.get("/boom")
        await c.get("/status/503")
        await c.get("/status/404")
    assert count(registry, http_route="/boom", http_response_status_code="500", error_type="KeyError") == 1
    assert count(registry, http_route="/status/{code}", http_response_status_code="503", error_type="503") == 1
    assert count(registry, http_route="/status/{code}", http_response_status_code="404", error_type="") == 1


async def test_starlette_mounts_hosts_and_converters(registry):
    async def hello(request):
        return PlainTextResponse("hi")

    api = Router(routes=[Route("/users/{user_id:int}", hello)])
    app = Starlette(
        routes=[
            Route("/", hello),
            Mount("/api", routes=[Mount("/v2", app=api)]),
            Mount("/static", app=PlainTextResponse("file")),
            Host("admin.example.com", app=Router(routes=[Route("/panel", hello)])),
        ]
    )
    install_http(app, registry=registry)
    async with client(app) as c:
        await c.get("/")
        await c.get("/api/v2/users/42")
        await c.get("/static/css/site.css")
        await c.get("http://admin.example.com/panel")
    assert count(registry, http_route="/") == 1
    assert count(registry, http_route="/api/v2/users/{user_id}") == 1
    assert count(registry, http_route="/static/{path}") == 1
    assert count(registry, http_route="/panel") == 1


async def test_same_router_mounted_twice_is_disambiguated(registry):
    async def hello(request):
        return PlainTextResponse("hi")

    shared = [Route("/ping", hello)]
    app = Starlette(routes=[Mount("/a", routes=shared), Mount("/b/{id}", routes=shared)])
    install_http(app, registry=registry)
    async with client(app) as c:
        await c.get("/a/ping")
        await c.get("/b/7/ping")
        await c.get("/b/8/ping")
    assert count(registry, http_route="/a/ping") == 1
    assert count(registry, http_route="/b/{id}/ping") == 2


async def test_unknown_methods_and_schemes_are_folded(registry):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = SurefootMiddleware(app, registry=registry)
    async with client(wrapped) as c:
        await c.request("PURGE", "/x")
        await c.request("GET", "/x")
    assert count(registry, http_request_method="_OTHER") == 1
    assert count(registry, http_request_method="GET", http_route="") == 1


async def test_active_requests_gauge_goes_up_and_down(registry):
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def slow(request):
        entered.set()
        await gate.wait()
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/slow", slow)])
    install_http(app, registry=registry)
    async with client(app) as c:
        pending = asyncio.create_task(c.get("/slow"))
        await entered.wait()
        active = samples(registry, "http_server_active_requests")
        assert active[(("http_request_method", "GET"), ("url_scheme", "http"))] == 1
        gate.set()
        await pending
    active = samples(registry, "http_server_active_requests")
    assert active[(("http_request_method", "GET"), ("url_scheme", "http"))] == 0


async def test_cardinality_cap_folds_new_values_and_counts_overflow(registry):
    async def app(scope, receive, send):
        # A framework that puts raw paths in scope["route"] would explode cardinality.
        scope["route"] = type("R", (), {"path": scope["path"]})()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = SurefootMiddleware(app, registry=registry, max_label_values=3)
    async with client(wrapped) as c:
        for i in range(6):
            await c.get(f"/item/{i}")
        await c.get("/item/0")  # known value: still its own series
    routes = {dict(k)["http_route"] for k in samples(registry, "http_server_request_duration_seconds_count")}
    assert routes == {"/item/0", "/item/1", "/item/2", "_OTHER"}
    assert count(registry, http_route="_OTHER") == 3
    assert count(registry, http_route="/item/0") == 2
    overflow = samples(registry, "surefoot_metric_label_overflow_total")
    assert overflow[(("label", "http_route"), ("metric", "http_server_request_duration_seconds"))] == 3


async def test_client_disconnect_before_response_is_499(registry, logs):
    async def app(scope, receive, send):
        message = await receive()
        assert message["type"] == "http.disconnect"
        # gave up: the client is gone, nothing to send

    wrapped = SurefootMiddleware(app, registry=registry)
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/upload", "headers": [], "scheme": "http"}
    await wrapped(scope, receive, send)
    assert sent == []
    assert count(registry, http_response_status_code="499") == 1
    assert [e["status"] for e in logs if e["event"] == "http_request"] == [499]


async def test_cancelled_request_is_499_and_reraised(registry):
    started = asyncio.Event()

    async def app(scope, receive, send):
        started.set()
        await asyncio.Event().wait()

    wrapped = SurefootMiddleware(app, registry=registry)

    async def receive():
        await asyncio.Event().wait()

    async def send(message):
        raise AssertionError("nothing may be sent")

    task = asyncio.create_task(
        wrapped({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert count(registry, http_response_status_code="499", error_type="CancelledError") == 1


async def test_background_task_time_is_excluded(registry, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(mw, "_perf", lambda: now[0])
    app = FastAPI()

    @app.get("/work")
    async def work(tasks: BackgroundTasks):
        now[0] += 0.002  # the handler itself
        tasks.add_task(lambda: now.__setitem__(0, now[0] + 30.0))  # a long background job
        return {}

    install_http(app, registry=registry)
    async with client(app) as c:
        await c.get("/work")
    sums = samples(registry, "http_server_request_duration_seconds_sum")
    assert list(sums.values()) == [pytest.approx(0.002)]
    assert now[0] > 1030  # the background job did run


async def test_metrics_disabled_removes_all_metric_work(registry):
    app = fastapi_app()
    middleware = install_http(app, registry=registry, metrics_enabled=False)
    async with client(app) as c:
        resp = await c.get("/plain")
    assert resp.status_code == 200 and resp.headers["x-correlation-id"]
    assert type(middleware.meter) is mw._NoMeter
    assert list(registry.collect()) == []


async def test_metrics_disabled_by_settings(registry):
    app = fastapi_app()
    middleware = install_http(app, registry=registry, settings=Settings(metrics_enabled=False))
    assert type(middleware.meter) is mw._NoMeter


async def test_extra_buckets_are_added(registry):
    app = fastapi_app()
    install_http(app, registry=registry, extra_buckets=[0.3, 5.0])
    async with client(app) as c:
        await c.get("/plain")
    bounds = {dict(k)["le"] for k in samples(registry, "http_server_request_duration_seconds_bucket")}
    assert "0.3" in bounds and "5.0" in bounds and "0.005" in bounds


@pytest.mark.parametrize("bad", [{"max_label_values": 0}, {"extra_buckets": [-1]}, {"extra_buckets": ["x"]}])
def test_bad_options_fail_at_construction(registry, bad):
    from surefoot.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        SurefootMiddleware(lambda *a: None, registry=registry, **bad)


async def test_websocket_connections_are_counted(registry):
    from starlette.testclient import TestClient

    app = FastAPI()

    @app.websocket("/ws/{room}")
    async def ws(websocket: WebSocket, room: str):
        await websocket.accept()
        await websocket.send_text(room)
        await websocket.send_json(context.current())
        await websocket.close()

    install_http(app, registry=registry)
    with TestClient(app) as tc:
        for _ in range(2):
            with tc.websocket_connect("/ws/lobby", headers={"X-Correlation-ID": "ws-1"}) as conn:
                assert conn.receive_text() == "lobby"
                assert conn.receive_json() == {"correlation_id": "ws-1"}
    label = (("http_route", "/ws/{room}"),)
    assert samples(registry, "websocket_connections_total")[label] == 2
    assert samples(registry, "websocket_disconnections_total")[label] == 2
    assert samples(registry, "websocket_connections_active")[label] == 0


async def test_lifespan_passes_through(registry):
    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("start")
        yield
        events.append("stop")

    app = Starlette(routes=[], lifespan=lifespan)
    install_http(app, registry=registry)
    from starlette.testclient import TestClient

    with TestClient(app):
        pass
    assert events == ["start", "stop"]


async def test_two_apps_and_two_installs_in_one_process():
    shared = CollectorRegistry()
    first, second = fastapi_app(), fastapi_app()
    m1 = install_http(first, registry=shared)
    assert install_http(first, registry=shared) is m1
    install_http(second, registry=shared)
    install_http(fastapi_app())  # the process default registry, twice over
    install_http(fastapi_app())
    async with client(first) as c1, client(second) as c2:
        await c1.get("/plain")
        await c2.get("/plain")
    assert count(shared, http_route="/plain") == 2


async def test_fastapi_with_plain_starlette_routes_and_mounts(registry):
    from starlette.routing import Route as StarletteRoute

    async def asgi_endpoint(scope, receive, send):
        await PlainTextResponse("raw")(scope, receive, send)

    async def shared(request):
        return PlainTextResponse("shared")

    app = FastAPI()
    app.add_route("/raw", asgi_endpoint)
    app.add_route("/one/{x}", shared)
    app.add_route("/two", shared)
    app.router.routes.append(StarletteRoute("/three", shared))
    app.mount("/files", PlainTextResponse("file"))
    install_http(app, registry=registry)
    async with client(app) as c:
        for path in ("/raw", "/one/1", "/two", "/three", "/files/a/b.txt", "/nope"):
            await c.get(path)
    for route in ("/raw", "/one/{x}", "/two", "/three", "/files/{path}", ""):
        assert count(registry, http_route=route) == 1, route


@pytest.mark.parametrize("value", [0.0, 0.001, 0.005, 0.0050001, 0.3, 7.5, 10.0, 11.0, 1e9])
def test_fast_observe_matches_prometheus_client(value):
    from prometheus_client import Gauge, Histogram

    a, b = CollectorRegistry(), CollectorRegistry()
    ha = Histogram("h", "h", ["x"], registry=a, buckets=(0.005, 0.3, 7.5, 10.0))
    hb = Histogram("h", "h", ["x"], registry=b, buckets=(0.005, 0.3, 7.5, 10.0))
    ha.labels("1").observe(value)
    mw._observer(hb.labels("1"))(value)
    ga, gb = Gauge("g", "g", registry=a), Gauge("g", "g", registry=b)
    ga.inc()
    ga.inc()
    ga.dec()
    add = mw._adder(gb)
    add(1)
    add(1)
    add(-1)
    assert samples(a, "h_bucket") == samples(b, "h_bucket")
    assert samples(a, "h_sum") == samples(b, "h_sum")
    assert samples(a, "g") == samples(b, "g") == {(): 1.0}


async def test_pathsend_completes_the_response(registry, logs, tmp_path):
    from starlette.responses import FileResponse

    target = tmp_path / "report.txt"
    target.write_text("x" * 10)

    async def download(request):
        return FileResponse(target)

    app = Starlette(routes=[Route("/download", download)])
    install_http(app, registry=registry)
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message["type"])

    scope = {
        "type": "http", "method": "GET", "path": "/download", "raw_path": b"/download", "headers": [],
        "query_string": b"", "scheme": "http", "root_path": "", "server": ("t", 80),
        "extensions": {"http.response.pathsend": {}}, "asgi": {"version": "3.0"},
    }
    await app(scope, receive, send)
    assert sent == ["http.response.start", "http.response.pathsend"]
    assert count(registry, http_route="/download", http_response_status_code="200", error_type="") == 1
    assert [e["status"] for e in logs if e["event"] == "http_request"] == [200]


async def test_response_after_disconnect_is_499(registry, logs):
    async def app(scope, receive, send):
        assert (await receive())["type"] == "http.disconnect"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"too late"})

    wrapped = SurefootMiddleware(app, registry=registry)

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        pass

    await wrapped({"type": "http", "method": "GET", "path": "/late", "headers": []}, receive, send)
    assert count(registry, http_response_status_code="499") == 1


async def test_bare_middleware_renders_http_errors_without_stack_logs(registry, logs):
    from surefoot.errors import NotFoundError

    async def app(scope, receive, send):
        raise NotFoundError("no such order")

    async with client(SurefootMiddleware(app, registry=registry)) as c:
        resp = await c.get("/orders/9")
    assert resp.status_code == 404 and resp.json()["code"] == "NOT_FOUND"
    assert not [e for e in logs if e["event"] == "unhandled_exception"]


async def test_client_disconnect_exception_is_499_not_an_error(registry, logs):
    class ClientDisconnect(Exception):
        pass

    async def app(scope, receive, send):
        raise ClientDisconnect()

    wrapped = SurefootMiddleware(app, registry=registry)

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        raise AssertionError("nothing may be sent to a gone client")

    await wrapped({"type": "http", "method": "POST", "path": "/u", "headers": []}, receive, send)
    assert count(registry, http_response_status_code="499", error_type="") == 1
    assert not [e for e in logs if e["event"] == "unhandled_exception"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="abc/{}", min_size=1, max_size=6), min_size=1, max_size=30),
       st.integers(min_value=1, max_value=5))
def test_label_values_never_exceed_the_cap(routes, cap):
    registry = CollectorRegistry()
    meter = mw._Meter(registry, cap, (0.1, 1.0))
    for route in routes:
        active = meter.start("GET", "http")
        meter.finish(active, "GET", "http", 200, "", 0.01, route)
    seen = {dict(k)["http_route"] for k in samples(registry, "http_server_request_duration_seconds_count")}
    distinct = list(dict.fromkeys(routes))
    assert len(seen - {mw.OVERFLOW}) == min(cap, len(distinct))
    overflowed = sum(1 for r in routes if r not in distinct[:cap])
    assert count(registry) == len(routes)
    assert count(registry, http_route=mw.OVERFLOW) == overflowed
    overflow = samples(registry, "surefoot_metric_label_overflow_total")
    assert sum(overflow.values()) == overflowed


async def test_cardinality_cap_also_folds_error_types(registry):
    failures = {name: type(name, (Exception,), {}) for name in ("QuotaError", "LedgerError", "ClockError")}
    app = FastAPI()

    @app.get("/charge/{kind}")
    async def charge(kind: str):
        raise failures[kind]("declined")

    install_http(app, registry=registry, max_label_values=2)
    async with client(app) as c:
        for kind in ("QuotaError", "LedgerError", "ClockError", "ClockError"):
            assert (await c.get(f"/charge/{kind}")).status_code == 500
    error_types = {dict(k)["error_type"] for k in samples(registry, "http_server_request_duration_seconds_count")}
    assert error_types == {"QuotaError", "LedgerError", "_OTHER"}
    assert count(registry, http_route="/charge/{kind}") == 4  # one template: never folded
    assert count(registry, error_type="_OTHER") == 2
    overflow = samples(registry, "surefoot_metric_label_overflow_total")
    assert overflow[(("label", "error_type"), ("metric", "http_server_request_duration_seconds"))] == 2
