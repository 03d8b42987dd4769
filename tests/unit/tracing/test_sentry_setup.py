"""Sentry turned on by the environment with ``surefoot.install(app)``: what an event carries."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

pytest.importorskip("sentry_sdk")

import surefoot  # noqa: E402
from surefoot import tracing  # noqa: E402

from .test_sentry import _events, receiver  # noqa: F401  (the loopback Sentry receiver)


async def test_environment_turns_reporting_on_with_release_environment_and_ids(
    receiver: Any, registry: Any, monkeypatch: Any  # noqa: F811
) -> None:
    fastapi = pytest.importorskip("fastapi")
    monkeypatch.setenv("SUREFOOT_SENTRY_DSN", f"http://publickey@127.0.0.1:{receiver.server_address[1]}/7")
    monkeypatch.setenv("SUREFOOT_ENV", "production")
    monkeypatch.setenv("SUREFOOT_SERVICE_NAME", "billing")
    monkeypatch.setenv("SUREFOOT_SERVICE_VERSION", "1.4.2")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracing.setup_tracing(exporter=InMemorySpanExporter(), set_global=False, sample_ratio=1.0, registry=registry)
    app = fastapi.FastAPI(telemetry={"tracing": False})
    inside: list[tuple[str, str] | None] = []

    @app.post("/refunds")
    async def refund() -> dict[str, bool]:
        logging.getLogger("billing").error("refund gateway slow for carol@example.com")
        try:
            raise ConnectionError("gateway reset for carol@example.com")
        except ConnectionError as exc:
            inside.append(tracing.current_trace_ids())
            tracing.report_exception(exc)
        return {"queued": True}

    surefoot.install(app, registry=registry, logging=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/refunds", headers={"x-correlation-id": "corr-r1"})
    assert r.status_code == 200
    (event,) = _events(receiver)  # the error log line is a breadcrumb, not a second event
    assert event["environment"] == "production"
    assert event["release"] == "billing@1.4.2"
    assert event["tags"]["correlation_id"] == "corr-r1"
    assert (event["tags"]["trace_id"], event["tags"]["span_id"]) == inside[0]
    (exc,) = event["exception"]["values"]
    assert exc["type"] == "ConnectionError"
    text = json.dumps(event)
    assert "carol@example.com" not in text
    assert "refund gateway slow" in text  # the log line, as a breadcrumb
    assert all("vars" not in frame for frame in exc["stacktrace"]["frames"])  # no frame locals


def test_a_malformed_dsn_in_the_environment_stops_install(monkeypatch: Any, registry: Any) -> None:
    fastapi = pytest.importorskip("fastapi")
    from surefoot.errors import ConfigurationError

    monkeypatch.setenv("SUREFOOT_SENTRY_DSN", "sentry.example.com/42")
    with pytest.raises(ConfigurationError, match="SUREFOOT_SENTRY_DSN is not a Sentry DSN"):
        surefoot.install(fastapi.FastAPI(), registry=registry, logging=False)


def test_your_before_send_sees_the_scrubbed_event(receiver: Any) -> None:  # noqa: F811
    seen: list[dict[str, Any]] = []

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(event)
        return None  # and may drop it

    tracing.setup_sentry(f"http://publickey@127.0.0.1:{receiver.server_address[1]}/7", before_send=before_send)
    tracing.report_exception(ValueError("bad number +14155550123"))
    assert _events(receiver) == []
    (event,) = seen
    assert "+14155550123" not in json.dumps(event)
