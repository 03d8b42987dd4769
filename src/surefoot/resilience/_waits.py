"""The process-wide testing switch that turns resilience waits off.

With testing on (``surefoot.testing.set_testing(True)``, or ``with surefoot.testing.no_waits():``)
retry backoff sleeps, rate-limiter reservations and injected chaos latency return immediately
instead of sleeping, and retries may be capped to a number of attempts (as stamina's
``set_testing``), so a test suite that exercises failure paths stays fast. Bulkhead waits are
not skipped: they wait for capacity, not for time to pass. The switch is read only on slow
paths (when a wait is about to happen), never on the success path.
"""

from __future__ import annotations

from .._core.state import STATE

__all__ = ["set_testing", "is_testing", "testing_attempts"]



class _Waits:
    """The switch (one object, registered with the process state)."""

    __slots__ = ("testing", "attempts")

    def __init__(self) -> None:
        self.testing = False
        self.attempts: int | None = None


_waits = _Waits()


def set_testing(testing: bool, *, attempts: int | None = None) -> None:
    """Turn waits off (``True``) or back on (``False``) for the whole process.

    Args:
        testing: ``True`` skips every resilience wait for time to pass (backoff sleeps,
            rate-limiter reservations, injected latency); bulkhead waits for a free slot stay.
        attempts: with testing on, cap every retry at this many attempts (``None`` keeps each
            retry's own ``max_attempts``; ``1`` disables retrying entirely).

    Raises:
        ConfigurationError: ``attempts`` is smaller than 1.
    """
    if attempts is not None and attempts < 1:
        from ..errors import ConfigurationError

        raise ConfigurationError(f"attempts must be at least 1 (one attempt = no retry); got {attempts}")
    _waits.testing = bool(testing)
    _waits.attempts = attempts if testing else None


def is_testing() -> bool:
    """True when waits are turned off."""
    return _waits.testing


def testing_attempts() -> int | None:
    """The attempt cap set with :func:`set_testing`, or ``None``."""
    return _waits.attempts


def _reset_waits() -> None:
    set_testing(False)


STATE.own("resilience.waits", _waits, reset=_reset_waits)
