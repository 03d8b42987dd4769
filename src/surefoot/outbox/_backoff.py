"""When to try a failed event again: exponential backoff with full jitter.

The dispatcher only needs something with ``delay(attempts, rng) -> seconds``; any retry
policy offering that (for instance the resilience module's) can replace :class:`FullJitter`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..errors import ConfigurationError

__all__ = ["Backoff", "FullJitter"]


@runtime_checkable
class Backoff(Protocol):
    """How long to wait before attempt ``attempts + 1`` after ``attempts`` failed ones."""

    def delay(self, attempts: int, rng: random.Random) -> float: ...


@dataclass(frozen=True)
class FullJitter:
    """``uniform(0, min(cap, base * multiplier ** (attempts - 1)))`` (AWS "full jitter").

    Args:
        base: the ceiling after the first failure, in seconds.
        cap: the largest ceiling, in seconds.
        multiplier: growth of the ceiling per failure.
    """

    base: float = 1.0
    cap: float = 600.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.multiplier < 1:
            raise ConfigurationError(
                f"backoff needs base >= 0, cap >= 0 and multiplier >= 1; got {self}"
            )

    def ceiling(self, attempts: int) -> float:
        """The upper bound of the delay after ``attempts`` failures."""
        if attempts <= 0:
            return 0.0
        exponent = min(attempts - 1, 1024)  # beyond this the cap always wins; avoid overflow
        try:
            raw = self.base * self.multiplier**exponent
        except OverflowError:
            raw = float("inf")
        return min(self.cap, raw)

    def delay(self, attempts: int, rng: random.Random) -> float:
        """A delay drawn uniformly from ``[0, ceiling(attempts)]``."""
        return rng.uniform(0.0, self.ceiling(attempts))
