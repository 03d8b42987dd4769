"""The status page: first-SMS objective, recent calls and messages, outbox, breakers, kill switch."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from surefoot import outbox

from . import schema as db
from .config import ServiceSettings
from .flags import PAUSE_OUTBOUND_SMS

PAGE = (Path(__file__).parent / "status.html").read_text()
WINDOW = dt.timedelta(minutes=5)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def mask(phone: str) -> str:
    """``+14155550123`` → ``***0123`` (what the page and INFO logs show)."""
    return "***" + phone[-4:] if phone else ""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``None`` for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[int(rank) - 1]


async def snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """Everything the page shows, read from the database (any process's view)."""
    now = dt.datetime.now(dt.UTC)
    since = now - WINDOW
    events, dead = outbox.events_table, outbox.dead_letters_table
    async with engine.connect() as conn:
        recent_calls = (await conn.execute(
            sa.select(db.calls.c.tenant_id, db.calls.c.call_sid, db.calls.c.caller, db.calls.c.call_status,
                      db.calls.c.outcome, db.calls.c.received_at)
            .order_by(db.calls.c.id.desc()).limit(15))).mappings().all()
        recent_messages = (await conn.execute(
            sa.select(db.messages.c.id, db.messages.c.tenant_id, db.messages.c.to_number, db.messages.c.status,
                      db.messages.c.send_attempts, db.messages.c.created_at, db.messages.c.queued_at,
                      db.messages.c.error)
            .where(db.messages.c.direction == "outbound")
            .order_by(db.messages.c.created_at.desc()).limit(15))).mappings().all()
        calls_window = (await conn.execute(sa.select(db.calls.c.outcome, sa.func.count()).where(
            db.calls.c.received_at >= since).group_by(db.calls.c.outcome))).all()
        messages_window = (await conn.execute(sa.select(db.messages.c.status, sa.func.count()).where(
            db.messages.c.created_at >= since).group_by(db.messages.c.status))).all()
        latencies_rows = (await conn.execute(
            sa.select(db.calls.c.received_at, db.messages.c.queued_at)
            .join(db.messages, sa.and_(db.messages.c.tenant_id == db.calls.c.tenant_id,
                                       db.messages.c.call_sid == db.calls.c.call_sid))
            .where(db.messages.c.queued_at.is_not(None), db.messages.c.queued_at >= since)
            .limit(20000))).all()
        pending, oldest = (await conn.execute(sa.select(sa.func.count(), sa.func.min(events.c.created_at)).where(
            events.c.dispatched_at.is_(None)))).one()
        waiting_sms = (await conn.execute(sa.select(sa.func.count()).where(
            events.c.dispatched_at.is_(None), events.c.event_name == db.SMS_REQUESTED))).scalar_one()
        dead_letters = (await conn.execute(sa.select(sa.func.count()).select_from(dead))).scalar_one()
        heartbeats = (await conn.execute(sa.select(db.worker_heartbeats).where(
            db.worker_heartbeats.c.updated_at >= now - dt.timedelta(seconds=10)))).mappings().all()
        duplicates = (await conn.execute(sa.select(sa.func.count()).select_from(db.message_sends))).scalar_one() - (
            await conn.execute(sa.select(sa.func.count(sa.distinct(db.message_sends.c.message_id))))).scalar_one()
    latencies = [((_aware(q) - _aware(r)).total_seconds()) for r, q in latencies_rows]  # type: ignore[operator]
    within = sum(1 for x in latencies if x <= 5.0)
    oldest_at = _aware(oldest)
    return {
        "generated_at": now.isoformat(),
        "first_sms": {
            "source": "service tables",
            "window": "5m",
            "count": len(latencies),
            "p50_seconds": percentile(latencies, 0.50),
            "p95_seconds": percentile(latencies, 0.95),
            "within_5s_ratio": (within / len(latencies)) if latencies else None,
            "objective": {"target": 0.95, "threshold_seconds": 5.0},
        },
        "calls": {"window": "5m", "by_outcome": {k: v for k, v in calls_window},
                  "recent": [{"tenant_id": c["tenant_id"], "call_sid": c["call_sid"], "caller": mask(c["caller"]),
                              "call_status": c["call_status"], "outcome": c["outcome"],
                              "received_at": _aware(c["received_at"]).isoformat()} for c in recent_calls]},  # type: ignore[union-attr]
        "messages": {"window": "5m", "by_status": {k: v for k, v in messages_window},
                     "duplicates": duplicates,
                     "recent": [{"id": m["id"], "tenant_id": m["tenant_id"], "to": mask(m["to_number"]),
                                 "status": m["status"], "attempts": m["send_attempts"], "error": m["error"],
                                 "created_at": _aware(m["created_at"]).isoformat(),  # type: ignore[union-attr]
                                 "latency_seconds": ((_aware(m["queued_at"]) - _aware(m["created_at"])).total_seconds()  # type: ignore[operator]
                                                     if m["queued_at"] else None)} for m in recent_messages]},
        "outbox": {"pending": pending, "waiting_sms": waiting_sms, "dead_letters": dead_letters,
                   "lag_seconds": max(0.0, (now - oldest_at).total_seconds()) if oldest_at else 0.0},
        "workers": [{"worker": h["worker"], "paused": h["paused"], "breakers": h["breakers"],
                     "updated_at": _aware(h["updated_at"]).isoformat()} for h in heartbeats],  # type: ignore[union-attr]
        "breakers": [b for h in heartbeats for b in (h["breakers"] or [])],
        "kill_switch": PAUSE_OUTBOUND_SMS.describe(),
    }


def status_router(engine: AsyncEngine, settings: ServiceSettings) -> APIRouter:
    """``GET /status`` (the page) and ``GET /status.json`` (its data)."""
    router = APIRouter(tags=["status"])

    @router.get("/status", response_class=HTMLResponse)
    async def status_page() -> HTMLResponse:
        """The live status page (polls /status.json and /slo every second)."""
        return HTMLResponse(PAGE)

    @router.get("/status.json")
    async def status_json() -> dict[str, Any]:
        """The status page's data: first-SMS latency, calls, messages, outbox, breakers, kill switch."""
        return await snapshot(engine)

    return router
