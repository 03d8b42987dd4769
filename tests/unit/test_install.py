from __future__ import annotations

import contextlib
import io

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

import surefoot
from surefoot import NotFoundError, Settings
from surefoot.errors import ConfigurationError
from surefoot.health import Health
from surefoot.logging import reset_logging
from surefoot.testing import capture_logs, fresh_registry, metric_value, override_dependencies


@pytest.fixture(autouse=True)
def _reset_logging():
    reset_logging()
    yield
    reset_logging()


def _install(app, **kwargs):
    kwargs.setdefault("log_options", {"stream": io.StringIO(), "fmt": "json"})
    return surefoot.install(app, **kwargs)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        if item_id == 0:
            raise NotFoundError(resource="Item", identifier=item_id)
        surefoot.get_logger("items").info("item_read", item_id=item_id, owner="bob@example.com")
        return {"id": item_id}

    return app


def test_install_wires_probes_metrics_errors_and_logs() -> None:
    app = _app()
    installation = _install(app)
    assert app.state.surefoot is installation
    with TestClient(app) as client, capture_logs() as logs:
        response = client.get("/items/7", headers={"X-Correlation-ID": "req-1"})
        assert response.status_code == 200 and response.headers["x-correlation-id"] == "req-1"
        missing = client.get("/items/0")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        problem = missing.json()
        assert problem["code"] == "NOT_FOUND" and problem["correlation_id"]
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        health = client.get("/health").json()
        assert health["status"] == "healthy" and "uptime_seconds" in health and "version" in health
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
    read = logs.one(event="item_read")
    assert read["correlation_id"] == "req-1" and read["owner"] == "***.com" and read["module"] == "items"
    access = [line for line in logs if line["event"] == "http_request"]
    assert {line["route"] for line in access} >= {"/items/{item_id}"}
    assert not any(line.get("route") in ("/livez", "/readyz", "/health", "/metrics") for line in access)
    labels = {
        "http_request_method": "GET", "http_route": "/items/{item_id}",
        "http_response_status_code": "200", "url_scheme": "http", "error_type": "",
    }
    assert metric_value(installation.registry, "http_server_request_duration_seconds_count", labels) == 1
    assert 'http_route="/items/{item_id}"' in metrics.text


def test_readiness_is_503_until_startup_and_after_shutdown_begins() -> None:
    seen = {}
    app_holder = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        installation = app_holder["installation"]
        seen["phase_during_startup"] = installation.health.phase
        yield {"resource": "db-pool"}
        seen["phase_during_shutdown"] = installation.health.phase

    app = FastAPI(lifespan=lifespan)

    @app.get("/state")
    async def state(request: Request):
        return {"resource": request.state.resource}

    installation = app_holder["installation"] = _install(app)
    client = TestClient(app)
    assert client.get("/readyz").status_code == 503  # no lifespan ran yet
    assert client.get("/readyz").json()["reason"] == "starting"
    with client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/state").json() == {"resource": "db-pool"}  # the app's own state kept
    assert seen == {"phase_during_startup": "starting", "phase_during_shutdown": "draining"}
    assert installation.health.phase == "stopped"


def test_a_failing_critical_check_fails_readiness_not_liveness() -> None:
    health = Health(service="svc", version="1")
    health.add("database", lambda: False)
    health.add("cache", lambda: False, critical=False)
    app = _app()
    _install(app, health=health)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "critical check failed: database"
        assert client.get("/livez").status_code == 200
        body = client.get("/health")
        assert body.status_code == 503 and body.json()["components"]["cache"]["critical"] is False


def test_two_apps_in_one_process_have_their_own_registries() -> None:
    first, second = _app(), _app()
    one, two = _install(first), _install(second)
    assert one.registry is not two.registry
    with TestClient(first) as a, TestClient(second) as b:
        a.get("/items/1")
        a.get("/items/1")
        b.get("/items/1")
    labels = {
        "http_request_method": "GET", "http_route": "/items/{item_id}",
        "http_response_status_code": "200", "url_scheme": "http", "error_type": "",
    }
    name = "http_server_request_duration_seconds_count"
    assert (metric_value(one.registry, name, labels), metric_value(two.registry, name, labels)) == (2, 1)


def test_installing_twice_returns_the_first_installation() -> None:
    app = _app()
    first = _install(app)
    assert _install(app) is first
    routes = [getattr(r, "path", None) for r in app.router.routes]
    assert routes.count("/livez") == 1 and routes.count("/metrics") == 1


def test_metrics_off_removes_the_endpoint_and_the_registry() -> None:
    for kwargs in ({"metrics": False}, {"settings": Settings(metrics_enabled=False)}):
        app = _app()
        installation = _install(app, **kwargs)
        assert installation.registry is None and installation.metrics_endpoint is None
        with TestClient(app) as client:
            assert client.get("/metrics").status_code == 404
            assert client.get("/items/1").status_code == 200


