"""Sentry reporting against a loopback HTTP receiver speaking Sentry's envelope endpoint."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

sentry_sdk = pytest.importorskip("sentry_sdk")

import surefoot  # noqa: E402
from surefoot import tracing  # noqa: E402


class _Envelopes(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:
        return None

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        encoding = self.headers.get("content-encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        lines = body.split(b"\n")
        header = json.loads(lines[0])
        items = []
        i = 1
        while i + 1 < len(lines) and lines[i]:
            item_header = json.loads(lines[i])
            items.append((item_header, json.loads(lines[i + 1]) if item_header.get("type") == "event" else None))
            i += 2
        self.server.envelopes.append({"path": self.path, "auth": self.headers.get("x-sentry-auth"),
                                      "header": header, "items": items})
        self.send_response(200)
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Envelopes)
    server.envelopes = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    tracing.reset_sentry()
    server.shutdown()
    server.server_close()


def _events(server: Any) -> list[dict[str, Any]]:
    sentry_sdk.flush(timeout=5)
    return [payload for env in server.envelopes for head, payload in env["items"] if head.get("type") == "event"]


async def test_unhandled_exception_is_reported_once_tagged_and_scrubbed(
    receiver: Any, exporter: Any, registry: Any
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def checkout(request: Any) -> Any:
        card_holder = "alice@example.com"
        raise RuntimeError(f"charge failed for {card_holder} at +14155550123")

    app = Starlette(routes=[Route("/checkout", checkout, methods=["POST"])])
    surefoot.install(app, registry=registry, logging=False)
    tracing.setup_sentry(f"http://publickey@127.0.0.1:{receiver.server_address[1]}/42")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/checkout", headers={"x-correlation-id": "corr-s1", "x-tenant-id": "acme",
                                                "authorization": "Bearer sk_live_123"})
    assert r.status_code == 500
    events = _events(receiver)
    assert len(events) == 1, events
    (event,) = events
    assert receiver.envelopes[0]["path"] == "/api/42/envelope/"
    tags = event["tags"]
    assert tags["correlation_id"] == "corr-s1" and tags["tenant_id"] == "acme"
    (server,) = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert tags["trace_id"] == format(server.context.trace_id, "032x")
    text = json.dumps(event)
    assert "alice@example.com" not in text and "+14155550123" not in text and "sk_live_123" not in text
    (exc,) = event["exception"]["values"]
    assert exc["type"] == "RuntimeError" and "charge failed" in exc["value"]


def test_reporting_is_off_by_default_and_needs_a_dsn(monkeypatch: Any) -> None:
    from surefoot.errors import ConfigurationError
    from surefoot.tracing._api import STATE

    assert STATE.reporter is None
    tracing.report_exception(RuntimeError("nobody listens"))  # a no-op, never raises
    monkeypatch.delenv("SUREFOOT_SENTRY_DSN", raising=False)
    with pytest.raises(ConfigurationError, match="SUREFOOT_SENTRY_DSN"):
        tracing.setup_sentry()


def test_a_malformed_dsn_is_refused_naming_where_it_came_from(monkeypatch: Any) -> None:
    from surefoot.errors import ConfigurationError
    from surefoot.tracing._api import STATE

    with pytest.raises(ConfigurationError, match=r"^dsn is not a Sentry DSN.*https://<key>@"):
        tracing.setup_sentry("sentry.example.com/42")
    monkeypatch.setenv("SUREFOOT_SENTRY_DSN", "key@sentry.example.com/42")
    with pytest.raises(ConfigurationError, match="SUREFOOT_SENTRY_DSN is not a Sentry DSN"):
        tracing.setup_sentry()
    assert STATE.reporter is None


def test_scrub_event_masks_text_and_secrets_but_keeps_ids() -> None:
    event = {
        "event_id": "abc123", "tags": {"correlation_id": "c-1"},
        "request": {"headers": {"Authorization": "Bearer t0ken", "Cookie": "s=1"}, "query_string": "to=bob@example.org"},
        "breadcrumbs": {"values": [{"message": "sms to +442071838750 sent"}]},
        "extra": {"scope_headers": [["b'x-api-key'", "b'k-998877'"], ["b'accept'", "b'*/*'"]]},
    }
    out = tracing.scrub_event(event)
    assert out["event_id"] == "abc123" and out["tags"] == {"correlation_id": "c-1"}
    text = json.dumps(out)
    for secret in ("t0ken", "s=1", "bob@example.org", "+442071838750", "k-998877"):
        assert secret not in text
    assert out["extra"]["scope_headers"][1] == ["b'accept'", "b'*/*'"]
