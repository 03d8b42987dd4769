"""Objectives declared in code: ratio, latency threshold and event pair with a deadline.

An objective is a plain declaration made at import time; nothing is registered until it is
first recorded or bound (:meth:`Objective.bind`). Recording is counting: every event is
either *good* or *bad*, counted in ``slo_events_total{slo, outcome}``. "P95 ≤ 500 ms" is
exactly "≥ 95 % of requests take ≤ 500 ms", so a latency objective needs only the two
counters, no quantile estimate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from .._core.catalogue import LAG_BUCKETS, SLO_EVENTS, MetricSpec
from .._core.clock import SYSTEM_CLOCK, Clock
from .._core.state import default_registry
from ..errors import ConfigurationError

__all__ = ["Objective", "Ratio", "Latency", "EventPair", "SLO_PAIR_DURATION", "decimal_str"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")

SLO_PAIR_DURATION = MetricSpec(
    "slo_pair_duration_seconds", "histogram",
    "Time from start to finish of event-pair objectives; pairs past their deadline are observed "
    "when the sweeper marks them bad.", ("slo",), LAG_BUCKETS,
)


def decimal_str(value: float) -> str:
    """Render ``value`` as the shortest exact decimal (``0.001``, never ``0.0009999999999999432``)."""
    text = format(Decimal(repr(float(value))).normalize(), "f")
    return text


def _check_target(name: str, target: Any) -> float:
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
        raise ConfigurationError(
            f"objective {name!r}: target must be a fraction strictly between 0 and 1 "
            f"(0.95 for 95 %); got {target!r}"
        )
    return float(target)


def _check_seconds(name: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value:
        raise ConfigurationError(f"objective {name!r}: {what} must be a positive number of seconds; got {value!r}")
    return float(value)


class Objective:
    """Base of every objective: a name, a target and the good/bad counters.

    Args:
        name: lower-case identifier (``[a-z][a-z0-9_]*``), the ``slo`` label value.
        target: fraction of events that must be good, strictly between 0 and 1.
        description: one line for dashboards, alerts and ``/slo``.
        expected_events_per_hour: typical traffic, used by the alert-physics lint to warn
            when a single bad event would already page.
        service: the ``sloth_service`` label of generated rules (default ``"surefoot"``).

    Raises:
        ConfigurationError: a name or target is invalid.
    """

    kind: ClassVar[str] = "objective"

    def __init__(
        self,
        name: str,
        *,
        target: float,
        description: str = "",
        expected_events_per_hour: float | None = None,
        service: str = "surefoot",
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError(
                f"objective name must match [a-z][a-z0-9_]* (at most 63 characters); got {name!r}"
            )
        self.name = name
        self.target = _check_target(name, target)
        self.description = str(description)
        if expected_events_per_hour is not None and not (
            isinstance(expected_events_per_hour, (int, float)) and expected_events_per_hour > 0
        ):
            raise ConfigurationError(
                f"objective {name!r}: expected_events_per_hour must be positive; got {expected_events_per_hour!r}"
            )
        self.expected_events_per_hour = expected_events_per_hour
        self.service = service
        self._registry: Any = None
        self._good_child: Any = None
        self._bad_child: Any = None
        self.good: Callable[[], None] = self._first_good
        self.bad: Callable[[], None] = self._first_bad

    # -- binding -------------------------------------------------------------------------

    @property
    def error_budget(self) -> float:
        """``1 - target``, without float artefacts (``0.001`` for 99.9 %)."""
        return float(Decimal(1) - Decimal(repr(self.target)))

    def bind(self, registry: Any = None) -> None:
        """Create this objective's series in ``registry`` (default: the process default).

        Both ``outcome`` series are created at once, so rules dividing bad by total see a 0,
        not an absent series, before the first bad event. Binding again to another registry
        moves the hot path there.
        """
        reg = registry if registry is not None else default_registry()
        family = SLO_EVENTS.get(reg)
        self._registry = reg
        self._good_child = family.labels(self.name, "good")
        self._bad_child = family.labels(self.name, "bad")
        self.good = self._good_child.inc
        self.bad = self._bad_child.inc
        self._bind_extra(reg)

    def _bind_extra(self, registry: Any) -> None:
        """Subclasses create their other series here."""

    def _first_good(self) -> None:
        self.bind(self._registry)
        self.good()

    def _first_bad(self) -> None:
        self.bind(self._registry)
        self.bad()

    @property
    def registry(self) -> Any:
        """The registry the objective records into (binding to the default on first use)."""
        if self._good_child is None:
            self.bind(self._registry)
        return self._registry

    def counts(self) -> tuple[int, int]:
        """Return ``(good, bad)`` counted in this process so far."""
        if self._good_child is None:
            self.bind(self._registry)
        return _value(self._good_child), _value(self._bad_child)

    # -- description ---------------------------------------------------------------------

    @property
    def threshold_seconds(self) -> float | None:
        """The latency threshold or pair deadline, ``None`` for a ratio."""
        return None

    def p95_series(self) -> str | None:
        """Name of the recording rule that carries this objective's P95, if it has one."""
        return None

    def _declaration(self) -> tuple[Any, ...]:
        """What the objective was declared with (compared by ``==``; no counters, no clock)."""
        return (self.name, self.target, self.description, self.expected_events_per_hour, self.service)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Objective):
            return NotImplemented
        return type(self) is type(other) and self._declaration() == other._declaration()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, target={self.target!r})"


