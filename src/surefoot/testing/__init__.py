"""Test helpers for services built with surefoot. Never import this from production code."""

from ._clock import FakeClock
from ._resilience import EventRecorder, is_testing, no_waits, provider_failures, set_testing

__all__ = ["FakeClock", "set_testing", "is_testing", "no_waits", "EventRecorder", "provider_failures"]
