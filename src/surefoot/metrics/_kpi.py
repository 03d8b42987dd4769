"""Business KPIs: declared once with a unit and bounded labels, then incremented.

    CALLS = KPI("calls_detected", description="missed calls detected",
                labels={"outcome": ("missed", "answered")})
    CALLS.inc(outcome="missed")                   # kpi_calls_detected_total{outcome="missed"}
    REVENUE = KPI("attributed_revenue", unit="cents", description="revenue attributed to us")
    REVENUE.inc(1500)                             # kpi_attributed_revenue_cents_total

Every label's values are declared up front, so a KPI can never grow a series the dashboards
do not expect: a value outside its set is refused with a ``ValueError`` naming the allowed
ones. All combinations are exported from the first increment on (at 0), so ``rate()`` and
``increase()`` see a series before its first event.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._core.catalogue import MetricSpec
from .._core.settings import get_settings
from .._core.state import default_registry
from ..errors import ConfigurationError

__all__ = ["KPI", "declared_kpis"]

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_RESERVED_LABELS = frozenset({"le", "quantile", "job", "instance"})
_PRECREATE_MAX = 200

_lock = threading.Lock()
# (metric name, id of the registry given or None for the process default) -> first declaration
_declared: dict[tuple[str, int | None], KPI] = {}


def declared_kpis() -> list[KPI]:
    """Every KPI declared in this process, in declaration order (for docs and dashboards)."""
    with _lock:
        return list(_declared.values())


def _check_labels(labels: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise ConfigurationError(
            "KPI labels must map each label name to its allowed values, e.g. "
            f"{{'outcome': ('missed', 'answered')}}; got {labels!r}"
        )
    checked: dict[str, tuple[str, ...]] = {}
    for label, values in labels.items():
        if not isinstance(label, str) or not _NAME.match(label) or label in _RESERVED_LABELS:
            raise ConfigurationError(
                f"KPI label name {label!r} must be snake_case and not one of {sorted(_RESERVED_LABELS)}"
            )
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise ConfigurationError(
                f"KPI label {label!r} needs a list of allowed values (a bounded set); got {values!r}"
            )
        allowed = tuple(values)
        if not allowed or not all(isinstance(v, str) and v for v in allowed):
            raise ConfigurationError(
                f"KPI label {label!r} needs at least one allowed value, each a non-empty string; got {values!r}"
            )
        if len(set(allowed)) != len(allowed):
            raise ConfigurationError(f"KPI label {label!r} lists a value twice: {allowed!r}")
        checked[label] = allowed
    return checked


class KPI:
    """A business KPI exported as the counter ``kpi_<name>[_<unit>]_total``.

    Args:
        name: snake_case, without the ``kpi_`` prefix or ``_total`` suffix
            (``"calls_detected"``).
        description: the metric's help text.
        unit: the unit, added to the metric name unless ``name`` already ends with it
            (``"cents"`` → ``kpi_attributed_revenue_cents_total``).
        labels: each label's allowed values, e.g. ``{"outcome": ("missed", "answered")}``.
        registry: where the counter lives (default: the process default registry at the
            time of the first increment).

    Raises:
        ConfigurationError: an invalid name, unit or label declaration, or a KPI of the same
            metric name already declared for the same registry with another description, unit
            or labels.
    """

    def __init__(
        self,
        name: str,
        *,
        description: str,
        unit: str | None = None,
        labels: Mapping[str, Sequence[str]] | None = None,
        registry: Any = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError(f"KPI name must be snake_case (a-z, 0-9, _); got {name!r}")
        if name.startswith("kpi_") or name.endswith("_total"):
            raise ConfigurationError(
                f"KPI name {name!r}: leave out the 'kpi_' prefix and the '_total' suffix; surefoot adds them"
            )
        if unit is not None and (not isinstance(unit, str) or not _NAME.match(unit)):
            raise ConfigurationError(f"KPI unit must be a snake_case word such as 'cents'; got {unit!r}")
        if not isinstance(description, str) or not description.strip():
            raise ConfigurationError(f"KPI {name!r} needs a description (the metric's help text)")
        self.name = name
        self.unit = unit
        self.description = description
        self.labels: dict[str, tuple[str, ...]] = _check_labels(labels)
        base = f"kpi_{name}" if unit is None or name.endswith("_" + unit) or name == unit else f"kpi_{name}_{unit}"
        #: The exported sample name (``kpi_..._total``).
        self.metric_name = base + "_total"
        self._spec = MetricSpec(base, "counter", description, tuple(self.labels))
        self._allowed = {label: frozenset(values) for label, values in self.labels.items()}
        self._registry_given = registry
        self._registry: Any = None
        self._family: Any = None
        self._children: dict[tuple[str, ...], Any] = {}
        self._label_names = tuple(self.labels)
        with _lock:
            key = (self.metric_name, None if registry is None else id(registry))
            previous = _declared.get(key)
            if previous is not None and (
                previous.labels != self.labels or previous.description != description
                or previous.unit != unit
            ):
                raise ConfigurationError(
                    f"KPI {self.metric_name} is already declared with other labels, unit or description; "
                    "declare each KPI once and import it where it is used"
                )
            _declared.setdefault(key, self)

    def __repr__(self) -> str:
        return f"KPI({self.metric_name!r}, labels={self.labels!r})"

    def _resolve(self) -> Any:
        registry = self._registry_given if self._registry_given is not None else default_registry()
        if registry is not self._registry:
            family = self._spec.get(registry)
            children: dict[tuple[str, ...], Any] = {}
            combos = 1
            for values in self.labels.values():
                combos *= len(values)
            if combos <= _PRECREATE_MAX:
                for key in itertools.product(*self.labels.values()):
                    children[key] = self._child(family, key)
            self._registry, self._family, self._children = registry, family, children
        return self._family

    def _child(self, family: Any, key: tuple[str, ...]) -> Any:
        # By name: the family may have been created by an identical declaration that listed
        # the labels in another order.
        return family.labels(**dict(zip(self._label_names, key, strict=True))) if key else family

    def _key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        if len(labels) != len(self._label_names) or any(n not in labels for n in self._label_names):
            raise ValueError(
                f"{self.metric_name} takes exactly the labels {list(self._label_names)}; got {sorted(labels)}"
            )
        for label, value in labels.items():
            if not isinstance(value, str) or value not in self._allowed[label]:
                raise ValueError(
                    f"{self.metric_name}: {label}={value!r} is not declared; allowed: {list(self.labels[label])}"
                )
        return tuple(labels[n] for n in self._label_names)

    def inc(self, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` (default 1) to the KPI for ``labels``.

        A no-op when metrics are off (``SUREFOOT_METRICS_ENABLED=false``).

        Raises:
            ValueError: a negative, infinite, NaN or non-numeric amount, a missing or unknown
                label, or a value outside the label's declared set (non-strings included).
        """
        if not get_settings().metrics_enabled:
            return
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 <= amount < math.inf:
            raise ValueError(
                f"{self.metric_name} can only increase by a finite number >= 0; got amount={amount!r}"
            )
        key = self._key(labels)
        family = self._resolve()
        child = self._children.get(key)
        if child is None:
            child = self._child(family, key)
            with _lock:
                self._children[key] = child
        child.inc(amount)

    def value(self, **labels: str) -> float:
        """Return the current count for ``labels`` in this process's registry (0 if never increased).

        Raises:
            ValueError: as :meth:`inc` for labels.
        """
        key = self._key(labels)
        registry = self._registry_given if self._registry_given is not None else default_registry()
        wanted = dict(zip(self._label_names, key, strict=True))
        for family in registry.collect():
            if family.name != self._spec.name:
                continue
            for sample in family.samples:
                if sample.name == self.metric_name and sample.labels == wanted:
                    return float(sample.value)
        return 0.0
