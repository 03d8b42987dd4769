"""The records of health checks: a registered check, one run's result, a whole report.

Built on first use (a check added, a round of checks run), not when ``Health`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Check", "CheckResult", "HealthReport", "Status"]

Status = Literal["healthy", "degraded", "unhealthy"]


@dataclass(frozen=True)
class Check:
    """A registered check.

    Attributes:
        name: the component name in reports.
        func: an async callable (or a sync one, run in a worker thread).
        critical: a failing critical check makes the service unhealthy and not ready; a
            failing non-critical one only makes it ``degraded``.
        timeout: seconds before the check counts as failed.
    """

    name: str
    func: Callable[[], Any]
    critical: bool = True
    timeout: float = 2.0


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check run."""

    name: str
    status: Status
    critical: bool
    latency_ms: float
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The component entry of the JSON reports."""
        out: dict[str, Any] = {
            "status": self.status,
            "critical": self.critical,
            "latency_ms": self.latency_ms,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True)
class HealthReport:
    """All checks' results at one moment."""

    status: Status
    components: dict[str, CheckResult]
    checked_at: float

    @property
    def critical_failures(self) -> list[str]:
        """Names of the failing critical checks."""
        return [r.name for r in self.components.values() if r.critical and r.status == "unhealthy"]
