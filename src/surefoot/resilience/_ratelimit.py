"""Local rate limiter: a token bucket per key, on an injected clock.

A bucket holds at most ``burst`` permits and refills at ``rate`` permits per ``per`` seconds.
A call takes ``cost`` permits. When there are not enough:

* with ``max_wait=0`` (default) the call is refused at once with
  :class:`RateLimitExceededError` (a :class:`surefoot.errors.RateLimitError`, 429) whose
  ``retry_after`` says when enough permits will be there;
* with ``max_wait > 0`` the caller *reserves* the permits (the bucket goes negative) and
  sleeps until they exist, when that is at most ``max_wait`` away — fair, FIFO-like spacing
  for outbound calls to a provider with a quota.

Keys separate clients (IP, API key, tenant): each key has its own bucket. Idle keys whose
bucket is full again are forgotten (a full bucket is the same as no bucket), and at most
``max_keys`` are kept.

For several processes use :class:`surefoot.resilience.RedisRateLimiter` (GCRA in Redis).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._core.callables import (
    DEFERRED_TYPES,
    around_async_generator,
    around_generator,
    athrough,
    refuse_deferred,
    through,
    wrap_callable,
)
from .._core.clock import SYSTEM_CLOCK
from ..errors import ConfigurationError, RateLimitError
from . import _waits
from ._decisions import DecisionCounter
from ._events import Hooks, checked_hooks

__all__ = ["RateLimiter", "RateLimitExceededError", "RateLimitDecision"]

T = TypeVar("T")

DEFAULT_KEY = "default"


class RateLimitExceededError(RateLimitError):
    """A rate limiter refused a call (429); ``retry_after`` says when to come back.

    Attributes:
        name: the limiter's name.
        key: the client key that was limited.
        retry_after: seconds until enough permits are available.
    """

    def __init__(self, name: str, key: Hashable, retry_after: float, *, limit: str = "") -> None:
        super().__init__(
            f"{name}: rate limit{(' ' + limit) if limit else ''} exceeded; retry in {retry_after:.3g}s",
            retry_after=retry_after,
        )
        self.name = name
        self.key = key

    def __reduce__(self) -> Any:
        return (type(self), (self.name, self.key, self.retry_after))


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The answer of a limiter.

    Attributes:
        allowed: the permits were granted.
        remaining: whole permits left after this decision.
        retry_after: seconds until the request would be allowed (0 when allowed).
        reset_after: seconds until the bucket is full again.
    """

    allowed: bool
    remaining: int
    retry_after: float
    reset_after: float


