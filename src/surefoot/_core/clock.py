"""Injected time: every wait, timeout, window and jitter in surefoot takes a clock.

A clock has ``time()`` (wall seconds since the epoch), ``monotonic()`` (seconds for
durations), ``sleep(s)`` and ``async asleep(s)``. :data:`SYSTEM_CLOCK` is the real one;
:class:`surefoot.testing.FakeClock` is a virtual one whose sleeps advance time instantly.
"""

from __future__ import annotations

import asyncio
import time as _time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "SYSTEM_CLOCK"]


@runtime_checkable
class Clock(Protocol):
    """What surefoot needs of a clock."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)
    sleep = staticmethod(_time.sleep)

    @staticmethod
    async def asleep(seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
