"""The one backoff protocol of surefoot: how long to wait between attempts.

:class:`Backoff` has two views of one policy — :meth:`Backoff.delays` (the waits before retry
1, 2, 3 ..., used by :class:`surefoot.resilience.Retry`) and :meth:`Backoff.delay` (the wait
after ``n`` failed attempts, used by the outbox dispatcher) — so every policy here works for
both. ``surefoot.resilience`` and ``surefoot.outbox`` export these classes; this module
imports nothing from surefoot but its errors.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from ..errors import ConfigurationError

__all__ = ["Backoff", "FullJitter", "Exponential", "Constant", "DecorrelatedJitter"]


class Backoff:
    """How long to wait between attempts; the one protocol of surefoot's retries and outbox.

    Two views of the same policy; a subclass implements at least one of them:

    * :meth:`delays` yields the wait before retry 1, 2, 3 ... (what :class:`Retry` uses, so a
      policy with memory, such as :class:`DecorrelatedJitter`, can build on the previous wait);
    * :meth:`delay` gives the wait after ``attempts`` failed attempts (what the outbox
      dispatcher uses: an event's attempt count is all it keeps between deliveries).
    """

    def delays(self, rng: random.Random) -> Iterator[float]:
        """The waits before retry 1, 2, 3 ... (default: :meth:`delay` for 1, 2, 3 ...)."""
        if type(self).delay is Backoff.delay:
            raise NotImplementedError(f"{type(self).__name__} implements neither delay() nor delays()")
        attempts = 1
        while True:
            yield self.delay(attempts, rng)
            attempts += 1

    def delay(self, attempts: int, rng: random.Random) -> float:
        """The wait after ``attempts`` failed attempts (0 or less: no wait).

        The default walks :meth:`delays` ``attempts`` steps.
        """
        if attempts <= 0:
            return 0.0
        if type(self).delays is Backoff.delays:
            raise NotImplementedError(f"{type(self).__name__} implements neither delay() nor delays()")
        waits = self.delays(rng)
        for _ in range(attempts - 1):
            next(waits)
        return next(waits)


class FullJitter(Backoff):
    """Exponential backoff with full jitter (AWS, gRPC): ``uniform(0, min(cap, base * m**n))``.

    Args:
        base: the cap of the first wait in seconds.
        multiplier: growth per retry.
        max_delay: the largest wait.
    """

    __slots__ = ("base", "multiplier", "max_delay")

    def __init__(
        self, base: float = 0.5, *, multiplier: float = 2.0, max_delay: float | None = None,
        cap: float | None = None,
    ) -> None:
        if max_delay is not None and cap is not None and max_delay != cap:
            raise ConfigurationError(f"FullJitter takes max_delay or cap (the same thing); got {max_delay} and {cap}")
        limit = max_delay if max_delay is not None else cap if cap is not None else self._DEFAULT_MAX
        _check_backoff(base, multiplier, limit)
        self.base, self.multiplier, self.max_delay = base, multiplier, limit

    _DEFAULT_MAX = 30.0

    @property
    def cap(self) -> float:
        """The largest wait (the outbox's name for :attr:`max_delay`)."""
        return self.max_delay

    def ceiling(self, attempts: int) -> float:
        """The upper bound of the wait after ``attempts`` failures."""
        if attempts <= 0:
            return 0.0
        exponent = min(attempts - 1, 1024)  # beyond this the cap always wins; avoid overflow
        try:
            raw = self.base * self.multiplier**exponent
        except OverflowError:
            raw = math.inf
        return min(self.max_delay, raw)

    def delay(self, attempts: int, rng: random.Random) -> float:
        """A wait drawn uniformly from ``[0, ceiling(attempts)]``."""
        return rng.uniform(0.0, self.ceiling(attempts))

    def delays(self, rng: random.Random) -> Iterator[float]:
        ceiling = self.base
        while True:
            yield rng.uniform(0.0, min(self.max_delay, ceiling))
            if ceiling < self.max_delay:
                ceiling *= self.multiplier

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FullJitter):
            return NotImplemented
        return (self.base, self.multiplier, self.max_delay) == (other.base, other.multiplier, other.max_delay)

    def __hash__(self) -> int:
        return hash((FullJitter, self.base, self.multiplier, self.max_delay))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base={self.base}, multiplier={self.multiplier}, max_delay={self.max_delay})"


