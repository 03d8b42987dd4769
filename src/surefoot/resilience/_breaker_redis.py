"""A circuit breaker whose state is shared by every process through Redis (extra ``redis``).

:class:`RedisCircuitBreaker` keeps the state machine of :class:`CircuitBreaker` — states,
open duration per consecutive opening, consecutive failures, failure/slow-call rates over a
*time* window, half-open permits or traffic percentage, the max-wait guard, Retry-After
force-open, forced-open and disabled — in two Redis hashes, and moves it with Lua scripts so
that every decision is atomic across processes:

* ``acquire``  — one script: open → half-open when the open duration passed, half-open
  permit accounting (the cap on trial calls is global), max-wait guard.
* an outcome  — one script: records into the shared per-second window (a ring of buckets
  with running totals, like :class:`~._window.TimeWindow`), applies the trip rules and the
  half-open decision.
* ``release`` — gives a half-open permit back.

So a call costs two round trips (~0.1-0.3 ms on a LAN): use it for calls to remote
dependencies, where a breaker matters, not for microsecond paths.

Time is the callers' wall clock (``clock.time()``) sent with each script, so tests can run
every process in virtual time; hosts must be NTP-synchronised (skew of milliseconds is
irrelevant against open durations of seconds). Every process must use the same options
for a name (they travel with each script call; the last caller's options apply).

When Redis is unreachable (or its client fails in any way) the breaker never raises into
the caller because of it: it logs ``circuit_breaker_backend_unavailable`` once per outage, counts
``circuit_breaker_backend_errors_total{name}``, emits a ``backend_unavailable`` event and
decides with its local state machine (the inherited :class:`CircuitBreaker` behaviour),
trying Redis again after ``retry_interval`` seconds. Local decisions are not written back:
once Redis answers, the shared state is authoritative again (``backend_recovered`` is
logged).

This module is over 600 lines on purpose: about half of it is the Lua source of the two
scripts, which must stay next to the Python that calls them and mirrors their state layout.

The latency rule is judged by each process on the durations it sees (its baseline is its
own); when one process's judgement trips, it opens the shared breaker for everyone (reason
``latency``). Count windows are not shared (use ``window="time"``).
"""

from __future__ import annotations

import json
from typing import Any

from .._core.callables import UnsupportedCallableError
from .._core.extras import require
from ..errors import ConfigurationError
from ._breaker import CircuitBreaker
from ._breaker_rules import _STATE_ENUM, CLOSED, DISABLED, FORCED_OPEN, HALF_OPEN, OPEN
from ._window import FAILURE, SLOW

__all__ = ["RedisCircuitBreaker"]

_LUA_COMMON = r"""
local H, W = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local cfg = cjson.decode(ARGV[2])
local trans = {}

local function num(v, d) if v then return tonumber(v) end return d end

local function touch()
  redis.call('EXPIRE', H, cfg.ttl)
end

local function open_for(op)
  local d = cfg.durs
  if op < 1 then op = 1 end
  if op > #d then return d[#d] end
  return d[op]
end

local function to_open(from, reason, dur)
  local op = num(redis.call('HGET', H, 'op'), 0)
  if not dur then
    op = op + 1
    dur = open_for(op)
  end
  redis.call('HSET', H, 'st', 1, 'ou', tostring(now + dur), 'op', op, 'ch', tostring(now))
  table.insert(trans, {from, 1, reason, tostring(dur), op})
  touch()
end

local function to_closed(from, reason)
  redis.call('HSET', H, 'st', 0, 'op', 0, 'cf', 0, 'ch', tostring(now), 'hi', 0, 'hd', 0, 'hf', 0, 'hw', 0)
  redis.call('DEL', W)
  table.insert(trans, {from, 0, reason, '0', 0})
  touch()
end

local function to_half_open(from)
  redis.call('HSET', H, 'st', 2, 'hs', tostring(now), 'hu', tostring(now), 'hi', 0, 'hd', 0, 'hf', 0, 'hw', 0,
             'ch', tostring(now))
  table.insert(trans, {from, 2, 'open_duration_elapsed', '0', 0})
  touch()
end

local function flat(head)
  local out = head
  table.insert(out, #trans)
  for _, t in ipairs(trans) do
    for _, v in ipairs(t) do table.insert(out, v) end
  end
  return out
end
"""

