"""RFC 9457 envelopes for every error, stack traces logged once and never sent."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
from fastapi import BackgroundTasks, FastAPI, Header
from fastapi import HTTPException as FastAPIHTTPException
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from surefoot.errors import (
    ConflictError,
    ExternalServiceError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from surefoot.http import (
    SurefootMiddleware,
    install_http,
    problem_from_exception,
    problem_from_status,
    problem_response,
)

from .conftest import client, count

PROBLEM = "application/problem+json"
MEMBERS = {"type", "title", "status", "detail", "instance", "code", "correlation_id"}


class Item(BaseModel):
    name: str
    quantity: int


def make_app(registry, **options):
    app = FastAPI(debug=True)  # debug must not leak tracebacks either

    @app.get("/ours/{kind}")
    async def ours(kind: str):
        raise {
            "validation": ValidationError("name is required", field="name"),
            "notfound": NotFoundError(resource="Customer", identifier=42),
            "conflict": ConflictError("already booked"),
            "ratelimit": RateLimitError("slow down", retry_after=2.5),
            "external": ExternalServiceError("twilio timed out", service="twilio"),
            "unavailable": ServiceUnavailableError("draining", retry_after=10),
            "conflict-details": ConflictError("stale", versions={1: "a", 2: "b"}, n=2**70),
        }[kind]

    @app.get("/http-exception")
    async def http_exception():
        raise FastAPIHTTPException(status_code=403, detail="nope", headers={"X-Reason": "policy"})

    @app.get("/http-exception-structured")
    async def http_exception_structured():
        raise FastAPIHTTPException(status_code=409, detail={"field": "slot", "taken": True})

    @app.post("/items")
    async def create(item: Item, x_count: int = Header(...)):
        return item

    @app.get("/crash")
    async def crash():
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")

    @app.get("/stream-crash")
    async def stream_crash():
        async def body():
            yield b"partial"
            raise RuntimeError("mid-stream")

        return StreamingResponse(body())

    install_http(app, registry=registry, **options)
    return app


async def test_extra_members_of_any_json_shape_keep_their_status(registry):
    app = make_app(registry)
    async with client(app) as c:
        resp = await c.get("/ours/conflict-details")
    assert resp.status_code == 409 and resp.headers["content-type"] == PROBLEM
    assert resp.json()["details"] == {"versions": {"1": "a", "2": "b"}, "n": 2**70}


@pytest.mark.parametrize(
    "kind,status,code",
    [
        ("validation", 400, "VALIDATION_ERROR"),
        ("notfound", 404, "NOT_FOUND"),
        ("conflict", 409, "CONFLICT"),
        ("ratelimit", 429, "RATE_LIMITED"),
        ("external", 502, "EXTERNAL_SERVICE_ERROR"),
        ("unavailable", 503, "SERVICE_UNAVAILABLE"),
    ],
)
async def test_surefoot_errors(registry, kind, status, code):
    app = make_app(registry)
    async with client(app) as c:
        resp = await c.get(f"/ours/{kind}", headers={"X-Correlation-ID": "cid-1"})
    assert resp.status_code == status
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body.keys() >= MEMBERS
    assert body["code"] == code and body["status"] == status
    assert body["correlation_id"] == "cid-1" and body["instance"] == f"/ours/{kind}"
    if kind == "validation":
        assert body["errors"] == [{"loc": ["name"], "msg": "name is required", "type": "value_error"}]
    if kind == "ratelimit":
        assert resp.headers["retry-after"] == "3"
    if kind == "unavailable":
        assert resp.headers["retry-after"] == "10"
    if status >= 500:
        # error_type names the exception the handler rendered
        expected = {"external": "ExternalServiceError", "unavailable": "ServiceUnavailableError"}[kind]
        assert count(registry, error_type=expected, http_response_status_code=str(status)) == 1


async def test_request_validation_error_is_400_with_errors(registry):
    app = make_app(registry)
    async with client(app) as c:
        resp = await c.post("/items", json={"name": "x", "quantity": "many"}, headers={"X-Count": "1"})
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "VALIDATION_ERROR" and resp.headers["content-type"] == PROBLEM
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "quantity")}
    assert all("input" not in e for e in body["errors"])  # client data is not echoed


async def test_validation_status_can_be_422(registry):
    app = make_app(registry, validation_status=422)
    async with client(app) as c:
        resp = await c.post("/items", json={}, headers={"X-Count": "1"})
    assert resp.status_code == 422 and resp.json()["code"] == "VALIDATION_ERROR"


async def test_http_exception_keeps_status_detail_and_headers(registry):
    app = make_app(registry)
    async with client(app) as c:
        resp = await c.get("/http-exception")
        structured = await c.get("/http-exception-structured")
        missing = await c.get("/nowhere")
    assert resp.status_code == 403 and resp.headers["x-reason"] == "policy"
    assert resp.json()["detail"] == "nope" and resp.json()["code"] == "FORBIDDEN"
    assert structured.status_code == 409 and structured.json()["details"] == {"field": "slot", "taken": True}
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    assert missing.headers["content-type"] == PROBLEM


async def test_unhandled_error_is_500_logged_once_and_never_leaks(registry, logs):
    app = make_app(registry)
    async with client(app) as c:
        resp = await c.get("/crash", headers={"X-Correlation-ID": "crash-1"})
    assert resp.status_code == 500
    assert resp.headers["content-type"] == PROBLEM
    assert resp.headers["x-correlation-id"] == "crash-1"
    body = resp.json()
    assert body["code"] == "INTERNAL_ERROR" and body["correlation_id"] == "crash-1"
    assert "hunter2" not in resp.text and "Traceback" not in resp.text and "RuntimeError" not in resp.text
    errors = [e for e in logs if e["event"] == "unhandled_exception"]
    assert len(errors) == 1
    assert isinstance(errors[0]["exc_info"], RuntimeError)
    assert errors[0]["error_code"] == "INTERNAL_ERROR" and errors[0]["correlation_id"] == "crash-1"
    access = [e for e in logs if e["event"] == "http_request"]
    assert access[0]["status"] == 500 and access[0]["log_level"] == "error"
    assert count(registry, http_route="/crash", error_type="RuntimeError", http_response_status_code="500") == 1


async def test_error_after_response_started_sends_nothing_more(registry, logs):
    app = make_app(registry)
    sent = []
    requested = []

    async def receive():
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "method": "GET", "path": "/stream-crash", "raw_path": b"/stream-crash",
        "headers": [], "query_string": b"", "scheme": "http", "root_path": "",
        "server": ("t", 80), "client": ("127.0.0.1", 1), "http_version": "1.1", "asgi": {"version": "3.0"},
    }
    with pytest.raises(RuntimeError, match="mid-stream"):
        await app(scope, receive, send)
    assert [m["type"] for m in sent][0] == "http.response.start"
    assert sent[0]["status"] == 200
    assert all(m.get("more_body", False) for m in sent if m["type"] == "http.response.body")
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"partial"
    assert sum(e["event"] == "unhandled_exception" for e in logs) == 1
    assert count(registry, http_route="/stream-crash", http_response_status_code="200", error_type="RuntimeError") == 1


async def test_failing_background_task_is_logged_once(registry, logs):
    app = FastAPI()

    @app.get("/bg")
    async def bg(tasks: BackgroundTasks):
        def job():
            raise ValueError("job failed")

        tasks.add_task(job)
        return {"queued": True}

    install_http(app, registry=registry)
    async with client(app) as c:
        resp = await c.get("/bg")
    assert resp.status_code == 200
    assert [e["event"] for e in logs if e["event"] == "unhandled_exception"] == ["unhandled_exception"]


async def test_plain_starlette_and_bare_asgi(registry, logs):
    async def crash(request):
        raise LookupError("boom")

    async def gone(request):
        raise HTTPException(status_code=410, detail="gone for good")

    app = Starlette(routes=[Route("/crash", crash), Route("/gone", gone)])
    install_http(app, registry=registry)
    async with client(app) as c:
        crashed = await c.get("/crash")
        gone_resp = await c.get("/gone")
    assert crashed.status_code == 500 and crashed.json()["code"] == "INTERNAL_ERROR"
    assert gone_resp.status_code == 410 and gone_resp.json()["code"] == "GONE"

    async def bare(scope, receive, send):
        raise ZeroDivisionError

    async with client(SurefootMiddleware(bare, registry=registry)) as c:
        resp = await c.get("/")
    assert resp.status_code == 500 and resp.headers["content-type"] == PROBLEM


async def test_user_handlers_win(registry):
    app = FastAPI()

    @app.exception_handler(NotFoundError)
    async def mine(request, exc):
        return PlainTextResponse("custom", status_code=404)

    @app.get("/x")
    async def x():
        raise NotFoundError("no")

    install_http(app, registry=registry)
    async with client(app) as c:
        resp = await c.get("/x")
    assert resp.text == "custom"


def test_install_refuses_what_it_cannot_serve(registry):
    from surefoot.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="Starlette or FastAPI"):
        install_http(object(), registry=registry)
    with pytest.raises(ConfigurationError, match="validation_status"):
        install_http(FastAPI(), registry=registry, validation_status=418)
    app = FastAPI()
    app.build_middleware_stack()
    app.middleware_stack = app.build_middleware_stack()
    with pytest.raises(ConfigurationError, match="before"):
        install_http(app, registry=registry)


async def test_user_middleware_added_after_install_is_inside(registry):
    from starlette.middleware.base import BaseHTTPMiddleware

    app = FastAPI()

    @app.get("/x")
    async def x():
        return {}

    install_http(app, registry=registry)

    class Boom(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            raise RuntimeError("middleware bug")

    app.add_middleware(Boom)
    async with client(app) as c:
        resp = await c.get("/x", headers={"X-Correlation-ID": "mw-1"})
    assert resp.status_code == 500 and resp.json()["correlation_id"] == "mw-1"


def test_problem_helpers():
    problem = problem_from_status(401, "bad signature", headers={"WWW-Authenticate": "Signature"})
    assert problem.body["code"] == "AUTHENTICATION_REQUIRED" and problem.headers["WWW-Authenticate"]
    assert problem_from_status(418).body["code"] == "I_M_A_TEAPOT"
    assert problem_from_status(599).body["code"] == "HTTP_599"
    response = problem_response(RateLimitError(retry_after=1), instance="/hook")
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert response.media_type == PROBLEM
    assert problem_response(401, detail="who are you").status_code == 401
    assert problem_from_exception(KeyError("k")).body["detail"].startswith("An unexpected error")


def test_works_without_fastapi(subprocess_env, tmp_path):
    script = textwrap.dedent(
        """
        import sys
        sys.modules["fastapi"] = None  # as if not installed
        import asyncio, httpx
        from starlette.applications import Starlette
        from starlette.routing import Route
        from prometheus_client import CollectorRegistry
        from surefoot.http import install_http

        async def crash(request):
            raise RuntimeError("x")

        app = Starlette(routes=[Route("/crash", crash)])
        install_http(app, registry=CollectorRegistry())

        async def main():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                r = await c.get("/crash")
                print(r.status_code, r.headers["content-type"], r.json()["code"])

        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "500 application/problem+json INTERNAL_ERROR"


