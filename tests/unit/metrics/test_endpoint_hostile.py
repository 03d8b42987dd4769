"""The metrics endpoint of an installed FastAPI app against what scrapers and attackers send:
Accept headers of every shape, malformed credentials, forged forwarding headers."""

from __future__ import annotations

import base64

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

import surefoot
from surefoot.errors import ConfigurationError
from surefoot.metrics import metrics_app

PROMETHEUS_SCRAPE = (
    "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    surefoot.install(app)
    return app


def _client(app, client_addr=("127.0.0.1", 4321)) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client_addr)
    return httpx.AsyncClient(transport=transport, base_url="http://service")


def _kind(resp: httpx.Response) -> str:
    """What the body really is, judged from the body alone."""
    if resp.content.startswith(b"{"):
        resp.json()
        return "json"
    if resp.text.rstrip().endswith("# EOF"):
        return "openmetrics"
    return "text"


def _declared(content_type: str) -> str:
    if content_type == "application/json":
        return "json"
    if content_type.startswith("application/openmetrics-text"):
        return "openmetrics"
    assert content_type.startswith("text/plain; version=")
    return "text"


@pytest.mark.parametrize(
    "accept,expected",
    [
        (PROMETHEUS_SCRAPE, "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"),
        ("application/openmetrics-text", OPENMETRICS),
        ("application/openmetrics-text; version=1.0.0", OPENMETRICS + "; escaping=underscores"),
        ("", TEXT),
        ("*/*", TEXT),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", TEXT),
        ("text/plain;version=0.0.4", TEXT),
        ("application/json", "application/json"),
        ("APPLICATION/JSON; charset=utf-8", "application/json"),
        ("text/html, application/json", "application/json"),
        # the highest q wins, whatever the order
        ("text/plain;q=0.1, application/json", "application/json"),
        ("application/json;q=0.5, application/openmetrics-text", OPENMETRICS),
        # q=0 means "not this one"
        ("application/json;q=0", TEXT),
        ("application/openmetrics-text;q=0, application/json;q=0.1", "application/json"),
        # versions this endpoint cannot write are not served under their name
        ("application/openmetrics-text; version=9.9.9", TEXT),
        ("application/openmetrics-text; version=0.0.1, application/json;q=0.2", "application/json"),
        # an escaping prometheus_client does not know falls back to underscores
        ("application/openmetrics-text; version=1.0.0; escaping=\"x", OPENMETRICS + "; escaping=underscores"),
    ],
)
async def test_accept_headers_choose_the_format(accept: str, expected: str) -> None:
    async with _client(_app()) as c:
        await c.get("/ok")
        resp = await c.get("/metrics", headers={"Accept": accept})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == expected
    assert _kind(resp) == _declared(expected)


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=abc",
        "application/openmetrics-text; version=1.\xff",
        "text/plain; version=x",
        "text/plain; version=",
        "application/json;q=abc",
        "application/json;q=nan",
        "application/json;q=inf",
        "application/json;q=-1",
        ";;;,,,;=;=,",
        "\xff\xfe",
        "application/openmetrics-text; version=1.0.0.0.0",
    ],
)
async def test_malformed_accept_headers_get_prometheus_text_not_a_500(accept: str) -> None:
    async with _client(_app()) as c:
        resp = await c.get("/metrics", headers=[(b"accept", accept.encode("latin-1"))])
    assert resp.status_code == 200
    assert resp.headers["content-type"] == TEXT
    assert _kind(resp) == "text"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["application/json", "application/openmetrics-text", "text/plain", "*/*",
                             "text/html", "application/*", "", "garbage"]),
            st.lists(
                st.tuples(st.sampled_from(["q", "version", "escaping", "charset", "x"]),
                          st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters=","),
                                  max_size=8)),
                max_size=3,
            ),
        ),
        max_size=5,
    )
)
async def test_any_accept_header_gets_a_body_of_the_declared_type(ranges) -> None:
    accept = ",".join(media + "".join(f";{k}={v}" for k, v in params) for media, params in ranges)
    registry = CollectorRegistry()
    Counter("jobs", "jobs", registry=registry).inc()
    async with _client(metrics_app([registry])) as c:
        resp = await c.get("/metrics", headers=[(b"accept", accept.encode("latin-1"))])
    assert resp.status_code == 200
    assert _kind(resp) == _declared(resp.headers["content-type"])


