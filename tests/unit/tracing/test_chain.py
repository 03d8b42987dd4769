"""Webhook → outbox → dispatcher → provider call, traced in one process (SQLite)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytest.importorskip("sqlalchemy")

import surefoot
from surefoot import outbox, tracing
from surefoot.testing import adrain, form_body, golden_twilio_inbound_sms, sign_twilio

TOKEN = "tw-token"
BASE = "http://testserver"


def _app(engine: Any, registry: Any, calls: list[Any]) -> Any:
    from starlette.applications import Starlette

    from surefoot.webhooks import TwilioVerifier, WebhookInbox

    app = Starlette()
    surefoot.install(app, registry=registry, logging=False)
    inbox = WebhookInbox(engine, registry=registry)

    @inbox.endpoint(app, "/webhooks/twilio/sms", verifier=TwilioVerifier(TOKEN))
    def sms_inbound(delivery: Any) -> None:  # sync: runs in a worker thread
        delivery.add_event("SmsReceived", {"from": delivery.form()["From"]}, tenant_id="acme")

    return app


def _provider(calls: list[Any]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503 if len(calls) == 1 else 201, json={"sid": "SM1"})

    return httpx.MockTransport(answer)


def _by_name(spans: Any, name: str) -> list[Any]:
    return [s for s in spans if s.name == name]


async def test_one_trace_from_webhook_to_provider_call(tmp_path: Any, exporter: Any, registry: Any) -> None:
    import sqlalchemy as sa

    from surefoot import webhooks
    from surefoot.resilience import aprovider_client, http_policy

    url = f"sqlite:///{tmp_path}/chain.db"
    engine = sa.create_engine(url)
    webhooks.create_tables(engine)
    outbox.create_tables(engine)
    calls: list[Any] = []
    app = _app(engine, registry, calls)
    params = golden_twilio_inbound_sms()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        path = "/webhooks/twilio/sms"
        r = await c.post(path, content=form_body(params), headers=sign_twilio(BASE + path, params, TOKEN))
        assert r.status_code == 200, r.text
        dup = await c.post(path, content=form_body(params), headers=sign_twilio(BASE + path, params, TOKEN))
        assert dup.status_code == 200
        bad = await c.post(path, content=form_body(params), headers=sign_twilio(BASE + path, params, "wrong"))
        assert bad.status_code == 401

    client = aprovider_client(
        "twilio", transport=_provider(calls), registry=registry, base_url="https://api.twilio.example",
        policy=http_policy("twilio", base_delay=0.0, max_delay=0.0),
        endpoints=["POST /Accounts/{sid}/Messages.json"],
    )

    async def first_reply(event: Any) -> None:
        with tracing.span("conversation.first_reply", event_id=event.event_id):
            response = await client.post("/Accounts/AC1/Messages.json?secret=x", data={"Body": "hi"})
            assert response.status_code == 201

    await adrain(url, handlers={"SmsReceived": first_reply})
    await client.aclose()
    engine.dispose()
    spans = exporter.get_finished_spans()

    webhook_spans = _by_name(spans, "webhook.twilio.sms_inbound")
    assert [s.attributes["webhook.outcome"] for s in webhook_spans] == ["new", "duplicate", "signature_failure"]
    hook = webhook_spans[0]
    assert hook.attributes["webhook.delivery_id"] and hook.attributes["webhook.provider"] == "twilio"
    (server,) = [s for s in spans if s.kind.name == "SERVER" and s.context.trace_id == hook.context.trace_id]
    assert hook.parent.span_id == server.context.span_id
    assert server.name == "POST /webhooks/twilio/sms"
    (added,) = [e for e in hook.events if e.name == "outbox.add"]
    event_id = added.attributes["event_id"]
    assert hook.attributes["event_id"] == event_id and added.attributes["event_name"] == "SmsReceived"

    (dispatch,) = _by_name(spans, "outbox.dispatch")
    assert dispatch.context.trace_id == hook.context.trace_id
    assert dispatch.parent.span_id == hook.context.span_id  # continued from the stored traceparent
    assert dispatch.kind.name == "CONSUMER"
    assert dispatch.attributes["event_id"] == event_id and dispatch.attributes["event_name"] == "SmsReceived"
    assert dispatch.attributes["attempts"] == 1 and dispatch.attributes["tenant_id"] == "acme"
    assert dispatch.attributes["correlation_id"] == server.attributes["correlation_id"]
    assert dispatch.attributes["causation_id"].startswith("twilio:")

    (reply,) = _by_name(spans, "conversation.first_reply")
    assert reply.parent.span_id == dispatch.context.span_id
    assert reply.attributes["causation_id"] == event_id  # what the handler writes points back at the event

    (call,) = [s for s in spans if s.kind.name == "CLIENT"]
    assert call.parent.span_id == reply.context.span_id
    assert call.name == "POST"
    assert call.attributes["http.response.status_code"] == 201
    assert call.attributes["url.full"] == "https://api.twilio.example/Accounts/AC1/Messages.json?secret=REDACTED"
    assert call.attributes["url.template"] == "/Accounts/{sid}/Messages.json"
    assert call.attributes["server.address"] == "api.twilio.example" and call.attributes["server.port"] == 443
    assert call.attributes["http.request.resend_count"] == 1
    events = [e.name for e in call.events]
    assert events.count("http.attempt") == 2 and "retry.retry" in events, events
    # the provider saw this client span as the parent of both attempts
    for request in calls:
        _, trace_id, parent_id, _ = request.headers["traceparent"].split("-")
        assert (trace_id, parent_id) == (f"{call.context.trace_id:032x}", f"{call.context.span_id:016x}")
    assert {s.context.trace_id for s in (server, hook, dispatch, reply, call)} == {hook.context.trace_id}


async def test_a_failing_handler_marks_the_dispatch_span(tmp_path: Any, exporter: Any) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path}/fail.db"
    engine = sa.create_engine(url)
    outbox.create_tables(engine)
    with engine.begin() as conn, tracing.span("writer"):
        outbox.add(conn, "Boom", {})
    engine.dispose()

    async def explode(event: Any) -> None:
        raise ValueError("provider said no")

    await adrain(url, handlers={"Boom": explode}, raise_errors=False)
    (dispatch,) = _by_name(exporter.get_finished_spans(), "outbox.dispatch")
    assert dispatch.status.status_code.name == "ERROR"
    assert dispatch.attributes["error.type"] == "ValueError"
    (writer,) = _by_name(exporter.get_finished_spans(), "writer")
    assert dispatch.parent.span_id == writer.context.span_id
