"""The probe and metrics routes are answered by exact path, ahead of the app, and never matched first."""

from __future__ import annotations

import io

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Route

import surefoot
from surefoot.logging import reset_logging


@pytest.fixture(autouse=True)
def _reset_logging():
    reset_logging()
    yield
    reset_logging()


def _client(app, **kwargs):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, **kwargs), base_url="http://testserver")


def _app():
    app = FastAPI()
    seen: list[str] = []

    @app.middleware("http")
    async def count(request, call_next):
        seen.append(request.url.path)
        return await call_next(request)

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    @app.get("/{anything:path}")
    async def catch_all(anything: str):
        return {"caught": anything}

    return app, seen


async def test_catch_all_cannot_shadow_probes_and_app_routes_come_first():
    app, seen = _app()
    surefoot.install(app, log_options={"stream": io.StringIO(), "fmt": "json"})
    # the app's own routes are matched before surefoot's: they are no longer put in front
    paths = [getattr(r, "path", None) for r in app.router.routes]
    assert paths.index("/items/{item_id}") < paths.index("/livez")
    assert {"/livez", "/readyz", "/health", "/metrics"} <= set(paths)
    async with _client(app) as client:
        assert (await client.get("/livez")).json()["status"] == "alive"
        assert (await client.get("/metrics")).headers["content-type"].startswith("text/plain")
        assert (await client.get("/items/3")).json() == {"id": 3}
        assert (await client.get("/other")).json() == {"caught": "other"}
        not_allowed = await client.post("/livez")
    assert not_allowed.status_code == 405
    assert not_allowed.headers["content-type"] == "application/problem+json"
    assert seen == ["/items/3", "/other"]  # user middleware does not run for probes


async def test_probes_behind_a_root_path():
    app, _seen = _app()
    surefoot.install(app, log_options={"stream": io.StringIO(), "fmt": "json"})
    async with _client(app, root_path="/api") as client:
        response = await client.get("/api/livez")
    assert response.status_code == 200 and response.json()["status"] == "alive"


async def test_probe_requests_can_be_measured_with_their_template(monkeypatch):
    monkeypatch.setenv("SUREFOOT_METRICS_EXCLUDE_PATHS", "")
    app, _seen = _app()
    installation = surefoot.install(app, log_options={"stream": io.StringIO(), "fmt": "json"})
    async with _client(app) as client:
        await client.get("/readyz")
    value = installation.registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {"http_request_method": "GET", "http_route": "/readyz", "http_response_status_code": "503",
         "url_scheme": "http", "error_type": "503"},
    ) or installation.registry.get_sample_value(
        "http_server_request_duration_seconds_count",
        {"http_request_method": "GET", "http_route": "/readyz", "http_response_status_code": "200",
         "url_scheme": "http", "error_type": ""},
    )
    assert value == 1


def test_serve_first_refuses_routes_with_parameters():
    from surefoot.errors import ConfigurationError
    from surefoot.http import SurefootMiddleware

    async def endpoint(request):
        return None

    middleware = SurefootMiddleware(lambda *a: None)
    with pytest.raises(ConfigurationError, match="fixed paths"):
        middleware.serve_first([Route("/items/{n}", endpoint)])


async def test_probes_and_metrics_behind_a_root_path_are_neither_measured_nor_logged():
    import json

    stream = io.StringIO()
    app, _seen = _app()
    installation = surefoot.install(app, log_options={"stream": stream, "fmt": "json"})
    async with _client(app, root_path="/api") as client:
        assert (await client.get("/api/livez")).status_code == 200
        assert (await client.get("/api/metrics")).status_code == 200
        assert (await client.get("/api/livez")).status_code == 200
        assert (await client.get("/api/items/3")).json() == {"id": 3}
    routes = {
        sample.labels["http_route"]
        for family in installation.registry.collect()
        for sample in family.samples
        if sample.name == "http_server_request_duration_seconds_count"
    }
    assert routes == {"/items/{item_id}"}
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    access = [line["route"] for line in lines if line.get("event") == "http_request"]
    assert access == ["/items/{item_id}"]
