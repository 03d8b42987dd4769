"""The worker's handlers: a missed call opens a conversation and sends the first SMS.

``CallDetected`` → opt-out ledger, compliance gate, template → a message row and an
``OutboundSmsRequested`` event (one transaction). ``OutboundSmsRequested`` → kill switch →
Twilio (timeout, retries, breaker) → message queued, ``FirstReplySent``, first-SMS pair
finished (one transaction). ``ComplianceStatusChanged(approved)`` releases blocked messages.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import surefoot
from surefoot import outbox
from surefoot.resilience import CircuitOpenError

from . import observability as obs
from . import schema as db
from .config import ServiceSettings
from .flags import PAUSE_OUTBOUND_SMS
from .messaging import TwilioClient

log = surefoot.get_logger("conversation")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def record_sid(conn: Any, *, tenant_id: str, message_id: str, sid: str, first: bool = False) -> None:
    """Remember a Twilio sid of ``message_id``; a second distinct sid is a duplicate SMS.

    ``first``: the caller just recorded the message's first acceptance, so no other sid can
    exist yet and the count is skipped.
    """
    inserted = (await conn.execute(db.insert_ignore(
        conn, db.message_sends, twilio_sid=sid, tenant_id=tenant_id, message_id=message_id, seen_at=utcnow()
    ))).rowcount
    if not inserted or first:
        return
    count = (await conn.execute(sa.select(sa.func.count()).select_from(db.message_sends).where(
        db.message_sends.c.tenant_id == tenant_id, db.message_sends.c.message_id == message_id))).scalar_one()
    if count > 1:
        obs.SMS_DUPLICATES.get().inc()
        log.warning("sms_duplicate_detected", message_id=message_id, twilio_sid=sid, sends=count)


async def mark_queued(conn: Any, message: Any, sid: str) -> float | None:
    """Record that Twilio accepted ``message`` (sid ``sid``): queued_at, FirstReplySent and the
    first-SMS pair, once. Returns the first-SMS latency when this call recorded it, else ``None``.

    Called by the worker with the API's answer, and by the status callback when that callback
    is the first sign of acceptance (the API's answer was lost): either way the message is not
    sent again.
    """
    message_id, tenant_id = message["id"], message["tenant_id"]
    now = utcnow()
    first = (await conn.execute(db.messages.update().where(
        db.messages.c.id == message_id, db.messages.c.tenant_id == tenant_id, db.messages.c.queued_at.is_(None),
    ).values(
        queued_at=now, updated_at=now,
        twilio_sid=sa.func.coalesce(db.messages.c.twilio_sid, sid),
        status=sa.case((db.messages.c.status.in_(["pending", "accepted"]), "queued"), else_=db.messages.c.status),
    ))).rowcount
    await record_sid(conn, tenant_id=tenant_id, message_id=message_id, sid=sid, first=bool(first))
    if not first:
        return None
    call = (await conn.execute(sa.select(db.calls.c.received_at).where(
        db.calls.c.tenant_id == tenant_id, db.calls.c.call_sid == message["call_sid"]))).first()
    latency = max(0.0, (now - _aware(call[0])).total_seconds()) if call else 0.0
    await outbox.add(conn, db.FIRST_REPLY_SENT, {
        "schema_version": 1, "message_id": message_id, "call_sid": message["call_sid"],
        "twilio_sid": sid, "latency_seconds": latency}, tenant_id=tenant_id)
    if message["call_sid"]:
        await obs.finish_first_sms(conn, message["call_sid"])
    obs.FIRST_SMS_SECONDS.get().observe(latency)
    obs.DELIVERY_FUNNEL.get().labels(status="queued").inc()
    obs.CONVERSATIONS_STARTED.inc()
    return latency


class Conversation:
    """The conversation handlers, bound to the service's engine and Twilio client.

    The dispatcher binds each event's ``tenant_id`` and correlation ids into the log context,
    so every line a handler writes carries them.
    """

    def __init__(self, engine: AsyncEngine, settings: ServiceSettings, twilio: TwilioClient) -> None:
        self.engine = engine
        self.settings = settings
        self.twilio = twilio
        self.outcomes = obs.SMS_OUTCOMES.get()

    def handlers(self) -> dict[str, Any]:
        """``{event name: handler}`` for :class:`surefoot.outbox.Dispatcher`."""
        return {
            db.CALL_DETECTED: self.on_call_detected,
            db.SMS_REQUESTED: self.on_sms_requested,
            db.COMPLIANCE_CHANGED: self.on_compliance_changed,
            db.FIRST_REPLY_SENT: self.on_first_reply_sent,
        }

    async def on_first_reply_sent(self, event: outbox.Event) -> None:
        """The reporting side of the first reply (a projection would update its rollups here)."""
        log.info("first_reply_recorded", message_id=event.payload["message_id"],
                 latency_ms=round(event.payload["latency_seconds"] * 1000, 1))

    async def on_call_detected(self, event: outbox.Event) -> None:
        payload, tenant_id = event.payload, event.tenant_id
        caller, call_sid = payload["caller"], payload["call_sid"]
        async with self.engine.begin() as conn:
            tenant = (await conn.execute(sa.select(db.tenants).where(db.tenants.c.tenant_id == tenant_id))
                      ).mappings().first()
            if tenant is None:
                log.error("call_for_deleted_tenant", call_sid=call_sid)
                return
            already = (await conn.execute(sa.select(db.messages.c.id).where(
                db.messages.c.tenant_id == tenant_id, db.messages.c.call_sid == call_sid,
                db.messages.c.direction == "outbound"))).first()
            if already is not None:
                return  # a redelivery of an event already handled
            await conn.execute(db.insert_ignore(conn, db.conversations, tenant_id=tenant_id, contact=caller,
                                                state="open", created_at=utcnow()))
            conversation_id = (await conn.execute(sa.select(db.conversations.c.id).where(
                db.conversations.c.tenant_id == tenant_id, db.conversations.c.contact == caller))).scalar_one()
            opted_out = (await conn.execute(sa.select(db.opt_outs.c.phone).where(
                db.opt_outs.c.tenant_id == tenant_id, db.opt_outs.c.phone == caller))).first()
            body, error = "", None
            if opted_out is not None:
                status = "suppressed_opt_out"
            elif tenant["compliance_status"] != "approved":
                status = "blocked_compliance"
            else:
                try:
                    body = db.render(tenant["first_reply_template"], {
                        "business_name": tenant["business_name"], "caller_last4": caller[-4:]})
                    status = "pending"
                except db.TemplateError as exc:
                    status, error = "template_error", str(exc)[:500]
            message_id = str(uuid.uuid4())
            now = utcnow()
            await conn.execute(db.messages.insert().values(
                id=message_id, tenant_id=tenant_id, conversation_id=conversation_id, call_sid=call_sid,
                direction="outbound", to_number=caller, from_number=payload["called"], body=body,
                status=status, error=error, created_at=now, updated_at=now))
            if status == "pending":
                await outbox.add(conn, db.SMS_REQUESTED, {"schema_version": 1, "message_id": message_id,
                                                          "call_sid": call_sid}, tenant_id=tenant_id)
        outcome = {"suppressed_opt_out": "opted_out", "blocked_compliance": "blocked"}.get(status, status)
        if status == "template_error":
            log.error("template_render_failed", message_id=message_id, error_message=error, call_sid=call_sid)
        elif status != "pending":
            self.outcomes.labels(outcome=outcome).inc()
            log.info("first_sms_withheld", message_id=message_id, reason=status, contact=caller)
        if status == "template_error":
            self.outcomes.labels(outcome="template_error").inc()

    async def on_sms_requested(self, event: outbox.Event) -> None:
        message_id, tenant_id = event.payload["message_id"], event.tenant_id
        if PAUSE_OUTBOUND_SMS.enabled:  # the dispatcher pauses these events too; this closes the gap
            raise outbox.RetryLater("outbound SMS are paused (pause_outbound_sms)", retry_after=1.0)
        async with self.engine.begin() as conn:
            # Counted before the call: if this process dies after Twilio accepted, the next
            # attempt knows it may send a second SMS. Only a pending, unaccepted message matches.
            message = (await conn.execute(db.messages.update().where(
                db.messages.c.id == message_id, db.messages.c.tenant_id == tenant_id,
                db.messages.c.status == "pending", db.messages.c.queued_at.is_(None),
            ).values(send_attempts=db.messages.c.send_attempts + 1).returning(*db.messages.c))).mappings().first()
            if message is None:
                return  # accepted by Twilio, suppressed or gone: nothing to send
            opted_out = (await conn.execute(sa.select(db.opt_outs.c.phone).where(
                db.opt_outs.c.tenant_id == tenant_id, db.opt_outs.c.phone == message["to_number"]))).first()
            if opted_out is not None:
                await conn.execute(db.messages.update().where(db.messages.c.id == message_id).values(
                    status="suppressed_opt_out", updated_at=utcnow()))
                self.outcomes.labels(outcome="opted_out").inc()
                return
        if message["send_attempts"] > 1:
            obs.SMS_AMBIGUOUS_RESENDS.get().inc()
        callback = f"{self.settings.public_base_url.rstrip('/')}/webhooks/twilio/status?message_id={message_id}"
        try:
            with obs.span("conversation.first_reply", event_id=event.event_id, tenant_id=tenant_id,
                          message_id=message_id):
                result = await self.twilio.send(
                    to=message["to_number"], body=message["body"], status_callback=callback)
        except CircuitOpenError as exc:
            self.outcomes.labels(outcome="retry").inc()
            raise outbox.RetryLater(f"twilio breaker {exc.state}", retry_after=exc.retry_after) from exc
        except (httpx.HTTPError, TimeoutError) as exc:
            self.outcomes.labels(outcome="retry").inc()
            log.warning("sms_send_failed", message_id=message_id, error_code=type(exc).__name__)
            raise
        await self._settle(message, result)

    async def _settle(self, message: Any, result: Any) -> None:
        message_id, tenant_id = message["id"], message["tenant_id"]
        if result.status_code == 201 and result.sid:
            async with self.engine.begin() as conn:
                latency = await mark_queued(conn, message, result.sid)
            if latency is not None:
                self.outcomes.labels(outcome="queued").inc()
                log.info("first_sms_queued", message_id=message_id, twilio_sid=result.sid,
                         contact=message["to_number"], latency_ms=round(latency * 1000, 1))
            return
        if result.status_code == 400 and result.error_code == 21610:
            async with self.engine.begin() as conn:
                await conn.execute(db.insert_ignore(conn, db.opt_outs, tenant_id=tenant_id,
                                                    phone=message["to_number"], keyword="TWILIO-21610",
                                                    opted_out_at=utcnow()))
                await conn.execute(db.messages.update().where(db.messages.c.id == message_id).values(
                    status="suppressed_opt_out", error="twilio 21610: recipient unsubscribed", updated_at=utcnow()))
            self.outcomes.labels(outcome="opted_out").inc()
            log.info("sms_recipient_unsubscribed", message_id=message_id, contact=message["to_number"])
            return
        if 400 <= result.status_code < 500 and result.status_code not in (408, 409, 429):
            async with self.engine.begin() as conn:
                await conn.execute(db.messages.update().where(db.messages.c.id == message_id).values(
                    status="rejected", updated_at=utcnow(),
                    error=f"twilio {result.status_code} code {result.error_code}: {result.error_message}"[:500]))
            self.outcomes.labels(outcome="rejected").inc()
            log.error("sms_rejected", message_id=message_id, error_code=result.error_code,
                      error_message=result.error_message, status=result.status_code)
            return
        self.outcomes.labels(outcome="retry").inc()
        raise outbox.RetryLater(f"twilio answered {result.status_code} (code {result.error_code})",
                                retry_after=result.retry_after)

    async def on_compliance_changed(self, event: outbox.Event) -> None:
        if event.payload["status"] != "approved":
            return
        tenant_id = event.tenant_id
        started = time.monotonic()
        async with self.engine.begin() as conn:
            waiting = (await conn.execute(sa.select(db.messages.c.id, db.messages.c.call_sid).where(
                db.messages.c.tenant_id == tenant_id, db.messages.c.status == "blocked_compliance"))).all()
            template = (await conn.execute(sa.select(db.tenants).where(db.tenants.c.tenant_id == tenant_id))
                        ).mappings().one()
            for message_id, call_sid in waiting:
                to = (await conn.execute(sa.select(db.messages.c.to_number).where(
                    db.messages.c.id == message_id))).scalar_one()
                try:
                    body = db.render(template["first_reply_template"], {
                        "business_name": template["business_name"], "caller_last4": to[-4:]})
                    values: dict[str, Any] = {"status": "pending", "body": body}
                except db.TemplateError as exc:
                    values = {"status": "template_error", "error": str(exc)[:500]}
                await conn.execute(db.messages.update().where(db.messages.c.id == message_id)
                                   .values(updated_at=utcnow(), **values))
                if values["status"] == "pending":
                    await outbox.add(conn, db.SMS_REQUESTED, {"schema_version": 1, "message_id": message_id,
                                                              "call_sid": call_sid}, tenant_id=tenant_id)
        log.info("compliance_released_messages", count=len(waiting),
                 duration_ms=round((time.monotonic() - started) * 1000, 1))