_LUA_ACQUIRE = _LUA_COMMON + r"""
-- ARGV[3]: '1' when the caller's rng admits it in traffic mode
local st = num(redis.call('HGET', H, 'st'), 0)
if st == 0 or st == 3 then return flat({1, '0', st}) end
if st == 4 then return flat({0, tostring(open_for(math.max(1, num(redis.call('HGET', H, 'op'), 0)))), 4}) end
if st == 1 then
  local ou = num(redis.call('HGET', H, 'ou'), 0)
  if now < ou then return flat({0, tostring(ou - now), 1}) end
  to_half_open(1)
end
-- half-open
local f = redis.call('HMGET', H, 'hs', 'hi', 'hd', 'hf')
local hs, hi, hd, hf = num(f[1], now), num(f[2], 0), num(f[3], 0), num(f[4], 0)
if cfg.traffic > 0 then
  if hd >= cfg.homin and now - hs >= cfg.how and not (hf > 0 and hf / hd >= cfg.hofr) then
    to_closed(2, 'half_open_trial_passed')
    return flat({1, '0', 0})
  end
  if ARGV[3] == '1' then
    redis.call('HINCRBY', H, 'hi', 1)
    return flat({1, '0', 2})
  end
  return flat({0, '1', 2})
end
if hi < cfg.permits then
  hi = redis.call('HINCRBY', H, 'hi', 1)
  if hi >= cfg.permits then redis.call('HSET', H, 'hu', tostring(now)) end
  return flat({1, '0', 2})
end
if cfg.mw >= 0 then
  local waited = now - num(redis.call('HGET', H, 'hu'), hs)
  if waited >= cfg.mw then
    to_open(2, 'half_open_max_wait', nil)
    return flat({0, tostring(num(redis.call('HGET', H, 'ou'), now) - now), 1})
  end
  return flat({0, tostring(cfg.mw - waited), 2})
end
return flat({0, '1', 2})
"""