class Exponential(Backoff):
    """Exponential backoff without jitter: ``min(cap, base * m**n)`` (predictable, herds)."""

    __slots__ = ("base", "multiplier", "max_delay")

    def __init__(self, base: float = 0.5, *, multiplier: float = 2.0, max_delay: float = 30.0) -> None:
        _check_backoff(base, multiplier, max_delay)
        self.base, self.multiplier, self.max_delay = base, multiplier, max_delay

    def delays(self, rng: random.Random) -> Iterator[float]:
        delay = self.base
        while True:
            yield min(self.max_delay, delay)
            if delay < self.max_delay:
                delay *= self.multiplier

    def delay(self, attempts: int, rng: random.Random) -> float:
        if attempts <= 0:
            return 0.0
        try:
            raw = self.base * self.multiplier ** min(attempts - 1, 1024)
        except OverflowError:
            raw = math.inf
        return min(self.max_delay, raw)

    def __repr__(self) -> str:
        return f"Exponential(base={self.base}, multiplier={self.multiplier}, max_delay={self.max_delay})"


class Constant(Backoff):
    """The same wait before every retry.

    Args:
        seconds: the wait (``delay`` is the protocol method giving it for any attempt).
    """

    __slots__ = ("seconds",)

    def __init__(self, seconds: float = 0.5) -> None:
        if not seconds >= 0:
            raise ConfigurationError(f"Constant backoff delay must be >= 0 seconds; got {seconds!r}")
        self.seconds = seconds

    def delay(self, attempts: int, rng: random.Random) -> float:
        return self.seconds if attempts > 0 else 0.0

    def delays(self, rng: random.Random) -> Iterator[float]:
        while True:
            yield self.seconds

    def __repr__(self) -> str:
        return f"Constant({self.seconds})"


class DecorrelatedJitter(Backoff):
    """Polly's "decorrelated jitter v2" (by George Polevoy, scaled by Polly).

    For retry ``n`` (0-based) with ``t = n + U(0, 1)``::

        f(t)  = 2**t * tanh(sqrt(4 * t))
        delay = (f(t) - f(t_previous)) / 1.4 * median_first_delay

    Medians fall near ``median_first_delay * 1, 2, 4 ...`` while consecutive waits stay
    decorrelated and smooth, without the clamping artefacts of naive decorrelated jitter.

    Args:
        median_first_delay: the median of the first wait in seconds.
        max_delay: the largest wait.
    """

    __slots__ = ("median_first_delay", "max_delay")

    _P_FACTOR = 4.0
    _RP_SCALING = 1 / 1.4

    def __init__(self, median_first_delay: float = 0.5, *, max_delay: float = 30.0) -> None:
        _check_backoff(median_first_delay, 2.0, max_delay)
        self.median_first_delay, self.max_delay = median_first_delay, max_delay

    def delays(self, rng: random.Random) -> Iterator[float]:
        previous = 0.0
        n = 0
        scale = self._RP_SCALING * self.median_first_delay
        while True:
            t = n + rng.random()
            try:
                current = math.pow(2.0, t) * math.tanh(math.sqrt(self._P_FACTOR * t))
            except OverflowError:
                current = math.inf
            if math.isinf(current):
                # Past ~1000 retries the formula overflows; the cap applies from then on.
                while True:
                    yield self.max_delay
            yield min(self.max_delay, (current - previous) * scale)
            previous = current
            n += 1

    def __repr__(self) -> str:
        return f"DecorrelatedJitter(median_first_delay={self.median_first_delay}, max_delay={self.max_delay})"


def _check_backoff(base: float, multiplier: float, max_delay: float) -> None:
    if not base >= 0:
        raise ConfigurationError(f"backoff base delay must be >= 0 seconds; got {base!r}")
    if not multiplier >= 1:
        raise ConfigurationError(f"backoff multiplier must be >= 1; got {multiplier!r}")
    if not max_delay >= 0:
        raise ConfigurationError(f"backoff max_delay must be >= 0 seconds; got {max_delay!r}")
