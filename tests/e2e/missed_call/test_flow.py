"""Missed call → first SMS through the real processes: flow, replays, opt-out, compliance gate,
kill switch, unknown number, template errors, status callbacks."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from surefoot.testing import form_body, sign_twilio

from .conftest import Service, new_number, wait_until

pytestmark = pytest.mark.slow


def _log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_missed_call_becomes_first_sms_with_events_and_masked_logs(shared_service: Service) -> None:
    svc = shared_service
    number, caller = new_number(), new_number("+1650555")
    tenant = svc.add_tenant(number)
    call = svc.simulator(number).call(from_=caller, status="no-answer")
    assert call.status_code == 200

    message = wait_until(lambda: [m for m in svc.messages(tenant) if m["status"] == "delivered"], what="delivery")[0]
    assert message["to_number"] == caller and message["twilio_sid"].startswith("SM")
    assert message["body"] == "Sorry we missed your call! Acme Plumbing will text you here shortly."
    sent = [m for m in svc.fake.messages if m.to == caller]
    assert len(sent) == 1 and sent[0].from_ == "+15005550006" and sent[0].callbacks == ["sent", "delivered"]

    events = {e["event_name"]: e for e in svc.rows(
        "SELECT * FROM outbox_events WHERE tenant_id = :t", t=tenant)}
    detected = events["CallDetected"]
    payload = json.loads(detected["payload"])
    assert payload["schema_version"] == 1 and payload["call_sid"] == call.call_sid and payload["caller"] == caller
    assert detected["correlation_id"] and detected["causation_id"].startswith("twilio:")
    reply = json.loads(events["FirstReplySent"]["payload"])
    assert reply["twilio_sid"] == message["twilio_sid"] and 0 <= reply["latency_seconds"] < 5
    # FirstReplySent is caused by the send, which was caused by CallDetected
    assert events["FirstReplySent"]["correlation_id"] == detected["correlation_id"]

    # Log lines reach a pipe within SUREFOOT_LOG_BUFFER_MS (100 ms), as a log shipper sees them.
    queued = wait_until(
        lambda: next((line for line in _log_lines(svc.output("worker")) if line["event"] == "first_sms_queued"
                      and line.get("message_id") == message["id"]), None),
        what="the first_sms_queued log line",
    )
    logs = svc.output("web") + svc.output("worker")
    assert caller not in logs and caller[1:] not in logs  # E.164 masked in every line
    assert queued["contact"] == "***" + caller[-4:] and queued["tenant_id"] == tenant


@pytest.mark.parametrize(("call_status", "texted"), [
    ("no-answer", True), ("busy", True), ("failed", True),
    ("completed", False), ("canceled", False), ("ringing", False),
])
def test_classification_is_table_driven(shared_service: Service, call_status: str, texted: bool) -> None:
    svc = shared_service
    number = new_number()
    tenant = svc.add_tenant(number)
    caller = new_number("+1650555")
    assert svc.simulator(number).call(from_=caller, status=call_status, duration=3).status_code == 200
    if texted:
        wait_until(lambda: [m for m in svc.messages(tenant) if m["status"] in ("queued", "sent", "delivered")],
                   what="the first SMS")
    else:
        # a later missed call of the same tenant is texted, so the worker has looked at this one
        svc.simulator(number).call(from_=new_number("+1650555"), status="busy")
        wait_until(lambda: len(svc.messages(tenant)) == 1, what="the control message")
        assert all(m["to_number"] != caller for m in svc.messages(tenant))
    outcome = svc.scalar("SELECT outcome FROM calls WHERE tenant_id = :t AND caller = :c", t=tenant, c=caller)
    assert outcome == {"completed": "answered", "canceled": "answered", "ringing": None}.get(call_status, "missed")


def test_unknown_number_is_a_200_no_op_with_a_warning(shared_service: Service) -> None:
    svc = shared_service
    unknown = new_number("+1212555")
    call = svc.simulator(unknown).call(status="no-answer")
    assert call.status_code == 200
    assert svc.scalar("SELECT count(*) FROM calls WHERE called = :n", n=unknown) == 0
    assert svc.scalar("SELECT status FROM webhook_events WHERE payload LIKE :k", k=f"%{call.call_sid}%") == "ignored"
    warning = wait_until(lambda: [line for line in _log_lines(svc.output("web"))
                                  if line["event"] == "call_for_unknown_number" and line.get("call_sid") == call.call_sid],
                         what="the WARN line")[0]
    assert warning["level"] == "warning" and warning["called"] == "***" + unknown[-4:]


def test_forged_signature_is_refused_with_problem_json(shared_service: Service) -> None:
    svc = shared_service
    sim = svc.simulator(new_number())
    params = sim.voice_params(status="no-answer")
    headers = {**sign_twilio(sim.voice_url, params, "not-the-token"), "Content-Type": "application/x-www-form-urlencoded"}
    response = httpx.post(sim.voice_url, content=form_body(params), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["reason"] == "mismatch"


def test_replays_sequential_and_concurrent_give_one_inbox_row_and_one_sms(shared_service: Service) -> None:
    svc = shared_service
    number, caller = new_number(), new_number("+1650555")
    tenant = svc.add_tenant(number)
    sim = svc.simulator(number)
    params = sim.voice_params(from_=caller, status="no-answer")
    statuses = [sim.post(sim.voice_url, params).status_code for _ in range(5)]
    with ThreadPoolExecutor(5) as pool:
        statuses += list(pool.map(lambda _: sim.post(sim.voice_url, params).status_code, range(5)))
    assert statuses == [200] * 10
    wait_until(lambda: [m for m in svc.messages(tenant) if m["status"] == "delivered"], what="delivery")
    inbox = svc.scalar("SELECT count(*) FROM webhook_events WHERE payload LIKE :k", k=f"%{params['CallSid']}%")
    assert inbox == 1
    assert svc.scalar("SELECT count(*) FROM outbox_events WHERE tenant_id = :t AND event_name = 'CallDetected'",
                      t=tenant) == 1
    assert len(svc.messages(tenant)) == 1
    assert len([m for m in svc.fake.messages if m.to == caller]) == 1


def test_stop_opts_out_and_start_opts_back_in(shared_service: Service) -> None:
    svc = shared_service
    number, caller = new_number(), new_number("+1650555")
    tenant = svc.add_tenant(number)
    sim = svc.simulator(number)
    assert sim.sms(caller, number, "stop please").status_code == 200
    assert svc.scalar("SELECT keyword FROM opt_outs WHERE tenant_id = :t AND phone = :p", t=tenant, p=caller) == "STOP"
    sim.call(from_=caller, status="no-answer")
    message = wait_until(lambda: svc.messages(tenant), what="the message row")[0]
    assert message["status"] == "suppressed_opt_out"
    assert sim.sms(caller, number, "HELP").status_code == 200  # logged, ledger unchanged
    assert svc.scalar("SELECT count(*) FROM opt_outs WHERE tenant_id = :t", t=tenant) == 1

    assert sim.sms(caller, number, "START").status_code == 200
    sim.call(from_=caller, status="busy")
    wait_until(lambda: [m for m in svc.messages(tenant) if m["status"] in ("queued", "sent", "delivered")],
               what="the SMS after START")
    assert len([m for m in svc.fake.messages if m.to == caller]) == 1  # only after opting back in


def test_twilio_21610_records_the_opt_out_and_never_retries(shared_service: Service) -> None:
    svc = shared_service
    number, caller = new_number(), new_number("+1650555")
    tenant = svc.add_tenant(number)
    svc.fake.opted_out.add(caller)  # replied STOP to Twilio directly
    svc.simulator(number).call(from_=caller, status="no-answer")
    message = wait_until(lambda: [m for m in svc.messages(tenant) if m["status"] == "suppressed_opt_out"],
                         what="suppression")[0]
    assert "21610" in message["error"] and message["send_attempts"] == 1
    assert svc.scalar("SELECT count(*) FROM opt_outs WHERE tenant_id = :t AND phone = :p", t=tenant, p=caller) == 1


def test_compliance_gate_blocks_until_approval_releases(shared_service: Service) -> None:
    svc = shared_service
    number, caller = new_number(), new_number("+1650555")
    tenant = svc.add_tenant(number, compliance="pending")
    svc.simulator(number).call(from_=caller, status="no-answer")
    wait_until(lambda: [m for m in svc.messages(tenant) if m["status"] == "blocked_compliance"], what="blocked")
    assert not [m for m in svc.fake.messages if m.to == caller]
    with svc.stack.admin() as admin:
        assert admin.put(f"/admin/tenants/{tenant}/compliance", json={"status": "approved"}).status_code == 200
        assert admin.put("/admin/tenants/nobody/compliance", json={"status": "approved"}).status_code == 404
    wait_until(lambda: [m for m in svc.messages(tenant) if m["status"] in ("queued", "sent", "delivered")],
               what="release after approval")
    assert len([m for m in svc.fake.messages if m.to == caller]) == 1


def test_template_with_a_missing_variable_fails_fast(shared_service: Service) -> None:
    svc = shared_service
    with svc.stack.admin() as admin:
        refused = admin.post("/admin/tenants", json={"tenant_id": "badtpl", "business_name": "X",
                                                     "phone": new_number(), "first_reply_template": "Hi {first_name}"})
    assert refused.status_code == 400 and "first_name" in refused.json()["detail"]
    # a template that went bad in the database: the handler fails fast, no retries, no SMS
    number, caller = new_number(), new_number("+1650555")
    tenant = svc.add_tenant(number)
    with svc.engine.begin() as conn:
        import sqlalchemy as sa

        conn.execute(sa.text("UPDATE tenants SET first_reply_template = 'Hi {first_name}' WHERE tenant_id = :t"),
                     {"t": tenant})
    svc.simulator(number).call(from_=caller, status="no-answer")
    message = wait_until(lambda: [m for m in svc.messages(tenant) if m["status"] == "template_error"],
                         what="template_error")[0]
    assert "first_name" in message["error"] and "available: business_name, caller_last4" in message["error"]
    assert svc.scalar("SELECT count(*) FROM outbox_dead_letters WHERE tenant_id = :t", t=tenant) == 0
    assert not [m for m in svc.fake.messages if m.to == caller]
    line = wait_until(lambda: next((x for x in _log_lines(svc.output("worker")) if x["event"] == "template_render_failed"
                                    and x.get("message_id") == message["id"]), None), what="the error line")
    assert line["level"] == "error"


def test_status_callbacks_move_a_message_forward_once(shared_service: Service) -> None:
    svc = shared_service
    number, caller = new_number(), new_number("+1650555")
    tenant = svc.add_tenant(number)
    svc.simulator(number).call(from_=caller, status="no-answer")
    message = wait_until(lambda: [m for m in svc.messages(tenant) if m["status"] == "delivered"], what="delivery")[0]
    url = f"{svc.url}/webhooks/twilio/status?message_id={message['id']}"

    def callback(status: str) -> int:
        params = {"MessageSid": message["twilio_sid"], "MessageStatus": status, "SmsStatus": status,
                  "AccountSid": svc.fake.account_sid, "To": caller, "From": "+15005550006"}
        headers = {**sign_twilio(url, params, svc.fake.auth_token), "Content-Type": "application/x-www-form-urlencoded"}
        return httpx.post(url, content=form_body(params), headers=headers).status_code

    before = httpx.get(svc.url + "/metrics").text
    assert [callback(s) for s in ("sent", "queued", "delivered", "sent")] == [200] * 4  # late and repeated
    assert svc.messages(tenant)[0]["status"] == "delivered"
    after = httpx.get(svc.url + "/metrics").text
    assert _sample(after, 'sms_delivery_status_total{status="delivered"}') == _sample(
        before, 'sms_delivery_status_total{status="delivered"}')


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_kill_switch_holds_messages_and_sends_each_once_on_resume(shared_service: Service) -> None:
    svc = shared_service
    number = new_number()
    tenant = svc.add_tenant(number)
    url = str(svc.engine.url.render_as_string(hide_password=False))

    def flip(value: str) -> None:
        done = subprocess.run([sys.executable, "-m", "surefoot", "flags", "set", "pause_outbound_sms", value,
                               "--url", url, "--reason", "test"], capture_output=True, text=True,
                              env=svc.stack.environment())
        assert done.returncode == 0, done.stderr

    flip("on")
    try:
        wait_until(lambda: svc.status()["kill_switch"]["enabled"] and all(
            w["paused"] for w in svc.status()["workers"]), what="web and worker to see the pause")
        callers = [new_number("+1650555") for _ in range(3)]
        sim = svc.simulator(number)
        for caller in callers:
            sim.call(from_=caller, status="no-answer")
        wait_until(lambda: len([m for m in svc.messages(tenant) if m["status"] == "pending"]) == 3, what="pending")
        wait_until(lambda: svc.status()["outbox"]["waiting_sms"] >= 3, what="the outbox to show them waiting")
        import time

        time.sleep(1.0)  # several dispatcher polls: nothing may leave while paused
        assert not [m for m in svc.fake.messages if m.to in callers]
    finally:
        flip("off")
    wait_until(lambda: len([m for m in svc.messages(tenant) if m["status"] in ("queued", "sent", "delivered")]) == 3,
               what="sending on resume")
    assert sorted(m.to for m in svc.fake.messages if m.to in callers) == sorted(callers)  # once each
    wait_until(lambda: any(line["event"] == "outbound_sms_resumed" for line in _log_lines(svc.output("worker"))),
               what="the outbound_sms_resumed log line")  # written within SUREFOOT_LOG_BUFFER_MS


def test_admin_routes_need_the_token(shared_service: Service) -> None:
    svc = shared_service
    response = httpx.post(svc.url + "/admin/tenants", json={})
    assert response.status_code == 401 and response.headers["content-type"].startswith("application/problem+json")
    flag = httpx.put(svc.url + "/admin/flags/pause_outbound_sms", json={"enabled": True})
    assert flag.status_code == 401
