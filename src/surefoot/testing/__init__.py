"""Test helpers for services built with surefoot. Never import this from production code."""

from ._clock import FakeClock

__all__ = ["FakeClock"]
