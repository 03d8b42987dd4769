"""Service level objectives: declared once in Python, measured in-process, served at ``/slo``,
and turned into Prometheus rules, promtool tests and Grafana dashboards.

    from surefoot import slo

    FIRST_SMS = slo.EventPair("first_sms", target=0.95, deadline=5.0)
    BOOKING = slo.Latency("booking_post", target=0.95, threshold=0.5, route="/bookings", method="POST")
    AVAIL = slo.Ratio("api_availability", target=0.999)

    slo.install(app, [FIRST_SMS, BOOKING, AVAIL], engine=engine)   # GET /slo
    FIRST_SMS.start(session, call_sid)      # web process, in the webhook's transaction
    FIRST_SMS.finish(session, call_sid)     # worker, in the SMS send's transaction
    slo.Sweeper(engine, [FIRST_SMS]).run()  # worker: overdue pairs become bad, outcomes counted

See ``docs/slo.md``.
"""

from __future__ import annotations

from .._core.extras import lazy_exports
from ._objectives import EventPair, Latency, Objective, Ratio
from ._tracker import BurnEvent, Tracker
from ._windows import DEFAULT_TIERS, REPORTED_WINDOWS, WINDOWS, Condition, Tier

__all__ = [
    "Objective",
    "Ratio",
    "Latency",
    "EventPair",
    "Tracker",
    "BurnEvent",
    "Tier",
    "Condition",
    "DEFAULT_TIERS",
    "WINDOWS",
    "REPORTED_WINDOWS",
    # lazily imported (SQLAlchemy, Starlette, PyYAML)
    "install",
    "thresholds",
    "migrate",
    "amigrate",
    "Sweeper",
    "SweepResult",
    "to_openslo",
    "from_openslo",
    "generate",
    "lint",
    "LintFinding",
    "collect_objectives",
]

_LAZY = {
    "install": "._install",
    "thresholds": "._install",
    "migrate": "._schema",
    "amigrate": "._schema",
    "Sweeper": "._pairs",
    "SweepResult": "._pairs",
    "to_openslo": "._openslo",
    "from_openslo": "._openslo",
    "generate": "._generate",
    "lint": "._lint",
    "LintFinding": "._lint",
    "collect_objectives": "._generate",
}

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
