"""One structured access-log line per request, emitted while the ids are bound."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from surefoot._core.settings import Settings
from surefoot.http import install_http

from .conftest import client


def make_app(registry, **options):
    app = FastAPI()

    @app.get("/hello/{name}")
    async def hello(name: str):
        return PlainTextResponse("hello " + name)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/fail")
    async def fail():
        return PlainTextResponse("down", status_code=503)

    install_http(app, registry=registry, **options)
    return app


async def test_one_line_with_fields_and_ids(registry, logs):
    app = make_app(registry)
    async with client(app) as c:
        await c.get("/hello/ann", headers={"X-Correlation-ID": "c-1", "X-Tenant-ID": "acme"})
    lines = [e for e in logs if e["event"] == "http_request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["log_level"] == "info"
    assert line["method"] == "GET" and line["route"] == "/hello/{name}" and line["status"] == 200
    assert line["bytes"] == len("hello ann")
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
    assert line["correlation_id"] == "c-1" and line["tenant_id"] == "acme"


async def test_5xx_is_logged_at_error(registry, logs):
    app = make_app(registry)
    async with client(app) as c:
        await c.get("/fail")
    [line] = [e for e in logs if e["event"] == "http_request"]
    assert line["log_level"] == "error" and line["status"] == 503


async def test_skipped_paths_and_unmatched(registry, logs):
    app = make_app(registry)
    async with client(app) as c:
        await c.get("/health")
        await c.get("/missing")
    lines = [e for e in logs if e["event"] == "http_request"]
    assert [(e["route"], e["status"]) for e in lines] == [("", 404)]


async def test_configured_skip_paths_and_disabled(registry, logs):
    app = make_app(registry, settings=Settings(access_log_skip_paths=["/hello/bob"]))
    async with client(app) as c:
        await c.get("/hello/bob")
        await c.get("/health")
    assert [e["route"] for e in logs if e["event"] == "http_request"] == ["/health"]
    logs.clear()
    quiet = make_app(registry, access_log=False)
    async with client(quiet) as c:
        await c.get("/hello/ann")
    assert not [e for e in logs if e["event"] == "http_request"]


async def test_odd_and_huge_methods_are_logged_as_labelled(registry, logs):
    app = make_app(registry)
    huge = "X" * 20_000
    async with client(app) as c:
        matched = await c.request("PROPFIND", "/hello/ann")
        await c.request(huge, "/hello/ann")
        await c.request(huge, "/missing")
        await c.request("PATCH", "/hello/ann")
    assert matched.status_code == 405
    lines = [(e["method"], e["route"], e["status"]) for e in logs if e["event"] == "http_request"]
    assert lines == [
        ("_OTHER", "/hello/{name}", 405),
        ("_OTHER", "/hello/{name}", 405),
        ("_OTHER", "", 404),
        ("PATCH", "/hello/{name}", 405),
    ]
