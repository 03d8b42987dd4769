"""Mounted applications get the outer app's error handling with nothing but ``install``."""

from __future__ import annotations

import io

import httpx
import pytest
from fastapi import FastAPI
from fastapi import HTTPException as FastAPIHTTPException
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import surefoot
from surefoot.logging import reset_logging
from surefoot.testing import capture_logs

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def _reset_logging():
    reset_logging()
    yield
    reset_logging()


def _client(app):
    # raise_app_exceptions=True (the default): an exception escaping to the server fails the test
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _fastapi_sub() -> FastAPI:
    sub = FastAPI()

    @sub.get("/customers/{customer_id}")
    async def customer(customer_id: int):
        raise surefoot.NotFoundError(resource="Customer", identifier=customer_id)

    @sub.get("/crash")
    async def crash():
        raise RuntimeError("database exploded")

    @sub.get("/forbidden")
    async def forbidden():
        raise FastAPIHTTPException(status_code=403, detail="nope")

    return sub


def _starlette_sub() -> Starlette:
    async def missing(request):
        raise surefoot.NotFoundError(resource="Invoice", identifier=request.path_params["n"])

    async def crash(request):
        raise RuntimeError("database exploded")

    return Starlette(routes=[Route("/invoices/{n}", missing), Route("/crash", crash)])


def _install(app):
    return surefoot.install(app, log_options={"stream": io.StringIO(), "fmt": "json"})


async def _check(app, not_found_path: str, crash_path: str, unmatched_path: str) -> None:
    async with _client(app) as client:
        with capture_logs() as logs:
            missing = await client.get(not_found_path, headers={"X-Correlation-ID": "mnt-1"})
            crash = await client.get(crash_path)
            unmatched = await client.get(unmatched_path)
    assert missing.status_code == 404, missing.text
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["code"] == "NOT_FOUND" and missing.json()["correlation_id"] == "mnt-1"
    assert crash.status_code == 500 and crash.headers["content-type"] == PROBLEM
    assert "exploded" not in crash.text
    assert unmatched.status_code == 404 and unmatched.headers["content-type"] == PROBLEM
    unhandled = [e for e in logs if e["event"] == "unhandled_exception"]
    assert len(unhandled) == 1, unhandled
    assert unhandled[0]["error_type"] == "RuntimeError" and unhandled[0]["path"] == crash_path
    # no error line for the NotFoundError: it is an answer, not a failure
    assert not [e for e in logs if e.get("log_level") == "error" and e.get("status") == 404]
    statuses = [e["status"] for e in logs if e["event"] == "http_request"]
    assert statuses == [404, 500, 404]


async def test_fastapi_app_mounted_with_app_mount() -> None:
    app = FastAPI()
    app.mount("/sub", _fastapi_sub())
    _install(app)
    await _check(app, "/sub/customers/7", "/sub/crash", "/sub/nothing-here")


async def test_fastapi_app_mounted_after_install() -> None:
    app = FastAPI()
    _install(app)
    app.mount("/late", _fastapi_sub())
    await _check(app, "/late/customers/7", "/late/crash", "/late/nothing-here")


async def test_starlette_mount_of_a_starlette_app() -> None:
    app = Starlette(routes=[Mount("/billing", app=_starlette_sub())])
    _install(app)
    await _check(app, "/billing/invoices/3", "/billing/crash", "/billing/nothing")


async def test_nested_mounts() -> None:
    inner = _fastapi_sub()
    middle = FastAPI()
    middle.mount("/inner", inner)
    app = FastAPI()
    app.mount("/outer", middle)
    _install(app)
    await _check(app, "/outer/inner/customers/1", "/outer/inner/crash", "/outer/inner/none")


async def test_http_exception_and_user_handlers_in_the_mounted_app() -> None:
    sub = _fastapi_sub()

    @sub.exception_handler(LookupError)
    async def lookup(request, exc):
        return PlainTextResponse("custom", status_code=410)

    @sub.get("/lookup")
    async def raise_lookup():
        raise LookupError("x")

    app = FastAPI()
    app.mount("/sub", sub)
    _install(app)
    async with _client(app) as client:
        forbidden = await client.get("/sub/forbidden")
        custom = await client.get("/sub/lookup")
    assert forbidden.status_code == 403 and forbidden.headers["content-type"] == PROBLEM
    assert forbidden.json()["detail"] == "nope"
    assert custom.status_code == 410 and custom.text == "custom"  # the user's own handler is kept
