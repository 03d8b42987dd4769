"""A virtual clock for tests: sleeps advance time instantly and deterministically."""

from __future__ import annotations

import asyncio


class FakeClock:
    """A clock whose time moves only when told to (or when something sleeps on it).

    Args:
        start: the initial wall time (seconds since the epoch).

    ``sleep`` and ``asleep`` advance the clock by the requested amount and record it in
    :attr:`sleeps`; ``asleep`` also yields to the event loop once so other tasks run.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._offset = float(start)
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must not be negative)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        self._now += seconds

    def set(self, when: float) -> None:
        """Set the wall time (monotonic time moves by the same amount; it may not go back)."""
        self.advance(when - self._now)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