def test_metrics_endpoint_also_exposes_the_process_default_registry() -> None:
    from surefoot._core.catalogue import OUTBOX_DEAD_LETTERS

    with fresh_registry() as default:
        OUTBOX_DEAD_LETTERS.get(default).labels("sms.send").inc()
        app = _app()
        _install(app)
        with TestClient(app) as client:
            text = client.get("/metrics").text
    assert 'outbox_dead_letters_total{event_name="sms.send"} 1.0' in text


def test_starlette_app_and_a_health_prefix() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def catch_all(request):
        return PlainTextResponse("app")

    app = Starlette(routes=[Route("/{path:path}", catch_all)])
    _install(app, health_prefix="/_")
    with TestClient(app) as client:
        assert client.get("/_/livez").json()["status"] == "alive"  # not shadowed by the catch-all
        assert client.get("/metrics").status_code == 200
        assert client.get("/anything").text == "app"


def test_logging_false_leaves_logging_alone() -> None:
    from surefoot.logging import current_config

    installation = surefoot.install(_app(), logging=False)
    assert installation.logging is None and current_config() is None


def test_drain_seconds_reaches_the_health() -> None:
    assert _install(_app(), drain_seconds=7).health.drain_seconds == 7
    health = Health(service="s", version="v")
    assert _install(_app(), health=health, drain_seconds=3).health.drain_seconds == 3


@pytest.mark.parametrize(
    ("target", "kwargs", "match"),
    [
        (object(), {}, "FastAPI or Starlette"),
        (None, {"health_prefix": "nope"}, "health_prefix"),
        (None, {"drain_seconds": -1, "health": "make"}, "drain_seconds"),
    ],
)
def test_bad_arguments(target, kwargs, match) -> None:
    if kwargs.get("health") == "make":
        kwargs["health"] = Health(service="s", version="v")
    with pytest.raises(ConfigurationError, match=match):
        _install(target if target is not None else _app(), **kwargs)


def test_override_dependencies_restores_previous_overrides() -> None:
    app = FastAPI()

    def get_db():
        return "real-db"

    def get_current_user():
        return "real-user"

    from fastapi import Depends

    @app.get("/who")
    def who(db=Depends(get_db), user=Depends(get_current_user)):
        return {"db": db, "user": user}

    def earlier():
        return "earlier-user"

    app.dependency_overrides[get_current_user] = earlier
    client = TestClient(app)
    with override_dependencies(app, {get_db: lambda: "fake-db", get_current_user: {"id": 1}}):
        assert client.get("/who").json() == {"db": "fake-db", "user": {"id": 1}}
    assert client.get("/who").json() == {"db": "real-db", "user": "earlier-user"}
    assert app.dependency_overrides == {get_current_user: earlier}
    with pytest.raises(TypeError, match="dependency_overrides"), override_dependencies(client, {get_db: 1}):
        pass


def test_readme_quickstart_runs() -> None:
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = re.search(r"## Quickstart\s+```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    app = namespace["app"]
    with TestClient(app) as client, capture_logs() as logs:
        assert client.get("/customers/1").json()["name"] == "Ada"
        missing = client.get("/customers/2")
        assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
        assert client.get("/readyz").status_code == 200
    assert logs.one(event="customer_read")["email"] == "***.com"


def test_moved_probe_and_metrics_paths_stay_out_of_the_access_log() -> None:
    app = _app()
    installation = _install(app, health_prefix="/_", settings=Settings(metrics_path="/internal/metrics"))
    assert set(installation.settings.access_log_skip_paths) == {
        "/_/livez", "/_/readyz", "/_/health", "/internal/metrics",
    }
    with TestClient(app) as client, capture_logs() as logs:
        assert client.get("/_/health").status_code == 200
        assert client.get("/internal/metrics").status_code == 200
        client.get("/items/1")
    assert [line["route"] for line in logs.filter(event="http_request")] == ["/items/{item_id}"]


def test_health_check_metrics_land_in_the_app_registry() -> None:
    health = Health(service="s", version="v")
    health.add("database", lambda: None)
    app = _app()
    installation = _install(app, health=health)
    with TestClient(app) as client:
        client.get("/health")
        text = client.get("/metrics").text
    assert metric_value(installation.registry, "health_check_status", {"check": "database", "status": "healthy"}) == 1
    assert 'health_check_status{check="database",status="healthy"} 1.0' in text


def test_a_refused_install_changes_nothing() -> None:
    app = _app()
    routes_before = list(app.router.routes)
    with pytest.raises(ConfigurationError):
        _install(app, drain_seconds=-1)
    assert app.router.routes == routes_before and not hasattr(app.state, "surefoot")
    assert _install(app).health.drain_seconds == 0
