"""Chaos: inject faults, latency and bad results at a configured rate — off unless enabled.

A :class:`Chaos` sits innermost in a :class:`~surefoot.resilience.Policy` (just around the
real call), so the timeout, breaker and retry react to what it injects exactly as they would
to the real dependency misbehaving. Per call it may, in this order:

1. sleep ``latency`` seconds (with probability ``latency_rate``) — slow provider;
2. raise ``fault`` (``fault_rate``) — connection reset, timeout, 5xx as an exception;
3. return ``result()`` instead of calling (``result_rate``) — a 503 or 429 response.

``burst=n`` makes a triggered injection repeat for the next ``n - 1`` calls too (a 429 storm,
an outage window). Randomness comes from an injected ``rng`` (seed it: runs are reproducible)
and waits from an injected ``clock``.

Chaos is **off unless enabled**: ``enabled=True`` explicitly, or ``enabled=None`` (default)
reads ``SUREFOOT_CHAOS_ENABLED``. :meth:`Chaos.from_settings` also reads the rates
(``SUREFOOT_CHAOS_FAULT_RATE``, ``_LATENCY_RATE``, ``_LATENCY_MIN``/``_MAX``, ``_RESULT_RATE``,
``_SEED``). A disabled chaos costs nothing: a Policy leaves it out of the chain.

The presets reproduce the provider failures of the resilience test plan:
:meth:`Chaos.http_status` (5xx, 429 with ``Retry-After``), :meth:`Chaos.http_timeout` and
:meth:`Chaos.connection_reset` (httpx exceptions).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .._core.callables import DEFERRED_TYPES, athrough, refuse_deferred, through, wrap_callable
from .._core.clock import SYSTEM_CLOCK
from .._core.settings import load_settings, section
from ..errors import ConfigurationError, ExternalServiceError
from . import _waits
from ._decisions import DecisionCounter
from ._events import Hooks, checked_hooks

__all__ = ["Chaos", "ChaosError", "ChaosSettings"]

T = TypeVar("T")


class ChaosSettings(BaseSettings):
    """``SUREFOOT_CHAOS_*`` settings.

    Attributes:
        enabled: master switch (default off).
        fault_rate / latency_rate / result_rate: probabilities in [0, 1].
        latency_min / latency_max: injected latency range in seconds.
        seed: random seed for reproducible runs.
    """

    model_config = SettingsConfigDict(env_prefix="SUREFOOT_CHAOS_", extra="ignore")

    enabled: bool = False
    fault_rate: float = Field(0.0, ge=0.0, le=1.0)
    latency_rate: float = Field(0.0, ge=0.0, le=1.0)
    latency_min: float = Field(0.0, ge=0.0)
    latency_max: float = Field(1.0, ge=0.0)
    result_rate: float = Field(0.0, ge=0.0, le=1.0)
    seed: int | None = None


class ChaosError(ExternalServiceError):
    """The default injected fault (502): a dependency failure that did not really happen."""

    code = "CHAOS_INJECTED"


def _rate(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"Chaos {what} must be a probability in [0, 1]; got {value!r}")
    return float(value)


class Chaos:
    """Fault, latency and result injection.

    Args:
        name: the dependency (events).
        enabled: ``True``/``False``, or ``None`` to read ``SUREFOOT_CHAOS_ENABLED``.
        fault_rate: probability of raising ``fault``.
        fault: an exception instance, an exception class, or a factory returning one.
        latency_rate: probability of sleeping first.
        latency: seconds, or a ``(min, max)`` range drawn uniformly.
        result_rate: probability of returning ``result()`` without calling.
        result: factory of the injected result (required when ``result_rate > 0``).
        burst: a triggered injection repeats for this many calls in total.
        rng: random source (seeded for reproducible runs).
        clock: time source for the latency (``sleep``/``asleep``).
        hooks: listeners for ``chaos`` events (``injected`` with ``what``).
        registry: Prometheus registry for ``resilience_events_total{component="chaos"}``
            (``event`` = ``latency``, ``fault`` or ``result``).

    Raises:
        ConfigurationError: a rate is outside [0, 1], or ``result_rate`` without ``result``.
    """

    def __init__(
        self,
        *,
        name: str = "chaos",
        enabled: bool | None = None,
        fault_rate: float = 0.0,
        fault: BaseException | type[BaseException] | Callable[[], BaseException] | None = None,
        latency_rate: float = 0.0,
        latency: float | tuple[float, float] = (0.0, 1.0),
        result_rate: float = 0.0,
        result: Callable[[], Any] | None = None,
        burst: int = 1,
        rng: random.Random | None = None,
        clock: Any = None,
        hooks: Hooks | None = None,
        registry: Any = None,
    ) -> None:
        self.name = name
        self.enabled = section(ChaosSettings).enabled if enabled is None else bool(enabled)
        self.fault_rate = _rate(fault_rate, "fault_rate")
        self.latency_rate = _rate(latency_rate, "latency_rate")
        self.result_rate = _rate(result_rate, "result_rate")
        if self.result_rate > 0 and result is None:
            raise ConfigurationError("Chaos result_rate > 0 needs result= (a factory of the injected result)")
        if isinstance(latency, (int, float)):
            latency = (float(latency), float(latency))
        if not (
            isinstance(latency, tuple) and len(latency) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in latency)
            and 0 <= latency[0] <= latency[1] < math.inf
        ):
            raise ConfigurationError(f"Chaos latency must be seconds >= 0 or a (min, max) range; got {latency!r}")
        low, high = latency
        if not (
            fault is None or isinstance(fault, BaseException)
            or (isinstance(fault, type) and issubclass(fault, BaseException)) or callable(fault)
        ):
            raise ConfigurationError(
                f"Chaos fault must be an exception, an exception class or a function returning one; got {fault!r}"
            )
        if result is not None and not callable(result):
            raise ConfigurationError(f"Chaos result must be a function returning the injected result; got {result!r}")
        if not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(f"Chaos burst must be an int >= 1; got {burst!r}")
        self.latency = (float(low), float(high))
        self.fault = fault
        self.result = result
        self.burst = burst
        self.rng = random.Random() if rng is None else rng
        self.clock = SYSTEM_CLOCK if clock is None else clock
        self.hooks = checked_hooks(hooks, "Chaos")
        self._counter = DecisionCounter("chaos", name, registry)
        self._left = {"latency": 0, "fault": 0, "result": 0}
        self.injected = {"latency": 0, "fault": 0, "result": 0}

    @classmethod
    def from_settings(cls, name: str = "chaos", **overrides: Any) -> Chaos:
        """Build from ``SUREFOOT_CHAOS_*`` (``overrides`` win; ``fault``/``result`` factories too).

        Raises:
            ConfigurationError: an environment value is invalid (names the variable).
        """
        fields = set(ChaosSettings.model_fields)
        settings = load_settings(ChaosSettings, **{k: v for k, v in overrides.items() if k in fields})
        rest = {k: v for k, v in overrides.items() if k not in fields}
        return cls(
            name=name,
            enabled=settings.enabled,
            fault_rate=settings.fault_rate,
            latency_rate=settings.latency_rate,
            latency=(settings.latency_min, max(settings.latency_min, settings.latency_max)),
            result_rate=settings.result_rate,
            rng=rest.pop("rng", None) or (random.Random(settings.seed) if settings.seed is not None else None),
            **rest,
        )

    def __repr__(self) -> str:
        return (
            f"Chaos({self.name!r}, enabled={self.enabled}, fault_rate={self.fault_rate}, "
            f"latency_rate={self.latency_rate}, result_rate={self.result_rate})"
        )

    # ----------------------------------------------------------------- decisions

    def _roll(self, what: str, rate: float) -> bool:
        left = self._left[what]
        if left > 0:
            self._left[what] = left - 1
        elif rate > 0 and self.rng.random() < rate:
            self._left[what] = self.burst - 1
        else:
            return False
        self.injected[what] += 1
        self._counter.inc(what)
        if self.hooks.active:
            self.hooks.emit("chaos", self.name, "injected", what=what)
        return True

    def _make_fault(self) -> BaseException:
        fault = self.fault
        if fault is None:
            return ChaosError(f"{self.name}: chaos-injected fault", service=self.name)
        if isinstance(fault, BaseException):
            return fault
        return fault()

    def _delay(self) -> float:
        low, high = self.latency
        return low if low == high else self.rng.uniform(low, high)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` unless an injection replaces it (a no-op pass-through when disabled)."""
        if not self.enabled:
            result = fn(*args, **kwargs)
        else:
            if self._roll("latency", self.latency_rate):
                delay = self._delay()
                if delay > 0 and not _waits.is_testing():
                    self.clock.sleep(delay)
            if self._roll("fault", self.fault_rate):
                raise self._make_fault()
            if self._roll("result", self.result_rate):
                # __init__ guarantees a factory whenever result_rate > 0.
                return cast(T, self.result())  # type: ignore[misc]
            result = fn(*args, **kwargs)
        if type(result) in DEFERRED_TYPES:
            refuse_deferred(result, "Chaos", "chaos", generators=False)
        return result

    async def acall(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Async twin of :meth:`call` (latency is awaited)."""
        if not self.enabled:
            return await fn(*args, **kwargs)
        if self._roll("latency", self.latency_rate):
            delay = self._delay()
            if delay > 0 and not _waits.is_testing():
                await self.clock.asleep(delay)
        if self._roll("fault", self.fault_rate):
            raise self._make_fault()
        if self._roll("result", self.result_rate):
            return self.result()  # type: ignore[misc]
        return await fn(*args, **kwargs)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorate a function or coroutine function.

        Raises:
            UnsupportedCallableError: ``fn`` is a generator or async generator function (inject
                faults into the call that produces the items instead).
        """
        return wrap_callable(
            fn, owner="Chaos", var="chaos", attribute="chaos", component=self,
            function=through(self.call), coroutine=athrough(self.acall),
            refusal="inject faults into the call that produces the items instead",
        )

    # ----------------------------------------------------------------- presets

    @classmethod
    def http_status(
        cls, status: int = 503, *, rate: float = 1.0, retry_after: float | None = None, burst: int = 1, **options: Any
    ) -> Chaos:
        """Answer with an ``httpx.Response`` of ``status`` (e.g. a Twilio 5xx, a 429 burst).

        Args:
            status: the injected status code.
            rate: probability per call.
            retry_after: adds a ``Retry-After`` header (seconds).
            burst: consecutive injected answers once triggered.
            **options: other :class:`Chaos` arguments (``enabled``, ``rng`` ...).
        """
        from .._core.extras import require

        httpx = require("httpx", "http")
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        body = {"detail": f"chaos-injected {status}"}

        def result() -> Any:
            return httpx.Response(status, headers=headers, json=body)

        options.setdefault("enabled", True)
        options.setdefault("name", f"http_{status}")
        return cls(result_rate=rate, result=result, burst=burst, **options)

    @classmethod
    def http_timeout(cls, *, rate: float = 1.0, latency: float = 0.0, burst: int = 1, **options: Any) -> Chaos:
        """Raise ``httpx.ReadTimeout`` (optionally after ``latency`` seconds)."""
        from .._core.extras import require

        httpx = require("httpx", "http")
        options.setdefault("enabled", True)
        options.setdefault("name", "http_timeout")
        return cls(
            fault_rate=rate, fault=lambda: httpx.ReadTimeout("chaos-injected read timeout"),
            latency_rate=rate if latency > 0 else 0.0, latency=latency, burst=burst, **options,
        )

    @classmethod
    def connection_reset(cls, *, rate: float = 1.0, burst: int = 1, **options: Any) -> Chaos:
        """Raise ``httpx.ConnectError`` (connection reset by peer)."""
        from .._core.extras import require

        httpx = require("httpx", "http")
        options.setdefault("enabled", True)
        options.setdefault("name", "connection_reset")
        return cls(
            fault_rate=rate, fault=lambda: httpx.ConnectError("chaos-injected connection reset by peer"),
            burst=burst, **options,
        )
