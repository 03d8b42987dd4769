"""Health checks and probes: ``/livez``, ``/readyz``, ``/health``.

    from surefoot.health import Health, sqlalchemy_check

    health = Health(drain_seconds=5)
    health.add("database", sqlalchemy_check(engine), timeout=1.0)
    health.add("cache", redis_check(redis_url), critical=False)
    surefoot.install(app, health=health)

* ``/livez`` — 200 while the process is alive; 503 only when the event loop lags beyond
  ``loop_lag_threshold`` (a wedged loop). Checks of dependencies never fail liveness.
* ``/readyz`` — 503 while starting, while draining on shutdown, or when a critical check
  fails; 200 otherwise.
* ``/health`` — every component's status, ``uptime_seconds``, ``version``, and an overall
  ``healthy``/``degraded``/``unhealthy`` (503 only when unhealthy).

Bodies are JSON and carry error messages only, never stack traces.
"""

from typing import TYPE_CHECKING

from .._core.extras import lazy_exports

__all__ = [
    "Health",
    "Check",
    "CheckResult",
    "HealthReport",
    "HealthSettings",
    "HealthEndpoint",
    "health_routes",
    "sqlalchemy_check",
    "redis_check",
    "tcp_check",
    "http_check",
]

# Each name is imported from its module on first use (the checks and the settings only when
# asked for).
_LAZY = {
    "HealthEndpoint": "._asgi",
    "health_routes": "._asgi",
    "http_check": "._checks",
    "redis_check": "._checks",
    "sqlalchemy_check": "._checks",
    "tcp_check": "._checks",
    "Check": "._results",
    "CheckResult": "._results",
    "Health": "._health",
    "HealthReport": "._results",
    "HealthSettings": "._settings",
}
__getattr__, __dir__ = lazy_exports(globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from ._asgi import HealthEndpoint, health_routes
    from ._checks import http_check, redis_check, sqlalchemy_check, tcp_check
    from ._health import Health
    from ._results import Check, CheckResult, HealthReport
    from ._settings import HealthSettings