async def test_format_json_wins_over_the_accept_header() -> None:
    async with _client(_app()) as c:
        await c.get("/ok")
        resp = await c.get("/metrics?format=json", headers={"Accept": PROMETHEUS_SCRAPE})
    body = resp.json()
    assert resp.headers["content-type"] == "application/json"
    assert set(body) == {"module", "mode", "requests_total", "errors_total", "error_rate_percent",
                         "status_codes", "top_routes", "routes_tracked"}
    assert body["top_routes"][0]["path"] == "/ok" and body["requests_total"] == 1


def _auth(value: str | bytes) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", value if isinstance(value, bytes) else value.encode("latin-1"))]


GOOD = "Basic " + base64.b64encode("prom:s3cr\u00e9t".encode()).decode()


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic ",
        "Bearer " + GOOD.split()[1],
        GOOD.split()[1],
        "Basic " + base64.b64encode(b"prom").decode(),
        "Basic " + base64.b64encode(b"prom:").decode(),
        "Basic " + base64.b64encode(b":s3cret").decode(),
        "Basic " + base64.b64encode(b"prom:s3cr\xe9t").decode(),  # the password in latin-1
        "Basic " + base64.b64encode("prom:s3cr\u00e9t ".encode()).decode(),
        GOOD + "x",
        GOOD[:-1],
        "Basic " + "A" * 10_000,
        b"Basic \xff\xfe",
        "Basic\t" + GOOD.split()[1],
        "Digest username=prom",
    ],
)
async def test_malformed_or_wrong_credentials_get_401_with_a_challenge(header) -> None:
    app = metrics_app(username="prom", password="s3cr\u00e9t")
    async with _client(app) as c:
        resp = await c.get("/metrics", headers=_auth(header))
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Basic realm="metrics", charset="UTF-8"'
    assert resp.headers["content-type"] == "application/problem+json"


async def test_utf8_credentials_and_any_scheme_case_are_accepted() -> None:
    app = metrics_app(username="prom", password="s3cr\u00e9t")
    async with _client(app) as c:
        for header in (GOOD, GOOD.replace("Basic", "BASIC"), GOOD.replace("Basic ", "Basic   ")):
            assert (await c.get("/metrics", headers=_auth(header))).status_code == 200


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
async def test_no_authorization_value_but_the_right_one_gets_in(raw: bytes) -> None:
    app = metrics_app(username="prom", password="s3cret")
    good = b"Basic " + base64.b64encode(b"prom:s3cret")
    header = raw.replace(b"\r", b"").replace(b"\n", b"")
    async with _client(app) as c:
        resp = await c.get("/metrics", headers=_auth(header))
        forged = await c.get("/metrics", headers=_auth(b"Basic " + base64.b64encode(raw)))
    assert resp.status_code == (200 if header.strip() == good else 401)
    assert forged.status_code == (200 if raw == b"prom:s3cret" else 401)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-For": "10.1.2.3"},
        {"X-Forwarded-For": "10.1.2.3, 203.0.113.9"},
        {"X-Real-IP": "10.1.2.3"},
        {"Forwarded": "for=10.1.2.3"},
        {"X-Client-IP": "10.1.2.3", "True-Client-IP": "10.1.2.3", "CF-Connecting-IP": "10.1.2.3"},
    ],
)
async def test_forwarding_headers_do_not_get_past_the_allow_list(
    monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    monkeypatch.setenv("SUREFOOT_METRICS_ALLOW_IPS", "10.0.0.0/8,127.0.0.1")
    app = _app()
    async with _client(app, ("203.0.113.9", 5555)) as c:
        spoofed = await c.get("/metrics", headers=headers)
        json = await c.get("/metrics?format=json", headers=headers)
    assert spoofed.status_code == 403 and json.status_code == 403
    assert spoofed.headers["content-type"] == "application/problem+json"
    assert "http_server" not in spoofed.text
    async with _client(app, ("10.9.8.7", 5555)) as c:
        assert (await c.get("/metrics")).status_code == 200


@pytest.mark.parametrize(
    "client,status",
    [
        (("::ffff:10.1.2.3", 1), 200),  # an IPv4 client seen through a dual-stack socket
        (("::ffff:192.0.2.1", 1), 403),
        (("2001:db8::5", 1), 200),
        (("2001:db9::5", 1), 403),
        (("testclient", 1), 403),  # not an address
        (("", 1), 403),
        (None, 403),
    ],
)
async def test_allow_list_networks(client, status) -> None:
    app = metrics_app(allow_ips=["10.0.0.0/8", "2001:db8::/32"])
    transport = httpx.ASGITransport(app=app, client=client) if client else httpx.ASGITransport(app=app)
    if client is None:
        async def no_client(scope, receive, send):
            scope = dict(scope)
            scope.pop("client", None)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=no_client)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as c:
        assert (await c.get("/metrics")).status_code == status


