"""Test helpers for services built with surefoot. Never import this from production code."""

from ._clock import FakeClock
from ._logs import CapturedLogs, capture_logs
from ._metrics import fresh_registry, metric_value
from ._overrides import override_dependencies

__all__ = [
    "FakeClock",
    "capture_logs",
    "CapturedLogs",
    "metric_value",
    "fresh_registry",
    "override_dependencies",
]
