"""Cache hit/miss/error counters and lookup latency around any cache client.

    profiles = CacheMetrics("profiles")

    @profiles                                   # sync or async lookup function
    async def cached_profile(user_id):
        return await redis.get(f"profile:{user_id}")     # None = miss

    value = profiles.call(local_cache.get, key)          # or wrap one call
    value = await profiles.acall(redis.get, key)
    profiles.record("hit", seconds=0.0002)               # or report by hand

Results: ``hit`` when ``is_hit(value)`` (default: the value is not ``None``), ``miss``
otherwise, ``error`` when the lookup raised (the exception is re-raised unchanged).
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from .._core import catalogue as cat
from .._core.settings import get_settings
from .._core.state import default_registry
from ..errors import ConfigurationError
from ._labels import LabelCap, metrics_settings

__all__ = ["CacheMetrics", "CACHE_RESULTS"]

T = TypeVar("T")
CacheResult = Literal["hit", "miss", "error"]
CACHE_RESULTS: tuple[str, ...] = ("hit", "miss", "error")


def _not_none(value: Any) -> bool:
    return value is not None


class CacheMetrics:
    """Counts one cache's lookups (``cache_requests_total{cache, result}``) and times them
    (``cache_request_duration_seconds{cache}``).

    Nothing is registered until the first lookup, so instances can live at module level.
    A no-op (the lookup runs untimed) while ``SUREFOOT_METRICS_ENABLED=false``.

    Args:
        cache: the ``cache`` label (``"profiles"``, ``"sessions"``); distinct names beyond
            ``max_label_values`` are recorded as ``_OTHER``.
        is_hit: decides whether a returned value is a hit (default: not ``None``).
        registry: where the metrics live (default: the process default at first use).
        max_label_values: the cap on distinct ``cache`` names (default
            ``SUREFOOT_METRICS_MAX_LABEL_VALUES``).

    Raises:
        ConfigurationError: an empty cache name, a non-callable ``is_hit`` or a
            ``max_label_values`` below 1.
    """

    def __init__(
        self,
        cache: str,
        *,
        is_hit: Callable[[Any], bool] | None = None,
        registry: Any = None,
        max_label_values: int | None = None,
    ) -> None:
        if not isinstance(cache, str) or not cache:
            raise ConfigurationError(f"CacheMetrics needs a non-empty cache name; got {cache!r}")
        if is_hit is not None and not callable(is_hit):
            raise ConfigurationError(f"is_hit must be a callable value -> bool; got {is_hit!r}")
        if max_label_values is not None and (
            isinstance(max_label_values, bool) or not isinstance(max_label_values, int) or max_label_values < 1
        ):
            raise ConfigurationError(f"max_label_values must be an integer >= 1; got {max_label_values!r}")
        self.cache = cache
        self.is_hit = is_hit if is_hit is not None else _not_none
        self._registry_given = registry
        self._max = max_label_values
        self._registry: Any = None
        self._meters: tuple[dict[str, Any], Any] | None = None
        self._lock = threading.Lock()

    def _resolve(self) -> tuple[dict[str, Any], Any]:
        registry = self._registry_given if self._registry_given is not None else default_registry()
        meters = self._meters
        if meters is None or registry is not self._registry:
            with self._lock:
                limit = metrics_settings(
                    **({} if self._max is None else {"max_label_values": self._max})
                ).max_label_values
                label = LabelCap(registry, "cache", "cache", limit)(self.cache)
                requests = cat.CACHE_REQUESTS.get(registry)
                counters = {result: requests.labels(label, result) for result in CACHE_RESULTS}
                duration = cat.CACHE_REQUEST_DURATION.get(registry).labels(label)
                meters = self._meters = (counters, duration)
                self._registry = registry
        return meters

    def record(self, result: CacheResult, seconds: float | None = None) -> None:
        """Count one lookup with ``result`` and, if given, its duration.

        Raises:
            ValueError: ``result`` is not ``hit``, ``miss`` or ``error``, or ``seconds`` is
                negative, infinite or NaN.
        """
        if result not in CACHE_RESULTS:
            raise ValueError(f"cache result must be one of {list(CACHE_RESULTS)}; got {result!r}")
        if seconds is not None and (isinstance(seconds, bool) or not 0 <= seconds < math.inf):
            raise ValueError(f"seconds must be a finite number >= 0; got {seconds!r}")
        if not get_settings().metrics_enabled:
            return
        counters, duration = self._resolve()
        counters[result].inc()
        if seconds is not None:
            duration.observe(seconds)

    def _finish(self, start: float, value: Any) -> None:
        counters, duration = self._resolve()
        duration.observe(time.perf_counter() - start)
        counters["hit" if self.is_hit(value) else "miss"].inc()

    def _error(self, start: float) -> None:
        counters, duration = self._resolve()
        duration.observe(time.perf_counter() - start)
        counters["error"].inc()

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run the lookup ``fn(*args, **kwargs)``, count its result and return it."""
        if not get_settings().metrics_enabled:
            return fn(*args, **kwargs)
        start = time.perf_counter()
        try:
            value = fn(*args, **kwargs)
        except BaseException:
            self._error(start)
            raise
        self._finish(start, value)
        return value

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await the lookup ``fn(*args, **kwargs)``, count its result and return it."""
        if not get_settings().metrics_enabled:
            return await fn(*args, **kwargs)
        start = time.perf_counter()
        try:
            value = await fn(*args, **kwargs)
        except BaseException:
            self._error(start)
            raise
        self._finish(start, value)
        return value

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a lookup function (sync or ``async def``) so each call is counted.

        Raises:
            ConfigurationError: ``fn`` is a generator function (a lookup returns one value).
        """
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise ConfigurationError(
                f"CacheMetrics decorates functions returning the looked-up value; {fn.__qualname__} is a generator"
            )
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_lookup(*args: Any, **kwargs: Any) -> Any:
                return await self.acall(fn, *args, **kwargs)

            return async_lookup

        @functools.wraps(fn)
        def lookup(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, *args, **kwargs)

        return lookup
