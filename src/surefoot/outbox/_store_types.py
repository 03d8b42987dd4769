"""What every outbox store returns: claimed rows and statistics (no database imports)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ._event import Event

__all__ = ["Claimed", "Stats"]


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed row: the event and its commit time (``created_at``, database clock)."""

    event: Event
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Stats:
    """Pending events, the age of the oldest (database clock) and dead letters."""

    pending: int
    lag_seconds: float
    in_flight: int
    dead_letters: int
