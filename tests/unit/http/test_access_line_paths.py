"""The request path's access line with surefoot's logging configured: the direct path and the
structlog chain write the same line, PII in header-derived fields is masked on both, skip
paths skip."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from surefoot._core.settings import Settings
from surefoot.http import install_http
from surefoot.logging import _setup, configure_logging, reset_logging
from surefoot.testing import capture_logs

from .conftest import client


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(stream=out, fmt="json", level="INFO")
    yield out
    reset_logging()


def make_app(registry: Any) -> Starlette:
    async def item(request: Any) -> PlainTextResponse:
        return PlainTextResponse("item")

    async def boom(request: Any) -> PlainTextResponse:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/items/{item_id}", item), Route("/livez", item), Route("/boom", boom)])
    install_http(app, registry=registry, settings=Settings())
    return app


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["event"] == "http_request"]


HEADERS = {"X-Tenant-ID": "4155552671", "X-Correlation-ID": "req:4155552671", "X-Causation-ID": "c-1"}


async def test_header_ids_are_logged_intact_and_both_paths_agree(registry, stream):
    app = make_app(registry)
    async with client(app) as c:
        await c.get("/items/1", headers=HEADERS)
        redactor = _setup._access_fast.redactor
        _setup._access_fast.enable(None)  # the structlog chain
        try:
            await c.get("/items/1", headers=HEADERS)
        finally:
            _setup._access_fast.enable(redactor)
    fast, slow = access_lines(stream)
    for line in (fast, slow):
        # ids are never masked: the id a client sent (and got echoed) is findable in the logs
        assert line["tenant_id"] == "4155552671"
        assert line["correlation_id"] == "req:4155552671"
        assert line["causation_id"] == "c-1"
        assert line["route"] == "/items/{item_id}" and line["status"] == 200 and line["bytes"] == 4
        line.pop("timestamp")
        line.pop("latency_ms")
    assert fast == slow


async def test_generated_ids_and_5xx(registry, stream):
    app = make_app(registry)
    async with client(app) as c:
        ok = await c.get("/items/2")
        await c.get("/boom")
    lines = access_lines(stream)
    assert [line["level"] for line in lines] == ["info", "error"]
    assert lines[0]["correlation_id"] == ok.headers["x-correlation-id"]
    assert lines[0]["tenant_id"] is None
    assert lines[1]["status"] == 500


async def test_skip_paths_still_skip(registry, stream):
    app = make_app(registry)
    async with client(app) as c:
        await c.get("/livez")
    assert access_lines(stream) == []


async def test_capture_logs_sees_the_access_line(registry, stream):
    app = make_app(registry)
    with capture_logs() as logs:
        async with client(app) as c:
            await c.get("/items/3", headers=HEADERS)
    line = logs.one(event="http_request")
    assert line["tenant_id"] == "4155552671" and line["route"] == "/items/{item_id}"
    assert access_lines(stream) == []
