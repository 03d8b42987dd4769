"""The web process: Twilio webhooks, the status page, admin routes.

Run it with ``uvicorn missed_call.app:app --app-dir examples --workers 2`` (after
``python -m missed_call migrate``), or through ``python3 dev.py demo``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import re
from collections.abc import AsyncIterator
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import surefoot
from surefoot import context, flags, outbox
from surefoot.errors import AuthenticationError, AuthorizationError, ConflictError, NotFoundError
from surefoot.health import Health, sqlalchemy_check
from surefoot.http import problem_openapi, problem_responses
from surefoot.webhooks import Delivery, Ignore, TwilioVerifier, WebhookInbox

from . import observability as obs
from . import schema as db
from .config import ServiceSettings
from .conversation import mark_queued, record_sid
from .flags import PAUSE_OUTBOUND_SMS
from .status_page import status_router

log = surefoot.get_logger("telephony")
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TenantIn(BaseModel):
    """A tenant with the number its customers call and the first-reply template."""

    tenant_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    business_name: str = Field(min_length=1, max_length=200)
    phone: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    first_reply_template: str = Field(
        "Sorry we missed your call! {business_name} will text you here shortly.", min_length=1, max_length=1000
    )
    compliance_status: Literal["pending", "approved", "rejected"] = "pending"


class ComplianceIn(BaseModel):
    """A compliance decision for a tenant (A2P registration)."""

    status: Literal["pending", "approved", "rejected"]


def create_app(settings: ServiceSettings | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    """Build the web application (webhooks, status page, admin routes, surefoot installed).

    Args:
        settings: the service settings (default: from the environment).
        engine: an async engine (default: one for ``DATABASE_URL``).
    """
    settings = settings or ServiceSettings()
    engine = engine or create_async_engine(settings.async_database_url)
    db.register_events()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        flags.configure(engine, refresh_interval=1.0)
        log.info("missed_call_web_started", database=engine.url.render_as_string(hide_password=True),
                 pause_outbound_sms=PAUSE_OUTBOUND_SMS.enabled, slo=obs.slo_available())
        yield
        await engine.dispose()

    app = FastAPI(title="missed-call", version="1.0.0", lifespan=lifespan,
                  description="A missed call becomes a first SMS (surefoot's reference service).")
    app.state.engine = engine
    app.state.settings = settings

    classifications = db.Classifications()
    verifier = TwilioVerifier([settings.twilio_auth_token], base_url=settings.public_base_url)
    inbox = WebhookInbox(engine, max_body_bytes=64 * 1024)

    @inbox.endpoint(app, "/webhooks/twilio/voice", verifier=verifier)
    async def voice_status(delivery: Delivery) -> None:
        """Twilio voice status callback: a missed call becomes a CallDetected event."""
        form = delivery.form()
        call_sid, caller, called = form.get("CallSid", ""), form.get("From", ""), form.get("To", "")
        call_status = form.get("CallStatus", "")
        if not CALL_SID.match(call_sid) or not db.E164.match(caller) or not db.E164.match(called):
            log.warning("voice_callback_malformed", call_sid=call_sid[:40], caller=caller[:20], called=called[:20])
            raise Ignore("malformed voice callback")
        conn = delivery.conn
        tenant = (await conn.execute(
            sa.select(db.tenants.c.tenant_id, db.tenants.c.compliance_status)
            .join(db.tenant_numbers, db.tenant_numbers.c.tenant_id == db.tenants.c.tenant_id)
            .where(db.tenant_numbers.c.phone == called)
        )).first()
        if tenant is None:
            log.warning("call_for_unknown_number", called=called, call_sid=call_sid, provider="twilio")
            raise Ignore("unknown number")
        tenant_id, compliance = tenant
        outcome = (await classifications.get(conn)).get(call_status, "in_progress")
        duration = int(form.get("CallDuration") or 0) if (form.get("CallDuration") or "0").isdigit() else 0
        if call_status == "completed" and settings.short_call_seconds > 0 and duration < settings.short_call_seconds:
            outcome = "missed"  # the short-completed-call rule (off unless SHORT_CALL_SECONDS is set)
        with context.bound(tenant_id=tenant_id):
            if outcome == "in_progress":
                return
            received_at = utcnow()
            inserted = (await conn.execute(db.insert_ignore(
                conn, db.calls, tenant_id=tenant_id, call_sid=call_sid, caller=caller, called=called,
                call_status=call_status, outcome=outcome, received_at=received_at,
            ))).rowcount
            if not inserted:
                return  # another status of a call already classified
            obs.CALLS_DETECTED.inc(outcome=outcome)
            log.info("call_classified", call_sid=call_sid, caller=caller, outcome=outcome, call_status=call_status)
            if outcome != "missed":
                return
            await delivery.add_event(db.CALL_DETECTED, {
                "schema_version": 1, "call_sid": call_sid, "caller": caller, "called": called,
                "call_status": call_status, "received_at": received_at.isoformat(),
            }, key=f"{tenant_id}:{caller}", tenant_id=tenant_id)
            opted_out = (await conn.execute(sa.select(db.opt_outs.c.phone).where(
                db.opt_outs.c.tenant_id == tenant_id, db.opt_outs.c.phone == caller))).first()
            if compliance == "approved" and opted_out is None:
                await obs.start_first_sms(conn, call_sid)  # a first SMS is owed: the objective's clock runs
        return

    @inbox.endpoint(app, "/webhooks/twilio/sms", verifier=verifier)
    async def inbound_sms(delivery: Delivery) -> None:
        """Inbound SMS: STOP/START keywords update the opt-out ledger; HELP is logged."""
        form = delivery.form()
        sender, to, body = form.get("From", ""), form.get("To", ""), form.get("Body", "")
        if not db.E164.match(sender) or not db.E164.match(to):
            raise Ignore("malformed inbound SMS")
        conn = delivery.conn
        tenant_id = (await conn.execute(sa.select(db.tenant_numbers.c.tenant_id).where(
            db.tenant_numbers.c.phone == to))).scalar_one_or_none()
        if tenant_id is None:
            log.warning("sms_for_unknown_number", called=to, provider="twilio")
            raise Ignore("unknown number")
        keyword = body.strip().split(maxsplit=1)[0].upper() if body.strip() else ""
        with context.bound(tenant_id=tenant_id):
            if keyword in STOP_WORDS:
                await conn.execute(db.insert_ignore(conn, db.opt_outs, tenant_id=tenant_id, phone=sender,
                                                    keyword=keyword, opted_out_at=utcnow()))
                log.info("contact_opted_out", contact=sender, keyword=keyword)
            elif keyword in START_WORDS:
                await conn.execute(db.opt_outs.delete().where(
                    db.opt_outs.c.tenant_id == tenant_id, db.opt_outs.c.phone == sender))
                log.info("contact_opted_in", contact=sender, keyword=keyword)
            elif keyword in HELP_WORDS:
                log.info("contact_asked_help", contact=sender, keyword=keyword)
            else:
                log.info("inbound_sms", contact=sender, length=len(body))

    @inbox.endpoint(app, "/webhooks/twilio/status", verifier=verifier)
    async def message_status(delivery: Delivery) -> None:
        """Delivery callbacks: move a message forward once (never backwards), count the funnel."""
        form = delivery.form()
        sid, status = form.get("MessageSid", ""), form.get("MessageStatus") or form.get("SmsStatus", "")
        message_id = delivery.request.query_params.get("message_id", "") if delivery.request else ""
        if not MESSAGE_SID.match(sid) or status not in db.STATUS_RANK or not message_id:
            raise Ignore("malformed status callback")
        conn = delivery.conn
        message = (await conn.execute(sa.select(db.messages).where(db.messages.c.id == message_id))).mappings().first()
        if message is None:
            raise Ignore("unknown message")
        tenant_id, current, known_sid = message["tenant_id"], message["status"], message["twilio_sid"]
        with context.bound(tenant_id=tenant_id):
            if message["queued_at"] is None:
                # The first sign that Twilio accepted it (the API's answer was lost or is late):
                # record the first SMS now, so the worker does not send it again.
                await mark_queued(conn, message, sid)
                known_sid = sid
            elif sid != known_sid:  # a sid we have not seen for this message: a duplicate SMS
                await record_sid(conn, tenant_id=tenant_id, message_id=message_id, sid=sid)
            if known_sid is not None and known_sid != sid:
                return  # a duplicate's own callbacks do not move our message
            rank = db.STATUS_RANK[status]
            values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
            if status in ("failed", "undelivered"):
                values["error"] = f"twilio error {form.get('ErrorCode', '?')}"[:500]
            updated = (await conn.execute(db.messages.update().where(
                db.messages.c.id == message_id, db.messages.c.tenant_id == tenant_id,
                db.messages.c.status.in_([s for s, r in db.STATUS_RANK.items() if r < rank]),
            ).values(**values))).rowcount
            if updated:
                obs.DELIVERY_FUNNEL.get().labels(status=status).inc()
                log.info("sms_status", message_id=message_id, status=status, previous=current)
        return

    admin = APIRouter(prefix="/admin", tags=["admin"])

    def require_admin(request: Request) -> None:
        if not settings.admin_token:
            raise AuthorizationError("the admin routes are disabled: set ADMIN_TOKEN")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.admin_token.encode()):
            raise AuthenticationError("a valid 'Authorization: Bearer <ADMIN_TOKEN>' header is required")

    @admin.post("/tenants", status_code=201, dependencies=[Depends(require_admin)],
                responses=problem_responses(401, 403, 409))
    async def create_tenant(tenant: TenantIn) -> dict[str, Any]:
        """Register a tenant and its phone number; the template is checked now, not at send time."""
        try:
            db.render(tenant.first_reply_template, {v: "x" for v in db.TEMPLATE_VARIABLES})
        except db.TemplateError as exc:
            raise surefoot.ValidationError(str(exc), field="first_reply_template") from None
        async with engine.begin() as conn:
            exists = (await conn.execute(sa.select(db.tenant_numbers.c.tenant_id).where(
                db.tenant_numbers.c.phone == tenant.phone))).scalar_one_or_none()
            if exists is not None or (await conn.execute(sa.select(db.tenants.c.tenant_id).where(
                    db.tenants.c.tenant_id == tenant.tenant_id))).first():
                raise ConflictError("that tenant or phone number is already registered")
            await conn.execute(db.tenants.insert().values(
                tenant_id=tenant.tenant_id, business_name=tenant.business_name,
                compliance_status=tenant.compliance_status, first_reply_template=tenant.first_reply_template))
            await conn.execute(db.tenant_numbers.insert().values(phone=tenant.phone, tenant_id=tenant.tenant_id))
        return tenant.model_dump()

    @admin.put("/tenants/{tenant_id}/compliance", dependencies=[Depends(require_admin)],
               responses=problem_responses(401, 403, 404))
    async def set_compliance(tenant_id: str, decision: ComplianceIn) -> dict[str, str]:
        """Record a compliance decision; approval releases the messages that wait for it."""
        async with engine.begin() as conn:
            updated = (await conn.execute(db.tenants.update().where(db.tenants.c.tenant_id == tenant_id)
                                          .values(compliance_status=decision.status))).rowcount
            if not updated:
                raise NotFoundError(resource="Tenant", identifier=tenant_id)
            with context.bound(tenant_id=tenant_id):
                await outbox.add(conn, db.COMPLIANCE_CHANGED, {"schema_version": 1, "status": decision.status},
                                 tenant_id=tenant_id, key=f"{tenant_id}:compliance")
        log.info("compliance_changed", tenant_id=tenant_id, status=decision.status)
        return {"tenant_id": tenant_id, "compliance_status": decision.status}

    app.include_router(admin)
    app.include_router(status_router(engine, settings))
    app.mount("/admin/flags", flags.admin_app(token=settings.admin_token or None))

    for route in app.routes:  # what the inbox answers besides the handler's 200
        if getattr(route, "path", "").startswith("/webhooks/") and hasattr(route, "responses"):
            route.responses.update(problem_responses(401, 413))
    problem_openapi(app)

    health = Health(service="missed-call", version="1.0.0")
    health.add("database", sqlalchemy_check(engine), timeout=2.0)
    surefoot.install(app, health=health)
    obs.install(app, engine)  # GET /slo; after surefoot.install, before the app starts
    return app


def __getattr__(name: str) -> Any:
    # ``uvicorn missed_call.app:app``: the application is built on first access, from the environment.
    if name == "app":
        application = create_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
