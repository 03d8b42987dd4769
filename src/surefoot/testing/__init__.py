"""Test helpers for services built with surefoot. Never import this from production code."""

from ._clock import FakeClock
from ._outbox import DrainResult, InMemoryOutbox, adrain, drain

__all__ = ["FakeClock", "InMemoryOutbox", "DrainResult", "drain", "adrain"]
