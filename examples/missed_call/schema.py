"""The service's tables (every one tenant-scoped), its events and their JSON Schemas."""

from __future__ import annotations

import re
import string
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from surefoot import outbox, webhooks
from surefoot.flags import create_tables as create_flag_tables

metadata = sa.MetaData()

E164 = re.compile(r"^\+[1-9]\d{6,14}$")

tenants = sa.Table(
    "tenants", metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("business_name", sa.String(200), nullable=False),
    sa.Column("compliance_status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("first_reply_template", sa.String(1000), nullable=False),
)

tenant_numbers = sa.Table(
    "tenant_numbers", metadata,
    sa.Column("phone", sa.String(16), primary_key=True),  # a number belongs to one tenant
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), nullable=False, index=True),
)

# Table-driven classification of Twilio's CallStatus: which ones are missed calls.
call_classifications = sa.Table(
    "call_classifications", metadata,
    sa.Column("call_status", sa.String(32), primary_key=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # missed | answered | in_progress
)

CLASSIFICATIONS = {
    "no-answer": "missed", "busy": "missed", "failed": "missed",
    "completed": "answered", "canceled": "answered",
    "queued": "in_progress", "ringing": "in_progress", "in-progress": "in_progress",
}

class Classifications:
    """The ``call_classifications`` table, read at most every ``ttl`` seconds per process."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._rows: dict[str, str] = {}
        self._loaded = float("-inf")

    async def get(self, conn: Any) -> dict[str, str]:
        import time

        if time.monotonic() - self._loaded > self.ttl:
            rows = await conn.execute(sa.select(call_classifications.c.call_status, call_classifications.c.outcome))
            self._rows = {status: outcome for status, outcome in rows}
            self._loaded = time.monotonic()
        return self._rows


calls = sa.Table(
    "calls", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("call_sid", sa.String(34), nullable=False),
    sa.Column("caller", sa.String(16), nullable=False),
    sa.Column("called", sa.String(16), nullable=False),
    sa.Column("call_status", sa.String(32), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("tenant_id", "call_sid", name="uq_calls_tenant_sid"),
    sa.Index("ix_calls_tenant_received", "tenant_id", "received_at"),
)

conversations = sa.Table(
    "conversations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("contact", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="open"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("tenant_id", "contact", name="uq_conversations_tenant_contact"),
)

# status: pending → queued → sent → delivered | undelivered | failed;
# or blocked_compliance, suppressed_opt_out, template_error, rejected (never sent).
messages = sa.Table(
    "messages", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.Integer, nullable=False),
    sa.Column("call_sid", sa.String(34), nullable=True),
    sa.Column("direction", sa.String(8), nullable=False),  # outbound | inbound
    sa.Column("to_number", sa.String(16), nullable=False),
    sa.Column("from_number", sa.String(16), nullable=False),
    sa.Column("body", sa.String(1600), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("twilio_sid", sa.String(34), nullable=True),
    sa.Column("send_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.String(500), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_messages_tenant_created", "tenant_id", "created_at"),
    sa.Index("ix_messages_tenant_status", "tenant_id", "status"),
)

# Every Twilio message sid seen for one of our messages: more than one is a duplicate SMS
# (a send whose answer was lost, then sent again).
message_sends = sa.Table(
    "message_sends", metadata,
    sa.Column("twilio_sid", sa.String(34), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("message_id", sa.String(36), nullable=False, index=True),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
)

opt_outs = sa.Table(
    "opt_outs", metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("phone", sa.String(16), primary_key=True),
    sa.Column("keyword", sa.String(16), nullable=False),
    sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=False),
)

# What the worker process reports for the status page (breaker states live in the worker).
worker_heartbeats = sa.Table(
    "worker_heartbeats", metadata,
    sa.Column("worker", sa.String(100), primary_key=True),
    sa.Column("breakers", sa.JSON, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

STATUS_RANK = {"pending": 0, "accepted": 1, "queued": 2, "sending": 3, "sent": 4,
               "delivered": 5, "undelivered": 5, "failed": 5, "read": 6}

# -- events --------------------------------------------------------------------------

_PHONE = {"type": "string", "pattern": E164.pattern}

CALL_DETECTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "call_sid", "caller", "called", "call_status", "received_at"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": 1},
        "call_sid": {"type": "string", "pattern": "^CA[0-9a-fA-F]{32}$"},
        "caller": _PHONE,
        "called": _PHONE,
        "call_status": {"type": "string"},
        "received_at": {"type": "string"},
    },
}

SMS_REQUESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "message_id", "call_sid"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": 1},
        "message_id": {"type": "string"},
        "call_sid": {"type": ["string", "null"]},
    },
}

FIRST_REPLY_SENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "message_id", "call_sid", "twilio_sid", "latency_seconds"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": 1},
        "message_id": {"type": "string"},
        "call_sid": {"type": ["string", "null"]},
        "twilio_sid": {"type": "string", "pattern": "^(SM|MM)[0-9a-fA-F]{32}$"},
        "latency_seconds": {"type": "number", "minimum": 0},
    },
}

COMPLIANCE_CHANGED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "status"],
    "additionalProperties": False,
    "properties": {"schema_version": {"const": 1}, "status": {"enum": ["pending", "approved", "rejected"]}},
}

CALL_DETECTED = "CallDetected"
SMS_REQUESTED = "OutboundSmsRequested"
FIRST_REPLY_SENT = "FirstReplySent"
COMPLIANCE_CHANGED = "ComplianceStatusChanged"


def register_events() -> None:
    """Put the service's events in surefoot's catalogue (payloads are checked at ``add()``)."""
    catalogue = outbox.default_catalogue
    for name, schema in ((CALL_DETECTED, CALL_DETECTED_SCHEMA), (SMS_REQUESTED, SMS_REQUESTED_SCHEMA),
                         (FIRST_REPLY_SENT, FIRST_REPLY_SENT_SCHEMA), (COMPLIANCE_CHANGED, COMPLIANCE_CHANGED_SCHEMA)):
        if name not in catalogue:
            outbox.register_event(name, schema, version=1)


# -- templates -----------------------------------------------------------------------

TEMPLATE_VARIABLES = ("business_name", "caller_last4")


class TemplateError(ValueError):
    """A template names a variable that is not provided, or is malformed."""


def template_fields(template: str) -> list[str]:
    """The ``{name}`` fields of ``template``; raises :class:`TemplateError` if malformed."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise TemplateError(f"template {template!r} is malformed: {exc}") from None


def render(template: str, variables: dict[str, str]) -> str:
    """Render ``{name}`` fields; a missing variable fails at once with the names to fix."""
    fields = template_fields(template)
    missing = sorted({f for f in fields if f not in variables})
    if missing or any(not f.isidentifier() for f in fields):
        raise TemplateError(
            f"template needs variable(s) {', '.join(missing or fields)} that are not provided; "
            f"available: {', '.join(sorted(variables))}"
        )
    return template.format_map(variables)


# -- set-up --------------------------------------------------------------------------

def insert_ignore(conn: Any, table: sa.Table, **values: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite (returns the result)."""
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).values(**values).on_conflict_do_nothing()


def create_all(engine: sa.Engine) -> None:
    """Create the service's tables, surefoot's (inbox, outbox, flags) and the classification rows.

    Idempotent; run it once per release (``python -m missed_call migrate``), not from every
    web worker at once.
    """
    outbox.create_tables(engine)
    webhooks.create_tables(engine)
    create_flag_tables(engine)
    with engine.begin() as conn:
        metadata.create_all(conn)
        present = {row[0] for row in conn.execute(sa.select(call_classifications.c.call_status))}
        rows = [{"call_status": k, "outcome": v} for k, v in CLASSIFICATIONS.items() if k not in present]
        if rows:
            conn.execute(call_classifications.insert(), rows)
