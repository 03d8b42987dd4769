"""The application's own ``500``/``Exception`` handler answers unexpected errors under surefoot.

Starlette gives that handler to ``ServerErrorMiddleware``; surefoot's middleware sits inside
it and sees every unhandled exception first, so it calls the handler itself (and still logs
the stack trace once and counts the error).
"""

from __future__ import annotations

import functools

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from surefoot.errors import NotFoundError
from surefoot.http import SurefootMiddleware, install_http

from .conftest import client, count

PROBLEM = "application/problem+json"


def crashing_app(registry, register):
    app = FastAPI()

    @app.get("/crash")
    async def crash():
        raise RuntimeError("database on fire")

    @app.get("/missing")
    async def missing():
        raise NotFoundError(resource="Customer", identifier=7)

    register(app)
    install_http(app, registry=registry)
    return app


async def _async_handler(request, exc):
    return JSONResponse({"mine": str(exc), "path": request.url.path}, status_code=503)


def _sync_handler(request, exc):
    return JSONResponse({"mine": str(exc), "path": request.url.path}, status_code=503)


class _CallableHandler:
    async def __call__(self, request, exc):
        return JSONResponse({"mine": str(exc), "path": request.url.path}, status_code=503)


@pytest.mark.parametrize("handler", [
    _async_handler, _sync_handler, _CallableHandler(), functools.partial(_async_handler),
], ids=["async", "sync", "callable-object", "partial"])
@pytest.mark.parametrize("key", [Exception, 500])
async def test_users_error_handler_answers_unexpected_errors(registry, logs, handler, key):
    app = crashing_app(registry, lambda a: a.add_exception_handler(key, handler))
    async with client(app) as c:
        resp = await c.get("/crash", headers={"X-Correlation-ID": "crash-7"})
    assert resp.status_code == 503
    assert resp.json() == {"mine": "database on fire", "path": "/crash"}
    assert resp.headers["x-correlation-id"] == "crash-7"
    errors = [e for e in logs if e["event"] == "unhandled_exception"]
    assert len(errors) == 1 and isinstance(errors[0]["exc_info"], RuntimeError)
    access = [e for e in logs if e["event"] == "http_request"]
    assert access[0]["status"] == 503
    assert count(registry, http_route="/crash", http_response_status_code="503", error_type="RuntimeError") == 1


async def test_handler_registered_after_install_is_used(registry, logs):
    app = crashing_app(registry, lambda a: None)
    app.add_exception_handler(Exception, _async_handler)  # replaces surefoot's own
    async with client(app) as c:
        resp = await c.get("/crash")
    assert resp.status_code == 503 and resp.json()["mine"] == "database on fire"


async def test_errors_that_are_answers_keep_their_problem(registry, logs):
    app = crashing_app(registry, lambda a: a.add_exception_handler(Exception, _async_handler))
    async with client(app) as c:
        resp = await c.get("/missing")
    assert resp.status_code == 404 and resp.headers["content-type"] == PROBLEM
    assert resp.json()["code"] == "NOT_FOUND"


async def test_without_a_handler_the_problem_is_sent(registry, logs):
    app = crashing_app(registry, lambda a: None)
    async with client(app) as c:
        resp = await c.get("/crash")
    assert resp.status_code == 500 and resp.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("failure", ["raises", "returns-none"])
async def test_failing_handler_is_logged_and_the_problem_sent(registry, logs, failure):
    async def broken(request, exc):
        if failure == "raises":
            raise KeyError("handler bug")
        return None

    app = crashing_app(registry, lambda a: a.add_exception_handler(Exception, broken))
    async with client(app) as c:
        resp = await c.get("/crash", headers={"X-Correlation-ID": "crash-8"})
    assert resp.status_code == 500 and resp.headers["content-type"] == PROBLEM
    assert resp.json()["correlation_id"] == "crash-8"
    failed = [e for e in logs if e["event"] == "error_handler_failed"]
    assert len(failed) == 1 and failed[0]["error_code"] == "ERROR_HANDLER_FAILED"
    assert failed[0]["correlation_id"] == "crash-8"
    assert sum(e["event"] == "unhandled_exception" for e in logs) == 1
    assert count(registry, http_route="/crash", http_response_status_code="500", error_type="RuntimeError") == 1


async def test_handler_failing_after_its_response_started_aborts(registry, logs):
    class HalfResponse(PlainTextResponse):
        async def __call__(self, scope, receive, send):
            await send({"type": "http.response.start", "status": 503, "headers": []})
            raise OSError("socket gone while answering")

    async def half(request, exc):
        return HalfResponse("x")

    app = crashing_app(registry, lambda a: a.add_exception_handler(Exception, half))
    with pytest.raises(RuntimeError, match="database on fire"):
        async with client(app) as c:
            await c.get("/crash")
    assert sum(e["event"] == "error_handler_failed" for e in logs) == 1
    assert sum(e["event"] == "unhandled_exception" for e in logs) == 1


async def test_errors_from_user_middleware_reach_the_handler(registry, logs):
    async def ok(request):
        return PlainTextResponse("ok")

    async def failing(request, call_next):
        raise ValueError("middleware broke")

    app = Starlette(routes=[Route("/", ok)])
    app.add_middleware(BaseHTTPMiddleware, dispatch=failing)
    app.add_exception_handler(500, _sync_handler)
    install_http(app, registry=registry)
    async with client(app) as c:
        resp = await c.get("/")
    assert resp.status_code == 503 and resp.json()["mine"] == "middleware broke"


async def test_bare_middleware_takes_a_handler(registry, logs):
    async def bare(scope, receive, send):
        raise ZeroDivisionError("bare")

    async with client(SurefootMiddleware(bare, registry=registry, error_handler=_async_handler)) as c:
        resp = await c.get("/anything")
    assert resp.status_code == 503 and resp.json() == {"mine": "bare", "path": "/anything"}


async def test_mounted_apps_use_their_own_handler_then_the_outer_one(registry, logs):
    def sub_app(name, handler=None):
        sub = FastAPI()

        @sub.get("/crash")
        async def crash():
            raise RuntimeError(f"{name} broke")

        if handler is not None:
            sub.add_exception_handler(Exception, handler)
        return sub

    async def own(request, exc):
        return PlainTextResponse(f"own: {exc}", status_code=502)

    app = FastAPI()
    app.mount("/with", sub_app("with", own))
    app.mount("/without", sub_app("without"))
    app.add_exception_handler(Exception, _async_handler)
    install_http(app, registry=registry)
    async with client(app) as c:
        with_own = await c.get("/with/crash")
        without = await c.get("/without/crash")
    assert (with_own.status_code, with_own.text) == (502, "own: with broke")
    assert without.status_code == 503 and without.json()["mine"] == "without broke"
    assert sum(e["event"] == "unhandled_exception" for e in logs) == 2
    assert count(registry, http_route="/with/crash", http_response_status_code="502", error_type="RuntimeError") == 1