async def test_mounted_sub_application_gets_the_same_envelope(registry):
    from surefoot.http import install_error_handlers

    sub = FastAPI()

    @sub.get("/thing")
    async def thing():
        raise FastAPIHTTPException(status_code=404, detail="no thing")

    install_error_handlers(sub)
    app = FastAPI()
    app.mount("/sub", sub)
    install_http(app, registry=registry)
    async with client(app) as c:
        resp = await c.get("/sub/thing", headers={"X-Correlation-ID": "sub-1"})
        missing = await c.get("/sub/nothing")
    assert resp.status_code == 404 and resp.headers["content-type"] == PROBLEM
    assert resp.json()["correlation_id"] == "sub-1" and resp.json()["detail"] == "no thing"
    assert missing.headers["content-type"] == PROBLEM
    assert count(registry, http_route="/sub/thing", http_response_status_code="404") == 1


async def test_hand_built_validation_errors_keep_their_location_and_never_the_input(registry):
    from fastapi.exceptions import RequestValidationError

    app = FastAPI()

    @app.post("/signup")
    async def signup():
        raise RequestValidationError([
            {"loc": "body", "msg": "missing", "type": "missing", "input": "hunter2"},
            {"loc": None, "msg": "no place", "type": "value_error", "input": {"card": "4111111111111111"}},
            {"loc": ("body", "age"), "msg": "too young", "type": "value_error", "input": 12},
        ])

    install_http(app, registry=registry)
    async with client(app) as c:
        response = await c.post("/signup")
    assert response.status_code == 400 and response.headers["content-type"] == PROBLEM
    assert response.json()["errors"] == [
        {"loc": ["body"], "msg": "missing", "type": "missing"},
        {"loc": [], "msg": "no place", "type": "value_error"},
        {"loc": ["body", "age"], "msg": "too young", "type": "value_error"},
    ]
    assert "hunter2" not in response.text and "4111" not in response.text