async def test_allow_list_and_credentials_together() -> None:
    app = metrics_app(username="prom", password="pw", allow_ips="10.0.0.0/8, 127.0.0.1")
    auth = {"Authorization": "Basic " + base64.b64encode(b"prom:pw").decode()}
    async with _client(app, ("192.0.2.1", 1)) as c:
        assert (await c.get("/metrics", headers=auth)).status_code == 403
    async with _client(app, ("10.0.0.1", 1)) as c:
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get("/metrics", headers=auth)).status_code == 200


async def test_metrics_app_takes_its_arguments_in_the_documented_order() -> None:
    registry = CollectorRegistry()
    Counter("jobs", "jobs", registry=registry).inc(3)
    other = CollectorRegistry()
    Counter("jobs", "duplicate family", registry=other).inc(7)
    app = metrics_app([registry, other], None, "prom", "pw", ["127.0.0.1"])
    auth = {"Authorization": "Basic " + base64.b64encode(b"prom:pw").decode()}
    async with _client(app) as c:
        text = (await c.get("/metrics", headers=auth)).text
    assert text.count("# TYPE jobs_total counter") == 1 and "jobs_total 3.0" in text
    async with _client(metrics_app(registry)) as c:  # one registry on its own
        assert "jobs_total 3.0" in (await c.get("/metrics")).text


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"username": "pro:m", "password": "pw"}, "':'"),
        ({"username": "prom", "password": "  "}, "empty"),
        ({"registries": ["not a registry"]}, "collect"),
        ({"allow_ips": "10.0.0.0/8,example.com"}, "example.com"),
    ],
)
def test_bad_endpoint_configuration_names_the_fix(kwargs, match) -> None:
    with pytest.raises(ConfigurationError, match=match):
        metrics_app(**kwargs)


async def test_a_websocket_to_a_mounted_endpoint_is_refused_without_a_server_error() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    app = Starlette(routes=[Mount("/metrics", app=metrics_app())])
    with TestClient(app) as client, pytest.raises(WebSocketDisconnect) as refused, \
            client.websocket_connect("/metrics/"):
        pass
    assert refused.value.code == 1008
    with TestClient(app) as client:
        assert client.get("/metrics/").status_code == 200


async def test_several_accept_fields_are_read_as_one_list() -> None:
    async with _client(_app()) as c:
        resp = await c.get("/metrics", headers=[(b"accept", b"text/plain;q=0.2"), (b"accept", b"application/json")])
    assert resp.headers["content-type"] == "application/json"


async def test_installed_endpoint_takes_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUREFOOT_METRICS_USERNAME", "prom")
    monkeypatch.setenv("SUREFOOT_METRICS_PASSWORD", "pw")
    app = _app()
    auth = {"Authorization": "Basic " + base64.b64encode(b"prom:pw").decode()}
    async with _client(app) as c:
        await c.get("/ok")
        refused = await c.get("/metrics?format=json")
        text = await c.get("/metrics", headers=auth)
        summary = await c.get("/metrics", headers={**auth, "Accept": "application/json"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic ")
    assert text.status_code == 200 and "http_server_request_duration_seconds_count" in text.text
    assert summary.json()["requests_total"] == 1
