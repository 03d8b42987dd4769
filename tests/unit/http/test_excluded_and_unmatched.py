"""Probes, /metrics and docs stay out of request metrics; unmatched requests show their path."""

from __future__ import annotations

import io
import json

import pytest
from fastapi import FastAPI

import surefoot
from surefoot import Settings
from surefoot.logging import reset_logging
from surefoot.testing import capture_logs

from .conftest import client, count


@pytest.fixture(autouse=True)
def _reset_logging():
    reset_logging()
    yield
    reset_logging()


def _app(**fastapi_kwargs) -> FastAPI:
    app = FastAPI(**fastapi_kwargs)

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    return app


def _routes_measured(registry) -> set[str]:
    routes = set()
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "http_server_request_duration_seconds_count":
                routes.add(sample.labels["http_route"])
    return routes


async def test_probes_metrics_and_docs_are_not_measured_by_default():
    app = _app()
    installation = surefoot.install(app, log_options={"stream": io.StringIO(), "fmt": "json"})
    async with client(app) as c:
        for path in ("/livez", "/readyz", "/health", "/metrics", "/docs", "/openapi.json", "/redoc",
                     "/items/1"):
            await c.get(path)
    assert _routes_measured(installation.registry) == {"/items/{item_id}"}
    active = installation.registry.get_sample_value(
        "http_server_active_requests", {"http_request_method": "GET", "url_scheme": "http"})
    assert active == 0


async def test_moved_docs_and_probes_are_excluded_where_they_are():
    app = _app(docs_url="/api-docs", openapi_url="/api/schema.json")
    installation = surefoot.install(app, health_prefix="/_", settings=Settings(metrics_path="/_metrics"),
                                    log_options={"stream": io.StringIO(), "fmt": "json"})
    async with client(app) as c:
        for path in ("/_/livez", "/_/readyz", "/_metrics", "/api-docs", "/api/schema.json", "/items/2"):
            assert (await c.get(path)).status_code in (200, 503)
    assert _routes_measured(installation.registry) == {"/items/{item_id}"}


async def test_exclusions_are_configurable(monkeypatch):
    monkeypatch.setenv("SUREFOOT_METRICS_EXCLUDE_PATHS", "")
    app = _app()
    installation = surefoot.install(app, log_options={"stream": io.StringIO(), "fmt": "json"})
    async with client(app) as c:
        await c.get("/livez")
        await c.get("/docs")
    assert {"/livez", "/docs"} <= _routes_measured(installation.registry)
    assert count(installation.registry, http_route="/livez") == 1


async def test_unmatched_requests_log_their_bounded_redacted_path():
    app = _app()
    stream = io.StringIO()
    surefoot.install(app, log_options={"stream": stream, "fmt": "json"})
    long_tail = "x" * 5000
    async with client(app) as c:
        await c.get("/wp-admin/setup.php")
        await c.get("/users/ada.lovelace@example.com/profile")
        await c.get("/" + long_tail)
        await c.get("/items/3")
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if '"http_request"' in line]
    assert [line["status"] for line in lines] == [404, 404, 404, 200]
    assert lines[0]["path"] == "/wp-admin/setup.php" and lines[0]["route"] == ""
    assert "ada.lovelace" not in json.dumps(lines[1]) and lines[1]["path"].endswith("/profile")
    assert len(lines[2]["path"]) == 200 and lines[2]["path"].endswith("...")
    assert "path" not in lines[3]  # a matched route has its template, not the raw path


async def test_a_cut_never_leaves_part_of_an_address_or_secret_readable(monkeypatch):
    monkeypatch.setenv("SUREFOOT_ACCESS_LOG_USER_AGENT", "true")
    app = _app()
    stream = io.StringIO()
    surefoot.install(app, log_options={"stream": stream, "fmt": "json"})
    # the 200-character cut falls inside the address and inside the token
    path = "/" + "p" * 190 + "/grace.hopper@navy.example.mil/x"
    agent = "bot " + "b" * 185 + " token=s3cr3tvalue1234567890"
    async with client(app) as c:
        await c.get(path, headers={"User-Agent": agent})
        await c.get("/items/1", headers={"User-Agent": agent})
    text = stream.getvalue()
    assert "grace" not in text and "s3cr3t" not in text
    lines = [json.loads(line) for line in text.splitlines() if '"http_request"' in line]
    assert len(lines[0]["path"]) <= 200 and lines[0]["path"].endswith(".mil/x")
    # (a cut inside a redaction marker is redacted again when the line is written)
    assert len(lines[1]["user_agent"]) <= 200 + len("[REDACTED]") and lines[1]["user_agent"].startswith("bot bbb")


async def test_client_and_user_agent_on_request(monkeypatch):
    monkeypatch.setenv("SUREFOOT_ACCESS_LOG_CLIENT", "true")
    monkeypatch.setenv("SUREFOOT_ACCESS_LOG_USER_AGENT", "true")
    app = _app()
    surefoot.install(app, log_options={"stream": io.StringIO(), "fmt": "json"})
    async with client(app, client=("203.0.113.9", 5555)) as c:
        with capture_logs() as logs:
            await c.get("/items/4", headers={"User-Agent": "curl/8.5 (mail ops@example.com)"})
            await c.get("/items/5", headers={"User-Agent": "A" * 1000})
    first, second = [e for e in logs if e["event"] == "http_request"]
    assert first["client"] == "203.0.113.9" and first["route"] == "/items/{item_id}"
    assert first["user_agent"].startswith("curl/8.5") and "ops@example.com" not in first["user_agent"]
    assert len(second["user_agent"]) == 200


async def test_client_and_user_agent_are_off_by_default():
    app = _app()
    surefoot.install(app, log_options={"stream": io.StringIO(), "fmt": "json"})
    async with client(app) as c:
        with capture_logs() as logs:
            await c.get("/items/4", headers={"User-Agent": "curl/8.5"})
    [line] = [e for e in logs if e["event"] == "http_request"]
    assert "client" not in line and "user_agent" not in line