_LUA_RECORD = _LUA_COMMON + r"""
-- ARGV[3] failed (0/1), ARGV[4] slow (0/1), ARGV[5] retry-after seconds or ''
local failed, slow = tonumber(ARGV[3]), tonumber(ARGV[4])
local ra = tonumber(ARGV[5])
local st = num(redis.call('HGET', H, 'st'), 0)
if failed == 1 then redis.call('HSET', H, 'lf', tostring(now)) end
local calls, fails, slows = 0, 0, 0
local cf = num(redis.call('HGET', H, 'cf'), 0)

if ra and st ~= 3 and st ~= 4 then
  if st == 1 then
    local ou = num(redis.call('HGET', H, 'ou'), 0)
    if now + ra > ou then redis.call('HSET', H, 'ou', tostring(now + ra)) end
  else
    to_open(st, 'retry_after', ra)
  end
elseif st == 0 then
  local reason = nil
  if cfg.thr > 0 then
    if failed == 1 then
      cf = redis.call('HINCRBY', H, 'cf', 1)
      if cf >= cfg.thr then reason = 'consecutive_failures' end
    elseif cf ~= 0 then
      cf = 0
      redis.call('HSET', H, 'cf', 0)
    end
  end
  if cfg.size > 0 then
    local size = cfg.size
    local sec = math.floor(now)
    local t = redis.call('HMGET', W, 'hd', 'c', 'f', 's')
    local head = num(t[1], -1)
    calls, fails, slows = num(t[2], 0), num(t[3], 0), num(t[4], 0)
    if sec > head then
      local first = head + 1
      if head < 0 or sec - head >= size then first = sec - size + 1 end
      for s = first, sec do
        local i = s % size
        local b = redis.call('HMGET', W, 'e' .. i, 'c' .. i, 'f' .. i, 's' .. i)
        if b[1] and tonumber(b[1]) >= 0 then
          calls = calls - num(b[2], 0)
          fails = fails - num(b[3], 0)
          slows = slows - num(b[4], 0)
        end
        redis.call('HSET', W, 'e' .. i, s, 'c' .. i, 0, 'f' .. i, 0, 's' .. i, 0)
      end
      head = sec
    end
    local i = head % size
    redis.call('HINCRBY', W, 'c' .. i, 1)
    calls = calls + 1
    if failed == 1 then redis.call('HINCRBY', W, 'f' .. i, 1); fails = fails + 1 end
    if slow == 1 then redis.call('HINCRBY', W, 's' .. i, 1); slows = slows + 1 end
    redis.call('HSET', W, 'hd', head, 'c', calls, 'f', fails, 's', slows)
    redis.call('EXPIRE', W, cfg.ttl)
    if not reason and calls >= cfg.min then
      if cfg.fr > 0 and fails > 0 and fails / calls >= cfg.fr then
        reason = 'failure_rate'
      elseif cfg.sr > 0 and slows > 0 and slows / calls >= cfg.sr then
        reason = 'slow_call_rate'
      end
    end
  end
  if reason then to_open(0, reason, nil) end
elseif st == 2 then
  local f = redis.call('HMGET', H, 'hs', 'hi', 'hd', 'hf', 'hw')
  local hs, hi, hd, hf, hw = num(f[1], now), num(f[2], 0), num(f[3], 0), num(f[4], 0), num(f[5], 0)
  if hd < hi then
    hd = hd + 1
    hf = hf + failed
    hw = hw + slow
    redis.call('HSET', H, 'hd', hd, 'hf', hf, 'hw', hw)
    calls, fails, slows = hd, hf, hw
    if cfg.traffic > 0 then
      if hd >= cfg.homin then
        if hf > 0 and hf / hd >= cfg.hofr then
          to_open(2, 'half_open_failure_rate', nil)
        elseif now - hs >= cfg.how then
          to_closed(2, 'half_open_trial_passed')
        end
      end
    else
      local n = cfg.permits
      if hf > 0 and hf / n >= cfg.hofr then
        to_open(2, 'half_open_failure', nil)
      elseif cfg.sr > 0 and hw > 0 and hw / n >= cfg.sr then
        to_open(2, 'half_open_slow_calls', nil)
      elseif hd >= n then
        to_closed(2, 'half_open_trial_passed')
      end
    end
  end
end
st = num(redis.call('HGET', H, 'st'), 0)
return flat({st, calls, fails, slows, cf})
"""

_LUA_RELEASE = _LUA_COMMON + r"""
local f = redis.call('HMGET', H, 'st', 'hi', 'hd')
if num(f[1], 0) == 2 and num(f[2], 0) > num(f[3], 0) then
  redis.call('HINCRBY', H, 'hi', -1)
end
return flat({num(f[1], 0)})
"""

_LUA_SET = _LUA_COMMON + r"""
-- ARGV[3]: the state to enter (0 closed/reset, 3 disabled, 4 forced open)
local to = tonumber(ARGV[3])
local from = num(redis.call('HGET', H, 'st'), 0)
if to == 0 then
  to_closed(from, 'reset')
else
  redis.call('HSET', H, 'st', to, 'ch', tostring(now))
  table.insert(trans, {from, to, to == 3 and 'disabled' or 'forced_open', '0', 0})
  touch()
end
return flat({to})
"""

_LUA_TRIP = _LUA_COMMON + r"""
-- ARGV[3]: the reason; opens the shared breaker if it is still closed
local st = num(redis.call('HGET', H, 'st'), 0)
if st == 0 then to_open(0, ARGV[3], nil) end
return flat({num(redis.call('HGET', H, 'st'), 0)})
"""

