"""SLO, KPI and metric wiring of the service, kept in one place.

The first-SMS objective comes from ``surefoot.slo`` (an event pair started in the voice
webhook's transaction and finished in the send's). When that module is not available the
service still runs: pairs are not recorded, one WARN line says so, and the status page shows
the latency measured from the service's own tables instead.
"""

from __future__ import annotations

import contextlib
from typing import Any

from surefoot import get_logger
from surefoot.metrics import KPI, MetricSpec

log = get_logger("missed_call")

try:  # the SLO engine is an optional part of the library this service is built on
    from surefoot import slo as _slo
except ImportError:  # pragma: no cover - depends on the installed surefoot
    _slo = None

FIRST_SMS: Any = None
if _slo is not None:
    FIRST_SMS = _slo.EventPair(
        "first_sms", target=0.95, deadline=5.0,
        description="first SMS queued at Twilio within 5 s of the missed call",
    )

_warned = False


def slo_available() -> bool:
    """Whether the SLO engine is wired."""
    global _warned
    if FIRST_SMS is None and not _warned:
        _warned = True
        log.warning("slo_engine_unavailable", detail="surefoot.slo is not installed: first-SMS pairs are not recorded")
    return FIRST_SMS is not None


async def start_first_sms(conn: Any, key: str) -> None:
    """Start the first-SMS pair for a missed call (in the webhook's transaction)."""
    if slo_available():
        await FIRST_SMS.astart(conn, key)


async def finish_first_sms(conn: Any, key: str) -> None:
    """Finish the pair when Twilio queued the first SMS (in the send's transaction)."""
    if slo_available():
        await FIRST_SMS.afinish(conn, key)


def migrate(engine: Any) -> None:
    """Create the SLO engine's tables (sync engine)."""
    if slo_available():
        _slo.migrate(engine)


def install(app: Any, engine: Any) -> None:
    """Mount ``GET /slo`` (JSON and HTML) on the web app."""
    if slo_available():
        _slo.install(app, [FIRST_SMS], engine=engine)


def sweeper(engine: Any) -> Any:
    """What the worker runs to turn pairs past their deadline into bad events (or ``None``)."""
    if slo_available() and hasattr(_slo, "Sweeper"):
        return _slo.Sweeper(engine, [FIRST_SMS])
    return None


# -- tracing -------------------------------------------------------------------------

try:  # spans at the seed's boundaries, when this surefoot has them
    from surefoot.tracing import span as _span  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the installed surefoot
    _span = None


def span(name: str, **attributes: Any) -> Any:
    """``surefoot.tracing.span(name, ...)``, or a no-op context manager without it."""
    if _span is None:
        return contextlib.nullcontext()
    return _span(name, **attributes)


# -- KPIs and the service's own metrics ------------------------------------------------

CALLS_DETECTED = KPI("calls_detected", description="calls classified by the voice webhook",
                     labels={"outcome": ("missed", "answered")})
CONVERSATIONS_STARTED = KPI("conversations_started", description="conversations opened by a first SMS")

DELIVERY_FUNNEL = MetricSpec(
    "sms_delivery_status_total", "counter",
    "outbound SMS moving to a status (queued, sent, delivered, undelivered, failed ...), counted once each",
    ("status",),
)
SMS_OUTCOMES = MetricSpec(
    "sms_send_outcomes_total", "counter",
    "what the conversation handler did with a message (queued, opted_out, blocked, template_error, "
    "rejected, retry)",
    ("outcome",),
)
SMS_DUPLICATES = MetricSpec(
    "sms_duplicates_total", "counter",
    "SMS Twilio accepted more than once for one message (a send whose answer was lost, sent again)",
)
SMS_AMBIGUOUS_RESENDS = MetricSpec(
    "sms_ambiguous_resends_total", "counter",
    "sends of a message whose earlier attempt may have reached Twilio (a possible duplicate)",
)
FIRST_SMS_SECONDS = MetricSpec(
    "first_sms_latency_seconds", "histogram", "missed call received → first SMS queued at Twilio",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
