"""One trace from a signed webhook on uvicorn, through the outbox on PostgreSQL and a
separate dispatcher process, to the provider call, all received by an OTLP endpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from surefoot.testing import form_body, golden_twilio_inbound_sms, sign_twilio

from ..test_metrics_multiworker import free_port
from ._receivers import fake_provider, otlp_receiver

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
pytest.importorskip("opentelemetry.proto")

HERE = Path(__file__).resolve().parent
TOKEN = "tw-e2e-token"
SERVER, CONSUMER, CLIENT = 2, 5, 3  # OTLP SpanKind values


def _wait_until(predicate: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling other processes


def _env(base: dict[str, str], otlp: str, pg_url: str, provider: str, service: str) -> dict[str, str]:
    env = dict(base)
    env.update({
        "SUREFOOT_TRACING": "true",
        "SUREFOOT_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "TEST_DB_URL": pg_url,
        "TEST_TWILIO_TOKEN": TOKEN,
        "TEST_PROVIDER_URL": provider,
        "SUREFOOT_LOG_FORMAT": "json",
    })
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("fastapi_telemetry", [False, True], ids=["surefoot-server-span", "fastapi-telemetry"])
def test_webhook_to_provider_call_is_one_trace(
    tmp_path: Path, pg_url: str, subprocess_env: dict[str, str], fastapi_telemetry: bool
) -> None:
    import sqlalchemy as sa

    from surefoot import outbox, webhooks

    engine = sa.create_engine(pg_url)
    webhooks.create_tables(engine)
    outbox.create_tables(engine)
    with engine.begin() as conn:  # this test's rows only
        conn.execute(sa.text("DELETE FROM outbox_events"))
    engine.dispose()

    with otlp_receiver() as otlp, fake_provider() as provider:
        env = _env(subprocess_env, otlp.url, pg_url, provider.url, "web")
        env["TEST_FASTAPI_TELEMETRY"] = "1" if fastapi_telemetry else "0"
        port = free_port()
        with open(tmp_path / "web.log", "w") as log:
            web = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "_webapp:app", "--port", str(port), "--log-level", "warning"],
                cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                def up() -> bool:
                    if web.poll() is not None:
                        raise AssertionError("uvicorn died: " + (tmp_path / "web.log").read_text())
                    try:
                        return httpx.get(base + "/livez", timeout=1).status_code == 200
                    except httpx.TransportError:
                        return False

                _wait_until(up, 30, "uvicorn")
                path = "/webhooks/twilio/sms"
                params = golden_twilio_inbound_sms(MessageSid="SM" + uuid.uuid4().hex)  # a new delivery
                r = httpx.post(base + path, content=form_body(params), headers=sign_twilio(base + path, params, TOKEN),
                               timeout=10)
                assert r.status_code == 200, r.text
                worker = subprocess.run(
                    [sys.executable, str(HERE / "_worker.py"), "1"],
                    env=_env(subprocess_env, otlp.url, pg_url, provider.url, "worker"),
                    capture_output=True, text=True, timeout=120,
                )
                assert worker.returncode == 0, worker.stdout + worker.stderr
            finally:
                os.killpg(web.pid, signal.SIGTERM)  # the lifespan's shutdown flushes the web spans
                web.wait(timeout=30)

        names = {"webhook.twilio.sms_inbound", "outbox.dispatch", "conversation.first_reply", "POST"}
        _wait_until(lambda: names <= {s["name"] for s in otlp.received}, 20, "every span at the OTLP receiver")
        spans = list(otlp.received)
        calls = list(provider.received)
    assert len(calls) == 1, calls
    (provider_call,) = calls

    (hook,) = [s for s in spans if s["name"] == "webhook.twilio.sms_inbound"]
    trace = [s for s in spans if s["trace_id"] == hook["trace_id"]]
    by_id = {s["span_id"]: s for s in trace}

    (server,) = [s for s in trace if s["kind"] == SERVER]
    assert server["service"] == "web" and server["parent_id"] is None
    assert server["name"] == "POST /webhooks/twilio/sms"
    assert server["attributes"]["http.response.status_code"] == 200
    if fastapi_telemetry:
        assert server["attributes"]["correlation_id"]  # surefoot's ids on FastAPI's span
    if fastapi_telemetry:  # FastAPI's operation spans (endpoint, ...) may sit in between
        chain, node = [], hook
        while node["parent_id"] in by_id:
            node = by_id[node["parent_id"]]
            chain.append(node["span_id"])
        assert chain[-1] == server["span_id"]
    else:
        assert hook["parent_id"] == server["span_id"]
    assert hook["attributes"]["webhook.outcome"] == "new" and "outbox.add" in hook["events"]

    (dispatch,) = [s for s in trace if s["name"] == "outbox.dispatch"]
    assert dispatch["service"] == "worker" and dispatch["kind"] == CONSUMER
    assert dispatch["parent_id"] == hook["span_id"]
    assert dispatch["attributes"]["event_id"] == hook["attributes"]["event_id"]
    assert dispatch["attributes"]["event_name"] == "SmsReceived" and dispatch["attributes"]["attempts"] == 1
    assert dispatch["attributes"]["correlation_id"] == server["attributes"]["correlation_id"]
    assert dispatch["attributes"]["tenant_id"] == "acme"

    (reply,) = [s for s in trace if s["name"] == "conversation.first_reply"]
    assert reply["parent_id"] == dispatch["span_id"]
    (call,) = [s for s in trace if s["kind"] == CLIENT]
    assert call["parent_id"] == reply["span_id"] and call["attributes"]["http.response.status_code"] == 201
    # the fake provider received the client span's context
    assert provider_call["traceparent"].split("-")[1:3] == [call["trace_id"], call["span_id"]]
    # every span of the chain is in the one trace, each parent present
    for span in (hook, dispatch, reply, call):
        assert span["parent_id"] in by_id


def test_a_provider_failure_keeps_the_workers_trace_at_zero_head_sampling(
    tmp_path: Path, pg_url: str, subprocess_env: dict[str, str]
) -> None:
    """Head sampling keeps nothing (ratio 0); the failed delivery is still exported whole by
    the worker's tail keep, while the healthy web request is not."""
    import sqlalchemy as sa

    from surefoot import outbox, webhooks

    engine = sa.create_engine(pg_url)
    webhooks.create_tables(engine)
    outbox.create_tables(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM outbox_events"))
    engine.dispose()
    with otlp_receiver() as otlp, fake_provider(failing_status=503) as provider:
        env = _env(subprocess_env, otlp.url, pg_url, provider.url, "web")
        env["SUREFOOT_TRACING_SAMPLE_RATIO"] = "0"
        port = free_port()
        with open(tmp_path / "web.log", "w") as log:
            web = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "_webapp:app", "--port", str(port), "--log-level", "warning"],
                cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                def up() -> bool:
                    if web.poll() is not None:
                        raise AssertionError("uvicorn died: " + (tmp_path / "web.log").read_text())
                    try:
                        return httpx.get(base + "/livez", timeout=1).status_code == 200
                    except httpx.TransportError:
                        return False

                _wait_until(up, 30, "uvicorn")
                path = "/webhooks/twilio/sms"
                params = golden_twilio_inbound_sms(MessageSid="SM" + uuid.uuid4().hex)
                r = httpx.post(base + path, content=form_body(params), headers=sign_twilio(base + path, params, TOKEN),
                               timeout=10)
                assert r.status_code == 200, r.text
                worker_env = _env(subprocess_env, otlp.url, pg_url, provider.url, "worker")
                worker_env["SUREFOOT_TRACING_SAMPLE_RATIO"] = "0"
                worker = subprocess.run([sys.executable, str(HERE / "_worker.py"), "0"], env=worker_env,
                                        capture_output=True, text=True, timeout=120)
                assert worker.returncode == 0, worker.stdout + worker.stderr
            finally:
                os.killpg(web.pid, signal.SIGTERM)
                web.wait(timeout=30)
        _wait_until(lambda: {"outbox.dispatch", "POST"} <= {s["name"] for s in otlp.received}, 20, "worker spans")
        time.sleep(0.5)  # anything the web process might (wrongly) still send
        spans = list(otlp.received)
        attempts = len(provider.received)
    assert attempts == 3  # the policy retried the 503s
    assert {s["service"] for s in spans} == {"worker"}  # the healthy request was not kept
    (dispatch,) = [s for s in spans if s["name"] == "outbox.dispatch"]
    (reply,) = [s for s in spans if s["name"] == "conversation.first_reply"]
    (call,) = [s for s in spans if s["kind"] == CLIENT]
    assert reply["parent_id"] == dispatch["span_id"] and call["parent_id"] == reply["span_id"]
    assert {s["trace_id"] for s in (dispatch, reply, call)} == {dispatch["trace_id"]}
    assert dispatch["attributes"]["surefoot.tail_kept"] is True
    assert call["attributes"]["http.response.status_code"] == 503
    assert call["events"].count("http.attempt") == 3 and "retry.retry" in call["events"]
    ERROR = 2  # OTLP StatusCode
    assert dispatch["status"] == ERROR and call["status"] == ERROR