_LUA_STATS = r"""
-- read only: totals over the buckets still inside the window at ARGV[1] (size ARGV[2])
local h = redis.call('HGETALL', KEYS[1])
local size = tonumber(ARGV[2])
local c, f, s = 0, 0, 0
if size > 0 then
  local oldest = math.floor(tonumber(ARGV[1])) - size
  for i = 0, size - 1 do
    local b = redis.call('HMGET', KEYS[2], 'e' .. i, 'c' .. i, 'f' .. i, 's' .. i)
    if b[1] and tonumber(b[1]) > oldest then
      c = c + tonumber(b[2] or 0)
      f = f + tonumber(b[3] or 0)
      s = s + tonumber(b[4] or 0)
    end
  end
end
return {h, {c, f, s}}
"""


class _Script:
    """EVALSHA with a fallback to EVAL on NOSCRIPT (works with any client, sync or async)."""

    def __init__(self, source: str) -> None:
        import hashlib

        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def run(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)

    async def arun(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


_ACQUIRE = _Script(_LUA_ACQUIRE)
_RECORD = _Script(_LUA_RECORD)
_RELEASE = _Script(_LUA_RELEASE)
_SET = _Script(_LUA_SET)
_STATS = _Script(_LUA_STATS)
_TRIP = _Script(_LUA_TRIP)


class _BackendDown(Exception):
    """Internal: Redis did not answer; decide locally."""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCircuitBreaker(CircuitBreaker):
    """A :class:`CircuitBreaker` whose state lives in Redis, shared by every process.

    Args:
        name: the shared name; every process using it shares one breaker.
        redis: a ``redis.Redis`` client or a URL (``redis://host:6379/0``) for the sync
            protocol; built from ``url`` when omitted.
        aredis: a ``redis.asyncio.Redis`` client for the async twins; built from ``url``
            when omitted (lazily, in the running event loop).
        url: the Redis URL used to build missing clients (default ``redis://127.0.0.1:6379/0``).
        key_prefix: prefix of the two keys (``{prefix:name}`` and ``{prefix:name}:w``; the
            hash tag keeps both in one cluster slot).
        retry_interval: seconds to decide locally after Redis failed before trying again.
        socket_timeout: seconds for clients built from a URL (a breaker must not hang on
            its own backend).
        key_ttl: seconds the keys live after their last write.
        **options: every :class:`CircuitBreaker` option except ``window="count"`` (not
            shared; see the module docstring).

    Raises:
        ConfigurationError: an unsupported or invalid option.
        MissingExtraError: ``redis`` is not installed (``pip install 'surefoot[redis]'``).
    """

    _sync_io = False

    def __init__(
        self,
        name: str,
        *,
        redis: Any = None,
        aredis: Any = None,
        url: str = "redis://127.0.0.1:6379/0",
        key_prefix: str = "surefoot:cb",
        retry_interval: float = 5.0,
        socket_timeout: float = 0.5,
        key_ttl: int = 7 * 24 * 3600,
        **options: Any,
    ) -> None:
        self._redis_module = require("redis", "redis")
        rate = options.get("failure_rate_threshold") is not None or options.get("slow_call_duration") is not None
        if rate and options.get("window", "time") != "time":
            raise ConfigurationError("a Redis-shared breaker needs window='time' (count windows are not shared)")
        if rate:
            options["window"] = "time"
        if not name:
            raise ConfigurationError("a Redis-shared circuit breaker needs a name")
        super().__init__(name, **options)
        self._fast = False  # every decision goes through Redis
        self._url = url
        self._socket_timeout = socket_timeout
        self._own_client = redis is None or isinstance(redis, str)
        if redis is None or isinstance(redis, str):
            redis = self._redis_module.Redis.from_url(
                redis or url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout
            )
        self._client = redis
        self._aclient = aredis
        self._own_aclient = aredis is None
        tag = f"{key_prefix}:{name}"
        self._keys = [f"{{{tag}}}", f"{{{tag}}}:w"]
        self._retry_interval = float(retry_interval)
        self._down_until = 0.0
        self._down = False
        from .._core.catalogue import CIRCUIT_BREAKER_BACKEND_ERRORS

        self._backend_errors = (
            CIRCUIT_BREAKER_BACKEND_ERRORS.get(self._registry).labels(name)
            if self._metrics is not None else None
        )
        w = self._window
        durations = [self._open_duration_for(n) for n in range(1, 33)]
        self._cfg = json.dumps({
            "thr": self._threshold or 0,
            "fr": self._fr or 0,
            "sr": self._sr or 0,
            "min": self._min_calls,
            "size": w.size if w is not None else 0,
            "permits": self._permits,
            "traffic": self._traffic or 0,
            "how": self._ho_window,
            "hofr": self._ho_fr,
            "homin": self._ho_min,
            "mw": self._ho_max_wait if self._ho_max_wait is not None else -1,
            "durs": durations,
            "ttl": int(key_ttl),
        })

    # ------------------------------------------------------------------ backend plumbing
    @property
    def keys(self) -> tuple[str, str]:
        """The Redis keys holding this breaker's state and window."""
        return self._keys[0], self._keys[1]

    def _available(self) -> bool:
        return not self._down or self._mono() >= self._down_until

    def _backend_failed(self, exc: BaseException) -> None:
        self._down_until = self._mono() + self._retry_interval
        if self._backend_errors is not None:
            self._backend_errors.inc()
        if not self._down:
            self._down = True
            self._log.warning(
                "circuit_breaker_backend_unavailable", name=self.name, backend="redis",
                error_type=type(exc).__name__, error_message=str(exc), retry_in=self._retry_interval,
            )
        if self.hooks.active:
            self.hooks.emit("circuit_breaker", self.name, "backend_unavailable", error=type(exc).__name__)

    def _backend_ok(self) -> None:
        if self._down:
            self._down = False
            self._log.info("circuit_breaker_backend_recovered", name=self.name, backend="redis")
            if self.hooks.active:
                self.hooks.emit("circuit_breaker", self.name, "backend_recovered")

    def _run(self, script: _Script, *args: Any) -> Any:
        if not self._available():
            raise _BackendDown
        try:
            out = script.run(self._client, self._keys, [repr(self.clock.time()), self._cfg, *args])
        except Exception as exc:  # any backend trouble: decide locally (logged, counted, evented)
            self._backend_failed(exc)
            raise _BackendDown from exc
        self._backend_ok()
        return out

    async def _arun(self, script: _Script, *args: Any) -> Any:
        if not self._available():
            raise _BackendDown
        client = self._aclient
        if client is None:
            client = self._aclient = self._redis_module.asyncio.Redis.from_url(
                self._url, socket_timeout=self._socket_timeout, socket_connect_timeout=self._socket_timeout
            )
        try:
            out = await script.arun(client, self._keys, [repr(self.clock.time()), self._cfg, *args])
        except Exception as exc:  # e.g. a client bound to a closed event loop: decide locally
            if self._own_aclient:
                self._aclient = None  # rebuilt, in the running loop, at the next attempt
            self._backend_failed(exc)
            raise _BackendDown from exc
        self._backend_ok()
        return out

    def _apply(self, state: int, transitions: list[Any], details: dict[str, Any]) -> None:
        """Mirror the shared state locally and announce transitions this call made."""
        previous = self._state
        self._state = state
        if self._latency is not None and state == CLOSED and previous != CLOSED:
            with self._lock:
                self._latency.restart(self._mono())
        pending: list[tuple[Any, ...]] = []
        i = 0
        while i + 5 <= len(transitions):
            frm, to, reason, dur, openings = transitions[i:i + 5]
            extra: dict[str, Any] = {}
            if int(to) == OPEN:
                extra = dict(details)
                extra["open_for"] = float(_s(dur))
                self._open_until = self._mono() + extra["open_for"]
                extra["openings"] = int(openings)
            pending.append((int(frm), int(to), _s(reason), extra))
            i += 5
        if pending:
            self._announce(pending)
        elif previous != state and self._metrics is not None:
            self._metrics.show_state(state)

    @staticmethod
    def _split(out: list[Any], head: int) -> tuple[list[Any], list[Any]]:
        n = int(out[head])
        return out[:head], out[head + 1: head + 1 + 5 * n]

    # ------------------------------------------------------------------ permission
    def acquire(self) -> None:
        """Ask the shared breaker for permission (see :meth:`CircuitBreaker.acquire`)."""
        admit = "1" if self._traffic is not None and self.rng.random() < self._traffic else "0"
        try:
            out = self._run(_ACQUIRE, admit)
        except _BackendDown:
            self._local_acquire()
            return
        self._after_acquire(out)

    async def aacquire(self) -> None:
        """Async twin of :meth:`acquire` (redis.asyncio)."""
        admit = "1" if self._traffic is not None and self.rng.random() < self._traffic else "0"
        try:
            out = await self._arun(_ACQUIRE, admit)
        except _BackendDown:
            self._local_acquire()
            return
        self._after_acquire(out)

    def _local_acquire(self) -> None:
        if self._state != CLOSED:
            err = CircuitBreaker._permit(self)
            if err is not None:
                raise err

    def _after_acquire(self, out: list[Any]) -> None:
        head, transitions = self._split(out, 3)
        permitted, retry_after, state = int(head[0]), float(_s(head[1])), int(head[2])
        self._apply(state, transitions, {})
        if state == OPEN:
            # Keep the local mirror able to decide alone if Redis goes away.
            self._open_until = self._mono() + retry_after
        if permitted or self._shadow:
            return
        shown = {OPEN: "open", HALF_OPEN: "half_open", FORCED_OPEN: "forced_open"}.get(state, "open")
        raise self._reject(retry_after, shown)

    def release(self) -> None:
        """Give a half-open permit back to the shared breaker."""
        try:
            self._run(_RELEASE)
        except _BackendDown:
            super().release()

    async def arelease(self) -> None:
        """Async twin of :meth:`release`."""
        try:
            await self._arun(_RELEASE)
        except _BackendDown:
            super().release()

    # ------------------------------------------------------------------ outcomes
    def on_success(self, duration: float) -> None:
        """Record a success in the shared breaker."""
        self._outcome(0, duration, None, None)

    async def aon_success(self, duration: float) -> None:
        """Async twin of :meth:`on_success`."""
        await self._aoutcome(0, duration, None, None)

    async def aon_error(self, duration: float, exc: BaseException) -> None:
        """Async twin of :meth:`on_error`."""
        bits, ra, kind = self._classify(exc)
        if kind is not None:
            await self._aneither(duration, exc, kind)
        else:
            await self._aoutcome(bits, duration, ra, exc)

    async def aon_result(self, duration: float, result: object) -> None:
        """Async twin of :meth:`on_result`."""
        rc = self._result_check
        if rc is not None and rc(result):
            from ._breaker import retry_after_of

            ra = retry_after_of(result, self.clock.time()) if self._honor_ra else None
            rf = self._result_failure
            if ra is not None or (rf is not None and rf(result)):
                await self._aoutcome(FAILURE, duration, ra, result)
                return
        await self._aoutcome(0, duration, None, None)

    async def _afailed_result(self, duration: float, result: object) -> None:
        """Async twin of :meth:`CircuitBreaker._failed_result` (redis.asyncio)."""
        from ._breaker import retry_after_of

        ra = retry_after_of(result, self.clock.time()) if self._honor_ra else None
        await self._aoutcome(FAILURE, duration, ra, result)

    def _classify(self, exc: BaseException) -> tuple[int, float | None, str | None]:
        """(bits, retry_after, neither-kind) for an exception, as :meth:`on_error` decides."""
        from ._breaker import retry_after_of

        if not isinstance(exc, Exception) or type(exc) is UnsupportedCallableError:
            # (a misused call form is a bug in the caller, not an outcome of the dependency)
            return 0, None, "released"
        if self._ignore_types and isinstance(exc, self._ignore_types):
            self._c_ignored.inc()
            return 0, None, "ignored"
        pred = self._failure_predicate
        failed = bool(pred(exc)) if pred is not None else isinstance(exc, self._failure_types)
        if not failed:
            return 0, None, None
        ra = retry_after_of(exc, self.clock.time()) if self._honor_ra else None
        return FAILURE, ra, None

    def _neither(self, duration: float, exc: BaseException, kind: str) -> None:
        try:
            self._run(_RELEASE)
        except _BackendDown:
            super()._neither(duration, exc, kind)
            return
        if self.hooks.active:
            self.hooks.emit("circuit_breaker", self.name, kind, duration=duration, exception=type(exc).__name__)

    async def _aneither(self, duration: float, exc: BaseException, kind: str) -> None:
        try:
            await self._arun(_RELEASE)
        except _BackendDown:
            super()._neither(duration, exc, kind)
            return
        if self.hooks.active:
            self.hooks.emit("circuit_breaker", self.name, kind, duration=duration, exception=type(exc).__name__)

    def _count(self, bits: int, duration: float, retry_after: float | None) -> tuple[int, list[str]]:
        slow = self._slow
        if slow is not None and duration >= slow:
            bits |= SLOW
            self._c_slow.inc()
        if bits & FAILURE:
            self._c_failed.inc()
            self._last_failure_wall = self.clock.time()
        else:
            self._inc_success()
        ra = "" if retry_after is None else repr(min(retry_after, self._max_ra))
        return bits, [str(bits & FAILURE), str(bits >> 1), ra]

    def _outcome(
        self, bits: int, duration: float, retry_after: float | None, cause: object, now: float | None = None
    ) -> None:
        if not self._available():
            super()._outcome(bits, duration, retry_after, cause, now)
            return
        bits, args = self._count(bits, duration, retry_after)
        try:
            out = self._run(_RECORD, *args)
        except _BackendDown:
            self._local_record(bits, duration, retry_after)
            return
        self._after_record(out, bits, duration, cause)
        if self._latency_trips(duration):
            try:
                trip = self._run(_TRIP, "latency")
            except _BackendDown:
                return
            head, transitions = self._split(trip, 1)
            self._apply(int(head[0]), transitions, self._last_trip)

    async def _aoutcome(self, bits: int, duration: float, retry_after: float | None, cause: object) -> None:
        if not self._available():
            super()._outcome(bits, duration, retry_after, cause)
            return
        bits, args = self._count(bits, duration, retry_after)
        try:
            out = await self._arun(_RECORD, *args)
        except _BackendDown:
            self._local_record(bits, duration, retry_after)
            return
        self._after_record(out, bits, duration, cause)
        if self._latency_trips(duration):
            try:
                trip = await self._arun(_TRIP, "latency")
            except _BackendDown:
                return
            head, transitions = self._split(trip, 1)
            self._apply(int(head[0]), transitions, self._last_trip)

    def _latency_trips(self, duration: float) -> bool:
        """This process's judgement of the latency rule (a trip opens the shared breaker)."""
        lat = self._latency
        if lat is None or self._state != CLOSED:
            return False
        with self._lock:
            if not lat.record(duration, self._mono()):
                return False
            self._trip_details("latency")
        return True

    def _local_record(self, bits: int, duration: float, retry_after: float | None) -> None:
        # The counters were already bumped; feed only the local state machine.
        now = self._mono()
        pending: list[tuple[Any, ...]] = []
        with self._lock:
            st = self._state
            if retry_after is not None and st not in (DISABLED, FORCED_OPEN):
                self._transition(OPEN, now, "retry_after", pending, duration=min(retry_after, self._max_ra))
            elif st == CLOSED:
                self._record_closed(bits, duration, now, pending)
            elif st == HALF_OPEN:
                self._record_half_open(bits, now, pending)
        if pending:
            self._announce(pending)

    def _after_record(self, out: list[Any], bits: int, duration: float, cause: object) -> None:
        head, transitions = self._split(out, 5)
        state, calls, fails, slows, consec = (int(x) for x in head)
        details: dict[str, Any] = {"consecutive_failures": consec}
        if calls:
            details.update(failure_rate=fails / calls, slow_call_rate=slows / calls, window_calls=calls)
        self._apply(state, transitions, details)
        if self.hooks.active:
            self.hooks.emit(
                "circuit_breaker", self.name, "failure" if bits & FAILURE else "success",
                duration=duration, slow=bool(bits & SLOW),
                cause=type(cause).__name__ if cause is not None else None,
            )

    # ------------------------------------------------------------------ call forms
    def call(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` through the shared breaker (see :meth:`CircuitBreaker.call`)."""
        self.acquire()
        return self._call_general(fn, args, kwargs)

    def current_state(self) -> Any:
        """The shared state as last seen by this process (:meth:`get_stats` refreshes it)."""
        return _STATE_ENUM[self._state]

    # ------------------------------------------------------------------ manual states, stats
    def _manual(self, to: int, reason: str) -> None:
        try:
            out = self._run(_SET, str(to))
        except _BackendDown:
            super()._manual(to, reason)
            return
        head, transitions = self._split(out, 1)
        self._apply(int(head[0]), transitions, {})

    def get_stats(self) -> dict[str, Any]:
        """Local counts of this process plus the shared state (``shared=True``) when Redis answers."""
        stats = CircuitBreaker.get_stats(self)
        stats["shared"] = False
        if not self._available():
            return stats
        try:
            h, w = _STATS.run(self._client, self._keys, self._stats_args())
        except Exception as exc:  # decide locally, as everywhere else
            self._backend_failed(exc)
            return stats
        self._backend_ok()
        return self._merge_stats(stats, h, w)

    async def aget_stats(self) -> dict[str, Any]:
        """Async twin of :meth:`get_stats` (redis.asyncio)."""
        stats = CircuitBreaker.get_stats(self)
        stats["shared"] = False
        if not self._available():
            return stats
        client = self._aclient
        if client is None:
            client = self._aclient = self._redis_module.asyncio.Redis.from_url(
                self._url, socket_timeout=self._socket_timeout, socket_connect_timeout=self._socket_timeout
            )
        try:
            h, w = await _STATS.arun(client, self._keys, self._stats_args())
        except Exception as exc:
            self._backend_failed(exc)
            return stats
        self._backend_ok()
        return self._merge_stats(stats, h, w)

    def _stats_args(self) -> list[str]:
        w = self._window
        return [repr(self.clock.time()), str(w.size if w is not None else 0)]

    def _merge_stats(self, stats: dict[str, Any], h: list[Any], w: list[Any]) -> dict[str, Any]:
        fields = {_s(h[i]): _s(h[i + 1]) for i in range(0, len(h), 2)}
        state = int(fields.get("st", 0))
        now = self.clock.time()
        calls, fails, slows = (int(_s(x)) if x is not None else 0 for x in w)
        windowed = self._window is not None
        stats.update(
            shared=True,
            state=("closed", "open", "half_open", "disabled", "forced_open")[state],
            consecutive_failures=int(fields.get("cf", 0)),
            openings=int(fields.get("op", 0)),
            window_calls=calls if windowed else None,
            failure_rate=(fails / calls) if calls and windowed else None,
            slow_call_rate=(slows / calls) if calls and windowed else None,
            retry_after=max(0.0, float(fields.get("ou", 0)) - now) if state == OPEN else None,
            last_failure_time=float(fields["lf"]) if "lf" in fields else stats["last_failure_time"],
            last_state_change=float(fields["ch"]) if "ch" in fields else stats["last_state_change"],
            half_open_trials=int(fields.get("hd", 0)) if state == HALF_OPEN else None,
        )
        if self._state != state:
            self._state = state
            if self._metrics is not None:
                self._metrics.show_state(state)
        return stats

    def close(self) -> None:
        """Close the sync client built from a URL (a client passed in is left alone)."""
        if self._own_client:
            self._client.close()

    async def aclose(self) -> None:
        """Close the async client built from a URL (a client passed in is left alone)."""
        if self._own_aclient and self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