def _value(child: Any) -> int:
    # The public way to read one child: collect() its samples and take the _total one.
    for metric in child.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                return int(sample.value)
    return 0


class Ratio(Objective):
    """Availability: the fraction of good events among all events.

    Record explicitly with :meth:`good` / :meth:`bad` / :meth:`observe`, or bind it to an HTTP
    route (``route="/bookings"``, optionally ``method="POST"``; ``route="*"`` for every route)
    and :func:`surefoot.slo.install` counts each response: good unless its status is in
    ``bad_statuses`` (default: 500-599).

    Raises:
        ConfigurationError: invalid name, target or statuses.
    """

    kind: ClassVar[str] = "ratio"

    def __init__(
        self,
        name: str,
        *,
        target: float,
        route: str | None = None,
        method: str | None = None,
        bad_statuses: tuple[int, int] = (500, 599),
        **kwargs: Any,
    ) -> None:
        super().__init__(name, target=target, **kwargs)
        if route is not None and not (isinstance(route, str) and (route == "*" or route.startswith("/"))):
            raise ConfigurationError(f"objective {name!r}: route must be a path template like '/bookings' or '*'")
        try:
            low, high = bad_statuses
        except (TypeError, ValueError):
            low = high = -1
        if isinstance(low, bool) or not isinstance(low, int) or not isinstance(high, int) \
                or not (100 <= low <= high <= 599):
            raise ConfigurationError(f"objective {name!r}: bad_statuses must be (low, high) within 100-599")
        self.route = route
        self.method = method.upper() if method else None
        self.bad_statuses = (int(low), int(high))

    def _declaration(self) -> tuple[Any, ...]:
        return (*super()._declaration(), self.route, self.method, self.bad_statuses)

    def observe(self, ok: bool) -> None:
        """Count one event: good when ``ok`` is true."""
        (self.good if ok else self.bad)()

    def observe_response(self, method: str, status: int, seconds: float) -> None:
        """Count one HTTP response (called by the request path for bound routes)."""
        if self.method is not None and method != self.method:
            return
        low, high = self.bad_statuses
        (self.bad if low <= status <= high else self.good)()


class Latency(Objective):
    """Latency threshold: the fraction of events that take at most ``threshold`` seconds.

    ``Latency("booking_post", target=0.95, threshold=0.5, route="/bookings", method="POST")``
    is "P95 ≤ 500 ms". Bound to a route, :func:`surefoot.slo.install` counts every response
    of that route (failed responses count as bad whatever their duration, unless
    ``errors_are_bad=False``); otherwise call :meth:`observe` with the duration.

    Raises:
        ConfigurationError: invalid name, target or threshold.
    """

    kind: ClassVar[str] = "latency"

    def __init__(
        self,
        name: str,
        *,
        target: float,
        threshold: float,
        route: str | None = None,
        method: str | None = None,
        errors_are_bad: bool = True,
        p95_series: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, target=target, **kwargs)
        self.threshold = _check_seconds(name, "threshold", threshold)
        if route is not None and not (isinstance(route, str) and route.startswith("/")):
            raise ConfigurationError(f"objective {name!r}: route must be a path template like '/bookings'")
        self.route = route
        self.method = method.upper() if method else None
        self.errors_are_bad = bool(errors_are_bad)
        self._p95_series = p95_series or self.default_p95_series(name)
        self.observe: Callable[[float], None] = self._first_observe

    def _declaration(self) -> tuple[Any, ...]:
        return (*super()._declaration(), self.threshold, self.route, self.method, self.errors_are_bad,
                self._p95_series)

    @property
    def threshold_seconds(self) -> float:
        return self.threshold

    @staticmethod
    def default_p95_series(name: str) -> str:
        """The P95 recording rule's name when none is given."""
        return f"{name}_p95_ms"

    def p95_series(self) -> str:
        return self._p95_series

    def _bind_extra(self, registry: Any) -> None:
        good, bad, threshold = self._good_child.inc, self._bad_child.inc, self.threshold

        def observe(seconds: float) -> None:
            (good if seconds <= threshold else bad)()

        self.observe = observe

    def _first_observe(self, seconds: float) -> None:
        self.bind(self._registry)
        self.observe(seconds)

    def observe_response(self, method: str, status: int, seconds: float) -> None:
        """Count one HTTP response (called by the request path for bound routes)."""
        if self.method is not None and method != self.method:
            return
        if self.errors_are_bad and status >= 500:
            self.bad()
        else:
            self.observe(seconds)


