"""Circuit-breaker vocabulary: states, the open error, open-duration and failure rules.

Shared by the decision core (:mod:`._breaker_core`), the runners (:mod:`._breaker`) and the
Redis breaker; no state lives here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any

import structlog

from .._core.retry_after import parse_retry_after
from ..errors import ConfigurationError, ServiceUnavailableError

# States as ints: the hot path compares ints, never Enum members.
CLOSED, OPEN, HALF_OPEN, DISABLED, FORCED_OPEN = 0, 1, 2, 3, 4


class CircuitState(str, Enum):  # noqa: UP042 - StrEnum would change str() of a member
    """The state of a breaker (values as in seed 001, plus the operational states)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"
    FORCED_OPEN = "forced_open"


_STATE_ENUM = (
    CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN,
    CircuitState.DISABLED, CircuitState.FORCED_OPEN,
)
_STATE_NAMES = tuple(s.value for s in _STATE_ENUM)
_STATE_INT = {s: i for i, s in enumerate(_STATE_ENUM)}

_log = structlog.get_logger("surefoot.resilience")


class CircuitOpenError(ServiceUnavailableError):
    """A call was not permitted because the circuit breaker is open (503).

    Attributes:
        name: the breaker's name.
        state: ``"open"``, ``"half_open"`` (no trial permit left) or ``"forced_open"``.
        retry_after: seconds until the breaker may admit a call again (also sent as the
            ``Retry-After`` header when the error reaches an HTTP response).

    What to do: fail fast (serve a fallback or a cached answer), or retry after
    ``retry_after`` seconds.

    Constructed positionally (it is built on every rejection, so construction is the
    C-level exception init): ``CircuitOpenError(name, retry_after, state="open")``.
    """

    code = "CIRCUIT_OPEN"

    # Built on every rejection, so construction is the C-level BaseException init storing
    # (name, retry_after, state) in ``args``; the message, headers and problem members are
    # derived on first access (__getattr__).
    if TYPE_CHECKING:  # pragma: no cover

        def __init__(self, name: str, retry_after: float, state: str = "open") -> None: ...

    else:
        __init__ = BaseException.__init__

    @property
    def name(self) -> str:
        name: str = self.args[0]
        return name

    @property
    def retry_after(self) -> float:  # type: ignore[override]  # narrows the base's float | None
        retry_after: float = self.args[1]
        return retry_after

    @property
    def state(self) -> str:
        return self.args[2] if len(self.args) > 2 else "open"

    def __getattr__(self, item: str) -> Any:
        if item == "detail":
            value: Any = (
                f"circuit breaker {self.name!r} is {self.state}; "
                f"calls are not permitted for {self.retry_after:.3f} s"
            )
        elif item == "headers":
            value = {"Retry-After": str(max(0, int(-(-self.retry_after // 1))))}
        elif item == "extra":
            value = {}
        elif item == "errors":
            value = None
        else:
            raise AttributeError(item)
        setattr(self, item, value)
        return value

    def __str__(self) -> str:
        return str(self.detail)


def exponential_open_duration(
    base: float, *, factor: float = 2.0, max_duration: float = 600.0
) -> Callable[[int], float]:
    """Open duration growing with consecutive openings: ``base * factor**(n-1)``, capped.

    Args:
        base: seconds open after the first opening.
        factor: growth per consecutive opening (a half-open trial that fails reopens).
        max_duration: cap in seconds.

    Returns:
        a function of the number of consecutive openings (1 for the first).
    """
    if base <= 0 or factor < 1 or max_duration < base:
        raise ConfigurationError(
            "exponential_open_duration needs base > 0, factor >= 1 and max_duration >= base; "
            f"got base={base!r}, factor={factor!r}, max_duration={max_duration!r}"
        )

    def duration(openings: int) -> float:
        exponent = max(0, openings - 1)
        if exponent > 64:
            return max_duration
        return min(max_duration, base * factor**exponent)

    return duration


def http_failure(result: object) -> bool:
    """A result predicate: HTTP 5xx and 429 responses (anything with ``status_code``) fail."""
    status = getattr(result, "status_code", None)
    return isinstance(status, int) and (status >= 500 or status == 429)


def _parse_retry_after(value: Any, now_wall: float) -> float | None:
    # The one parser (surefoot._core.retry_after); only a positive delay forces the breaker open.
    seconds = parse_retry_after(value, now=now_wall, max_delay=math.inf)
    return seconds if seconds is not None and seconds > 0 else None


def retry_after_of(obj: object, now_wall: float) -> float | None:
    """Seconds a result or exception asks us to stay away, or ``None``.

    Recognised: an object with ``status_code`` (or ``status``) 429 or 503 and a
    ``Retry-After`` header in ``headers`` (seconds or an HTTP date), like
    ``httpx.Response``; an exception with a positive numeric ``retry_after`` (surefoot's
    ``RateLimitError``) or with such a ``response`` (``httpx.HTTPStatusError``). A
    :class:`CircuitOpenError` from another breaker never counts (it is our own fail-fast).

    Args:
        obj: a returned value or a raised exception.
        now_wall: the current wall time (for HTTP-date values).
    """
    if isinstance(obj, CircuitOpenError):
        return None
    if isinstance(obj, BaseException):
        ra = getattr(obj, "retry_after", None)
        if isinstance(ra, (int, float)) and not isinstance(ra, bool) and ra > 0:
            return float(ra)
        response = getattr(obj, "response", None)
        return None if response is None else retry_after_of(response, now_wall)
    status = getattr(obj, "status_code", None)
    if status is None:
        status = getattr(obj, "status", None)
    if status != 429 and status != 503:
        return None
    headers = getattr(obj, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("Retry-After")
        if value is None:
            value = headers.get("retry-after")
    except (AttributeError, TypeError):
        return None
    return _parse_retry_after(value, now_wall)


def _may_push_back(result: object) -> bool:
    """Cheap pre-check: could ``result`` carry a 429/503 Retry-After?"""
    status = getattr(result, "status_code", None)
    if status is None:
        status = getattr(result, "status", None)
    return status == 429 or status == 503


def _types(value: Any, what: str) -> tuple[type[BaseException], ...]:
    items: Iterable[Any] = value if isinstance(value, tuple) else (value,)
    out = tuple(items)
    for t in out:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise ConfigurationError(f"{what} must be exception types, got {t!r}")
    return out
