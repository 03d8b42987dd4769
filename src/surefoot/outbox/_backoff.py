"""When to try a failed event again: exponential backoff with full jitter.

The dispatcher only needs ``delay(attempts, rng) -> seconds``: every policy of surefoot's one
backoff protocol (:mod:`surefoot._core.backoff`, also exported by ``surefoot.resilience``:
``FullJitter``, ``Exponential``, ``Constant``, ``DecorrelatedJitter``) provides it.
"""

from __future__ import annotations

from .._core.backoff import Backoff
from .._core.backoff import FullJitter as _FullJitter

__all__ = ["Backoff", "FullJitter"]


class FullJitter(_FullJitter):
    """``uniform(0, min(cap, base * multiplier ** (attempts - 1)))`` (AWS "full jitter").

    The resilience ``FullJitter`` with the outbox's defaults (``base=1.0``, ``cap=600.0``);
    ``cap`` and ``max_delay`` are the same setting.

    Args:
        base: the ceiling after the first failure, in seconds.
        cap: the largest ceiling, in seconds.
        multiplier: growth of the ceiling per failure.
    """

    __slots__ = ()
    _DEFAULT_MAX = 600.0

    def __init__(
        self, base: float = 1.0, cap: float | None = None, multiplier: float = 2.0, *,
        max_delay: float | None = None,
    ) -> None:
        super().__init__(base, multiplier=multiplier, max_delay=max_delay, cap=cap)