async def test_send_problem_from_pure_asgi_code(registry):
    from surefoot.http import send_problem

    async def gate(scope, receive, send):  # a pure-ASGI app answering with surefoot's body
        if scope["type"] != "http":
            return
        await send_problem(send, problem_from_status(
            429, "too many calls", instance=scope["path"], headers={"Retry-After": "3"}))

    app = SurefootMiddleware(gate, registry=registry)
    async with client(app) as c:
        response = await c.get("/hooks/twilio", headers={"X-Correlation-ID": "gate-1"})
    assert response.status_code == 429
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "3"
    assert response.headers["x-correlation-id"] == "gate-1"
    body = response.json()
    assert set(body) >= MEMBERS
    assert body["code"] == "RATE_LIMITED" and body["instance"] == "/hooks/twilio"
    assert body["correlation_id"] == "gate-1"  # taken from the request's context
    assert int(response.headers["content-length"]) == len(response.content)


async def test_header_values_http_cannot_carry_never_lose_the_problem(registry):
    app = FastAPI()

    @app.middleware("http")
    async def gate(request, call_next):
        if request.url.path == "/gated":
            raise HTTPException(403, headers={"X-Reason": "line\r\nSet-Cookie: a=b"})
        return await call_next(request)

    @app.get("/login")
    async def login():
        raise FastAPIHTTPException(401, detail="sign in", headers={"WWW-Authenticate": 'Bearer realm="☃ café"'})

    install_http(app, registry=registry)
    async with client(app) as c:
        login = await c.get("/login", headers={"X-Correlation-ID": "hdr-1"})
        gated = await c.get("/gated", headers={"X-Correlation-ID": "hdr-2"})
    assert login.status_code == 401 and login.headers["content-type"] == PROBLEM
    assert login.headers["www-authenticate"].encode("latin-1") == 'Bearer realm="? café"'.encode("latin-1")
    assert login.json()["correlation_id"] == "hdr-1"
    assert gated.status_code == 403 and gated.headers["content-type"] == PROBLEM
    assert gated.headers["x-reason"] == "line??Set-Cookie: a=b" and "set-cookie" not in gated.headers
    assert gated.headers["x-correlation-id"] == "hdr-2" and gated.json()["correlation_id"] == "hdr-2"
    assert problem_response(429, headers={"Retry-After": "soon ☃"}).headers["retry-after"] == "soon ?"
