"""Test helpers for services built with surefoot. Never import this from production code."""

from ._clock import FakeClock
from ._resilience import EventRecorder, is_testing, provider_failures, set_testing, testing

__all__ = ["FakeClock", "set_testing", "is_testing", "testing", "EventRecorder", "provider_failures"]
