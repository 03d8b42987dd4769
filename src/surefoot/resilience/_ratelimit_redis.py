"""Rate limiting shared by several processes: GCRA in one atomic Redis Lua script.

GCRA (the generic cell rate algorithm, as in redis-cell and go-redis/redis_rate) keeps one
number per key, the *theoretical arrival time* (TAT). With emission interval ``T = 1/rate``
and a request costing ``c`` permits::

    tat      = max(stored_tat, now)
    new_tat  = tat + T * c
    allow_at = new_tat - T * burst
    allowed  = now >= allow_at          (or within max_wait: a reservation)

The script reads the time from Redis itself (``TIME``), so processes with skewed clocks agree,
and does read-check-write in one step, so concurrent clients never over-admit. The key expires
when its bucket would be full again, so idle clients cost nothing.

When Redis cannot be reached, the limiter falls back to a local :class:`RateLimiter` with the
same numbers (each process then limits on its own) and logs ``rate_limiter_redis_unavailable``
(at most once per 30 s); pass ``fallback=None`` to raise the Redis error instead.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import structlog

from .._core.clock import SYSTEM_CLOCK
from .._core.extras import require
from ..errors import ConfigurationError
from . import _waits
from ._decisions import DecisionCounter
from ._events import Hooks, checked_hooks
from ._ratelimit import RateLimitDecision, RateLimiter, RateLimitExceededError, _bad_cost, _positive

__all__ = ["RedisRateLimiter", "GCRA_SCRIPT"]

_log = structlog.get_logger("surefoot.resilience")

GCRA_SCRIPT = """
local key = KEYS[1]
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1600000000) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', key))
if tat == nil or tat < now then tat = now end
local new_tat = tat + emission * cost
local allow_at = new_tat - emission * burst
local diff = now - allow_at
if diff < -max_wait then
  local remaining = math.floor(math.max(0, now - (tat - emission * burst)) / emission)
  return {0, string.format('%.6f', -diff), remaining, string.format('%.6f', tat - now)}