class EventPair(Objective):
    """A start and a finish joined by a key, good when the finish comes within ``deadline``.

    ``start`` runs where the first event happens (the web process receiving a webhook),
    ``finish`` where the second happens (a worker sending the SMS), both inside the caller's
    own database transaction; the pending pair lives in ``surefoot_slo_pairs`` so it
    survives restarts of either process. Only the first finish counts. A pair that never
    finishes becomes bad once its deadline passes: :class:`surefoot.slo.Sweeper` marks it,
    exactly once, and counts every finished pair. See :mod:`surefoot.slo._pairs`.

    Raises:
        ConfigurationError: invalid name, target or deadline.
    """

    kind: ClassVar[str] = "event_pair"

    def __init__(
        self,
        name: str,
        *,
        target: float,
        deadline: float,
        clock: Clock = SYSTEM_CLOCK,
        p95_series: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, target=target, **kwargs)
        self.deadline = _check_seconds(name, "deadline", deadline)
        self.clock = clock
        self._p95_series = p95_series or self.default_p95_series(name)
        self._duration_child: Any = None

    def _declaration(self) -> tuple[Any, ...]:
        return (*super()._declaration(), self.deadline, self._p95_series)

    @property
    def threshold_seconds(self) -> float:
        return self.deadline

    @staticmethod
    def default_p95_series(name: str) -> str:
        """The P95 recording rule's name when none is given."""
        return f"slo_{name}_p95_seconds"

    def p95_series(self) -> str:
        return self._p95_series

    @property
    def buckets(self) -> tuple[float, ...]:
        """Histogram buckets of ``slo_pair_duration_seconds``: the lag buckets plus the deadline."""
        return tuple(sorted({*LAG_BUCKETS, self.deadline}))

    def _bind_extra(self, registry: Any) -> None:
        family = SLO_PAIR_DURATION.get(registry, buckets=self.buckets)
        self._duration_child = family.labels(self.name)

    def record(self, seconds: float, good: bool) -> None:
        """Count one completed (or expired) pair of ``seconds``; used by the sweeper."""
        if self._duration_child is None:
            self.bind(self._registry)
        (self.good if good else self.bad)()
        self._duration_child.observe(seconds)

    # start/finish and their async twins live in _pairs (SQL).
    def start(self, conn: Any, key: Any, *, at: float | None = None) -> bool:
        """Record the start of pair ``key`` in the caller's transaction (``conn``: Session or Connection).

        Returns:
            ``True`` when the pair was new, ``False`` when it had already started.
        """
        from ._pairs import start

        return start(self, conn, key, at)

    async def astart(self, conn: Any, key: Any, *, at: float | None = None) -> bool:
        """Async twin of :meth:`start` (``conn``: AsyncSession or AsyncConnection; a sync
        Session/Connection also works, e.g. the webhook inbox's connection on a sync engine)."""
        from ._pairs import astart

        return await astart(self, conn, key, at)

    def finish(self, conn: Any, key: Any, *, at: float | None = None) -> bool:
        """Record the finish of pair ``key`` in the caller's transaction; first finish only.

        Returns:
            ``True`` when this call finished the pair; ``False`` when it was already finished,
            already expired, or never started.
        """
        from ._pairs import finish

        return finish(self, conn, key, at)

    async def afinish(self, conn: Any, key: Any, *, at: float | None = None) -> bool:
        """Async twin of :meth:`finish`."""
        from ._pairs import afinish

        return await afinish(self, conn, key, at)