class RateLimiter:
    """Token bucket rate limiter, per key.

    Args:
        rate: permits added per ``per`` seconds (> 0).
        per: the period of ``rate`` in seconds (``rate=100, per=60`` = 100 per minute).
        burst: bucket capacity (default: ``rate``, at least 1).
        max_wait: seconds a caller may wait for permits (0 = refuse at once).
        name: the dependency or endpoint (metrics, events, errors).
        max_keys: at most this many per-key buckets are kept.
        clock: time source (``monotonic``, ``sleep``, ``asleep``).
        hooks: listeners for ``rate_limiter`` events (``rejected``, ``waited``).
        registry: Prometheus registry for ``rate_limiter_available_permits{name}`` (the default
            key's bucket, read at scrape time) and ``resilience_events_total`` (``rejected``,
            ``waited``).

    Raises:
        ConfigurationError: a number is out of range.
    """

    def __init__(
        self,
        rate: float,
        *,
        per: float = 1.0,
        burst: float | None = None,
        max_wait: float = 0.0,
        name: str = "rate_limiter",
        max_keys: int = 100_000,
        clock: Any = None,
        hooks: Hooks | None = None,
        registry: Any = None,
    ) -> None:
        if not _positive(rate):
            raise ConfigurationError(f"RateLimiter rate must be a finite number > 0; got {rate!r}")
        if not _positive(per):
            raise ConfigurationError(f"RateLimiter per must be a finite number of seconds > 0; got {per!r}")
        burst = max(1.0, float(rate)) if burst is None else float(burst)
        if not burst >= 1:
            raise ConfigurationError(f"RateLimiter burst must be >= 1; got {burst!r}")
        if not max_wait >= 0:
            raise ConfigurationError(f"RateLimiter max_wait must be >= 0 seconds; got {max_wait!r}")
        if max_keys < 1:
            raise ConfigurationError(f"RateLimiter max_keys must be >= 1; got {max_keys!r}")
        self.rate = float(rate) / float(per)  # permits per second
        self.burst = burst
        self.max_wait = float(max_wait)
        self.name = name
        self.max_keys = max_keys
        self.clock = SYSTEM_CLOCK if clock is None else clock
        self._mono = self.clock.monotonic
        self.hooks = checked_hooks(hooks, "RateLimiter")
        self._registry = registry
        self._counter = DecisionCounter("rate_limiter", name, registry)
        self._buckets: dict[Hashable, list[float]] = {}  # key -> [tokens, updated_at]
        self._lock = threading.Lock()
        self._metrics_bound = False
        self._describe = f"{rate:g}/{per:g}s burst {burst:g}"

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self._describe})"

    def _bind_metrics(self) -> None:
        from .._core.catalogue import RATE_LIMITER_AVAILABLE

        ref = weakref.ref(self)

        def read() -> float:
            limiter = ref()
            return float(limiter.available()) if limiter is not None else 0.0

        RATE_LIMITER_AVAILABLE.get(self._registry).labels(self.name).set_function(read)
        self._metrics_bound = True

    def available(self, key: Hashable = DEFAULT_KEY) -> float:
        """Permits available now for ``key`` (may be negative while reservations are pending)."""
        now = self.clock.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return self.burst
            tokens = bucket[0] + (now - bucket[1]) * self.rate
            return tokens if tokens < self.burst else self.burst

    def _take(self, key: Hashable, cost: float, max_wait: float) -> tuple[bool, float, float]:
        """Take ``cost`` permits; returns (granted, wait, tokens_after). Never sleeps."""
        now = self._mono()
        rate = self.rate
        burst = self.burst
        with self._lock:
            buckets = self._buckets
            bucket = buckets.get(key)
            if bucket is None:
                if len(buckets) >= self.max_keys:
                    self._evict(now)
                bucket = buckets[key] = [burst, now]
                tokens = burst
            else:
                tokens = bucket[0] + (now - bucket[1]) * rate
                if tokens > burst:
                    tokens = burst
            if tokens >= cost:
                bucket[0] = tokens - cost
                bucket[1] = now
                return True, 0.0, tokens - cost
            wait = (cost - tokens) / rate
            if wait <= max_wait:
                bucket[0] = tokens - cost  # reserve: the bucket goes negative
                bucket[1] = now
                return True, wait, tokens - cost
            bucket[0] = tokens
            bucket[1] = now
            return False, wait, tokens

    def _evict(self, now: float) -> None:
        rate, burst = self.rate, self.burst
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * rate >= burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            # Everyone is active: forget the oldest keys (they get a fresh, full bucket).
            for key in list(self._buckets)[: max(1, self.max_keys // 10)]:
                del self._buckets[key]

    def try_acquire(self, key: Hashable = DEFAULT_KEY, cost: float = 1.0) -> RateLimitDecision:
        """Take ``cost`` permits for ``key`` if available now; never waits.

        Returns:
            the decision, with ``remaining``/``retry_after``/``reset_after`` for response headers.
        """
        if not self._metrics_bound:
            self._bind_metrics()
        if not cost > 0:
            raise _bad_cost(cost)
        granted, wait, tokens = self._take(key, cost, 0.0)
        if not granted:
            self._counter.inc("rejected")
            if self.hooks.active:
                self.hooks.emit("rate_limiter", self.name, "rejected", key=key, retry_after=wait)
        return RateLimitDecision(
            granted, max(0, int(tokens)), 0.0 if granted else wait, max(0.0, (self.burst - tokens) / self.rate)
        )

    def _refused(self, key: Hashable, wait: float) -> RateLimitExceededError:
        self._counter.inc("rejected")
        if self.hooks.active:
            self.hooks.emit("rate_limiter", self.name, "rejected", key=key, retry_after=wait)
        return RateLimitExceededError(self.name, key, wait, limit=self._describe)

    def reserve(self, key: Hashable = DEFAULT_KEY, cost: float = 1.0) -> float:
        """Take ``cost`` permits now or reserve them; return how long to wait before using them.

        Raises:
            RateLimitExceededError: they would not be available within ``max_wait``.
        """
        if not self._metrics_bound:
            self._bind_metrics()
        if not cost > 0:
            raise _bad_cost(cost)
        now = self._mono()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is not None:
                # the common case, inlined: a known key with enough permits
                tokens = bucket[0] + (now - bucket[1]) * self.rate
                if tokens > self.burst:
                    tokens = self.burst
                if tokens >= cost:
                    bucket[0] = tokens - cost
                    bucket[1] = now
                    return 0.0
        granted, wait, _ = self._take(key, cost, self.max_wait)
        if not granted:
            raise self._refused(key, wait)
        if wait > 0:
            self._counter.inc("waited")
            if self.hooks.active:
                self.hooks.emit("rate_limiter", self.name, "waited", key=key, delay=wait)
        return wait

    async def await_reserved(self, wait: float) -> None:
        """Wait out a reservation made by :meth:`reserve` (skipped with testing on)."""
        if wait > 0 and not _waits.is_testing():
            await self.clock.asleep(wait)

    def acquire(self, key: Hashable = DEFAULT_KEY, cost: float = 1.0) -> None:
        """Take ``cost`` permits, sleeping up to ``max_wait`` for them.

        Raises:
            RateLimitExceededError: not enough permits within ``max_wait``.
        """
        wait = self.reserve(key, cost)
        if wait > 0 and not _waits.is_testing():
            self.clock.sleep(wait)

    async def aacquire(self, key: Hashable = DEFAULT_KEY, cost: float = 1.0) -> None:
        """Take ``cost`` permits, awaiting up to ``max_wait`` for them.

        Raises:
            RateLimitExceededError: not enough permits within ``max_wait``.
        """
        wait = self.reserve(key, cost)
        if wait > 0 and not _waits.is_testing():
            await self.clock.asleep(wait)

    def reset(self, key: Hashable | None = None) -> None:
        """Refill ``key``'s bucket (every bucket when ``None``)."""
        with self._lock:
            if key is None:
                self._buckets.clear()
            else:
                self._buckets.pop(key, None)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Take one permit (default key) and call ``fn``."""
        self.acquire()
        result = fn(*args, **kwargs)
        if type(result) in DEFERRED_TYPES:
            refuse_deferred(result, "RateLimiter", "limiter")
        return result

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Take one permit (default key) and await ``fn``."""
        await self.aacquire()
        return await fn(*args, **kwargs)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a function, coroutine function or (async) generator function.

        One permit of the default key per call; for generators, one permit when iteration starts.
        """
        return wrap_callable(
            fn, owner="RateLimiter", var="limiter", attribute="rate_limiter", component=self,
            function=through(self.call), coroutine=athrough(self.acall),
            generator=lambda f: around_generator(f, self.acquire, _nothing),
            async_generator=lambda f: around_async_generator(f, self.aacquire, _nothing),
        )


def _nothing() -> None:
    return None


def _positive(value: Any) -> bool:
    """A finite number > 0 (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


def _bad_cost(cost: Any) -> ConfigurationError:
    return ConfigurationError(f"a rate limiter cost is the number of permits a call takes, > 0; got {cost!r}")