end
local ttl = new_tat - now
redis.call('SET', key, string.format('%.6f', new_tat), 'PX', math.max(1, math.ceil(ttl * 1000)))
local wait = 0
if diff < 0 then wait = -diff end
return {1, string.format('%.6f', wait), math.floor(math.max(0, diff) / emission), string.format('%.6f', ttl)}
"""


class RedisRateLimiter:
    """A rate limiter whose buckets live in Redis (GCRA), shared by every process.

    Args:
        rate: permits per ``per`` seconds (> 0).
        per: period of ``rate`` in seconds.
        burst: permits available at once (default: ``rate``, at least 1).
        max_wait: seconds a caller may wait for permits (0 = refuse at once).
        name: limiter name; part of the Redis key ``{prefix}{name}:{key}``.
        url: Redis URL (clients are created lazily: a sync one for :meth:`acquire`, an asyncio
            one for :meth:`aacquire`).
        client: an existing ``redis.Redis`` (sync calls).
        aclient: an existing ``redis.asyncio.Redis`` (async calls).
        prefix: key prefix.
        fallback: ``True`` (default) = a local limiter with the same numbers when Redis is
            unreachable; a :class:`RateLimiter` to use that one; ``None`` to raise instead.
        clock: time source for waits and for log throttling.
        hooks: listeners for ``rate_limiter`` events (``rejected``, ``waited``, ``fallback``).
        registry: Prometheus registry for ``resilience_events_total`` (``rejected``,
            ``redis_unavailable``).

    Raises:
        ConfigurationError: bad numbers, or neither ``url`` nor a client given.
        MissingExtraError: the ``redis`` package is not installed.
    """

    def __init__(
        self,
        rate: float,
        *,
        per: float = 1.0,
        burst: float | None = None,
        max_wait: float = 0.0,
        name: str = "rate_limiter",
        url: str | None = None,
        client: Any = None,
        aclient: Any = None,
        prefix: str = "surefoot:ratelimit:",
        fallback: bool | RateLimiter | None = True,
        clock: Any = None,
        hooks: Hooks | None = None,
        registry: Any = None,
    ) -> None:
        if not _positive(rate) or not _positive(per):
            raise ConfigurationError(
                f"RedisRateLimiter rate and per must be finite numbers > 0; got rate={rate!r} per={per!r}"
            )
        burst = max(1.0, float(rate)) if burst is None else float(burst)
        if burst < 1:
            raise ConfigurationError(f"RedisRateLimiter burst must be >= 1; got {burst!r}")
        if not max_wait >= 0:
            raise ConfigurationError(f"RedisRateLimiter max_wait must be >= 0; got {max_wait!r}")
        if url is None and client is None and aclient is None:
            raise ConfigurationError("RedisRateLimiter needs url=, client= or aclient=")
        self._redis = require("redis", "redis")
        self.emission = float(per) / float(rate)
        self.burst = burst
        self.max_wait = float(max_wait)
        self.name = name
        self.url = url
        self.prefix = f"{prefix}{name}:"
        self.clock = SYSTEM_CLOCK if clock is None else clock
        self.hooks = checked_hooks(hooks, "RedisRateLimiter")
        self._counter = DecisionCounter("rate_limiter", name, registry)
        self._client = client
        self._aclient = aclient
        self._script: Any = None
        self._ascript: Any = None
        if fallback is True:
            fallback = RateLimiter(
                rate, per=per, burst=burst, max_wait=max_wait, name=name, clock=self.clock, registry=registry
            )
        self.fallback: RateLimiter | None = fallback or None
        self._last_warning = float("-inf")
        self._describe = f"{rate:g}/{per:g}s burst {burst:g}"

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self.name!r}, {self._describe})"

    # ----------------------------------------------------------------- clients

    def _sync_script(self) -> Any:
        if self._script is None:
            if self._client is None:
                if self.url is None:
                    raise ConfigurationError("sync RedisRateLimiter calls need url= or client=")
                self._client = self._redis.Redis.from_url(self.url)
            self._script = self._client.register_script(GCRA_SCRIPT)
        return self._script

    def _async_script(self) -> Any:
        if self._ascript is None:
            if self._aclient is None:
                if self.url is None:
                    raise ConfigurationError("async RedisRateLimiter calls need url= or aclient=")
                self._aclient = require("redis.asyncio", "redis").Redis.from_url(self.url)
            self._ascript = self._aclient.register_script(GCRA_SCRIPT)
        return self._ascript

    def _args(self, cost: float, max_wait: float) -> list[str]:
        if not cost > 0:
            raise _bad_cost(cost)
        return [repr(self.emission), repr(self.burst), repr(float(cost)), repr(float(max_wait))]

    @staticmethod
    def _decision(raw: Any) -> tuple[bool, float, int, float]:
        allowed, wait, remaining, reset = raw
        return bool(int(allowed)), float(wait), int(remaining), float(reset)

    def _redis_failed(self, exc: BaseException) -> None:
        self._counter.inc("redis_unavailable")
        if self.fallback is None:
            raise exc
        now = self.clock.monotonic()
        if now - self._last_warning >= 30.0:
            self._last_warning = now
            _log.warning(
                "rate_limiter_redis_unavailable", name=self.name, error_type=type(exc).__name__,
                error_message=str(exc)[:200], fallback="local",
            )
        if self.hooks.active:
            self.hooks.emit("rate_limiter", self.name, "fallback", error=exc)

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (self._redis.exceptions.ConnectionError, self._redis.exceptions.TimeoutError, OSError)

    # ----------------------------------------------------------------- decisions

    def _to_decision(self, allowed: bool, wait: float, remaining: int, reset: float) -> RateLimitDecision:
        return RateLimitDecision(allowed, remaining, 0.0 if allowed else wait, reset)

    def try_acquire(self, key: Hashable = "default", cost: float = 1.0) -> RateLimitDecision:
        """Take ``cost`` permits for ``key`` if available now (never waits)."""
        try:
            raw = self._sync_script()(keys=[f"{self.prefix}{key}"], args=self._args(cost, 0.0))
        except self._errors() as exc:
            self._redis_failed(exc)
            return self.fallback.try_acquire(key, cost)  # type: ignore[union-attr]
        decision = self._to_decision(*self._decision(raw))
        if not decision.allowed:
            self._counter.inc("rejected")
            if self.hooks.active:
                self.hooks.emit("rate_limiter", self.name, "rejected", key=key, retry_after=decision.retry_after)
        return decision

    async def atry_acquire(self, key: Hashable = "default", cost: float = 1.0) -> RateLimitDecision:
        """Async twin of :meth:`try_acquire`."""
        try:
            raw = await self._async_script()(keys=[f"{self.prefix}{key}"], args=self._args(cost, 0.0))
        except self._errors() as exc:
            self._redis_failed(exc)
            return self.fallback.try_acquire(key, cost)  # type: ignore[union-attr]
        decision = self._to_decision(*self._decision(raw))
        if not decision.allowed:
            self._counter.inc("rejected")
            if self.hooks.active:
                self.hooks.emit("rate_limiter", self.name, "rejected", key=key, retry_after=decision.retry_after)
        return decision

    def _refused(self, key: Hashable, wait: float) -> RateLimitExceededError:
        self._counter.inc("rejected")
        if self.hooks.active:
            self.hooks.emit("rate_limiter", self.name, "rejected", key=key, retry_after=wait)
        return RateLimitExceededError(self.name, key, wait, limit=self._describe)

    def acquire(self, key: Hashable = "default", cost: float = 1.0) -> None:
        """Take ``cost`` permits, sleeping up to ``max_wait`` for them.

        Raises:
            RateLimitExceededError: not enough permits within ``max_wait``.
        """
        try:
            raw = self._sync_script()(keys=[f"{self.prefix}{key}"], args=self._args(cost, self.max_wait))
        except self._errors() as exc:
            self._redis_failed(exc)
            self.fallback.acquire(key, cost)  # type: ignore[union-attr]
            return
        allowed, wait, _, _ = self._decision(raw)
        if not allowed:
            raise self._refused(key, wait)
        if wait > 0 and not _waits.is_testing():
            self.clock.sleep(wait)

    async def aacquire(self, key: Hashable = "default", cost: float = 1.0) -> None:
        """Async twin of :meth:`acquire`."""
        try:
            raw = await self._async_script()(keys=[f"{self.prefix}{key}"], args=self._args(cost, self.max_wait))
        except self._errors() as exc:
            self._redis_failed(exc)
            await self.fallback.aacquire(key, cost)  # type: ignore[union-attr]
            return
        allowed, wait, _, _ = self._decision(raw)
        if not allowed:
            raise self._refused(key, wait)
        if wait > 0 and not _waits.is_testing():
            await self.clock.asleep(wait)

    def reset(self, key: Hashable = "default") -> None:
        """Forget ``key``'s state in Redis (its bucket is full again)."""
        self._sync_script()  # ensures the client exists
        self._client.delete(f"{self.prefix}{key}")

    async def areset(self, key: Hashable = "default") -> None:
        """Async twin of :meth:`reset`."""
        self._async_script()
        await self._aclient.delete(f"{self.prefix}{key}")

    def close(self) -> None:
        """Close a sync client this limiter created."""
        if self._client is not None and self.url is not None:
            self._client.close()
            self._client = None
            self._script = None

    async def aclose(self) -> None:
        """Close an async client this limiter created."""
        if self._aclient is not None and self.url is not None:
            await self._aclient.aclose()
            self._aclient = None
            self._ascript = None
