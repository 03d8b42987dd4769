"""The metrics endpoint: formats, negotiation, auth, allow-list, registry union."""

from __future__ import annotations

import base64

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from surefoot._core.settings import Settings
from surefoot._core.state import set_default_registry
from surefoot.errors import ConfigurationError
from surefoot.http import install_http
from surefoot.metrics import metrics_app


def client(app, client_addr=("127.0.0.1", 1234)):
    transport = httpx.ASGITransport(app=app, client=client_addr)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def traffic(registry):
    async def ok(request):
        return PlainTextResponse("ok")

    async def fail(request):
        return PlainTextResponse("no", status_code=500)

    app = Starlette(routes=[Route("/ok", ok), Route("/fail", fail)])
    install_http(app, registry=registry, access_log=False)
    async with client(app) as c:
        for _ in range(3):
            await c.get("/ok")
        await c.get("/fail")
        await c.get("/missing")


async def test_prometheus_text_by_default(registry):
    await traffic(registry)
    async with client(metrics_app(registries=[registry])) as c:
        resp = await c.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'http_server_request_duration_seconds_count{error_type="",http_request_method="GET",' \
           'http_response_status_code="200",http_route="/ok",url_scheme="http"} 3.0' in resp.text


async def test_openmetrics_when_asked(registry):
    await traffic(registry)
    async with client(metrics_app(registries=[registry])) as c:
        resp = await c.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.text.rstrip().endswith("# EOF")


@pytest.mark.parametrize("how", ["accept", "query"])
async def test_json_summary(registry, how):
    await traffic(registry)
    app = metrics_app(registries=[registry], settings=Settings(service_name="billing"))
    async with client(app) as c:
        if how == "accept":
            resp = await c.get("/metrics", headers={"Accept": "application/json"})
        else:
            resp = await c.get("/metrics?format=json")
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["module"] == "billing" and body["mode"] == "standalone"
    assert body["requests_total"] == 5 and body["errors_total"] == 1
    assert body["error_rate_percent"] == 20.0
    assert body["status_codes"] == {"200": 3, "404": 1, "500": 1}
    assert [r["path"] for r in body["top_routes"]] == ["/ok", "/fail"]
    assert body["top_routes"][0]["count"] == 3 and body["top_routes"][1]["errors"] == 1
    assert body["routes_tracked"] == 2


async def test_default_registry_and_union_without_duplicates(registry):
    domain = CollectorRegistry()
    set_default_registry(domain)
    Counter("outbox_dispatch_attempts", "x", registry=domain).inc(2)
    await traffic(registry)
    # The app registry listed twice, and the default registry: each family once.
    app = metrics_app(registries=[registry, registry, domain])
    async with client(app) as c:
        text = (await c.get("/")).text
    assert text.count("# TYPE http_server_request_duration_seconds histogram") == 1
    assert "outbox_dispatch_attempts_total 2.0" in text
    async with client(metrics_app()) as c:  # default: the process default registry
        assert "outbox_dispatch_attempts_total 2.0" in (await c.get("/")).text


async def test_basic_auth(registry):
    app = metrics_app(registries=[registry], username="prom", password="s3cret")
    good = "Basic " + base64.b64encode(b"prom:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"prom:wrong").decode()
    async with client(app) as c:
        missing = await c.get("/metrics")
        wrong = await c.get("/metrics", headers={"Authorization": bad})
        garbage = await c.get("/metrics", headers={"Authorization": "Basic !!!"})
        ok = await c.get("/metrics", headers={"Authorization": good})
        lower = await c.get("/metrics", headers={"Authorization": good.replace("Basic", "basic")})
    for resp in (missing, wrong, garbage):
        assert resp.status_code == 401
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.headers["www-authenticate"].startswith("Basic")
        assert resp.json()["code"] == "AUTHENTICATION_REQUIRED"
    assert ok.status_code == 200 and lower.status_code == 200


async def test_ip_allow_list(registry):
    app = metrics_app(registries=[registry], allow_ips=["10.0.0.0/8", "::1", "192.168.1.7"])
    async with client(app, ("10.2.3.4", 5)) as c:
        assert (await c.get("/")).status_code == 200
    async with client(app, ("192.168.1.7", 5)) as c:
        assert (await c.get("/")).status_code == 200
    async with client(app, ("172.16.0.1", 5)) as c:
        denied = await c.get("/")
    assert denied.status_code == 403 and denied.json()["code"] == "FORBIDDEN"


async def test_settings_configure_protection(registry):
    settings = Settings(metrics_username="u", metrics_password="p", metrics_allow_ips=["127.0.0.0/8"])
    app = metrics_app(registries=[registry], settings=settings)
    auth = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    async with client(app, ("127.0.0.1", 1)) as c:
        assert (await c.get("/")).status_code == 401
        assert (await c.get("/", headers=auth)).status_code == 200
    async with client(app, ("8.8.8.8", 1)) as c:
        assert (await c.get("/", headers=auth)).status_code == 403


@pytest.mark.parametrize(
    "kwargs,match",
    [({"username": "only"}, "both"), ({"allow_ips": ["10.0.0.0/33"]}, "CIDR"), ({"allow_ips": ["host"]}, "CIDR")],
)
def test_bad_configuration(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        metrics_app(**kwargs)


async def test_methods_and_mounting(registry):
    await traffic(registry)
    app = Starlette(routes=[Mount("/metrics", app=metrics_app(registries=[registry]))])
    async with client(app) as c:
        head = await c.head("/metrics/")
        post = await c.post("/metrics/")
    assert head.status_code == 200 and head.content == b""
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
