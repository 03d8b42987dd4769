"""Bounded label values and the settings shared by the domain metrics.

Every label a domain metric takes from user data goes through a :class:`LabelCap`: the
first ``max_label_values`` distinct values (per registry, metric and label) are kept, later
ones are recorded as ``_OTHER`` and counted in ``surefoot_metric_label_overflow_total`` —
the same rule that protects the HTTP labels. Values longer than :data:`MAX_VALUE_CHARS` are cut
to that length, so no single value can make the exposition large either.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .._core.settings import get_settings, load_settings

__all__ = ["OVERFLOW", "MAX_VALUE_CHARS", "LabelCap", "MetricsSettings", "metrics_settings", "metrics_enabled"]

OVERFLOW = "_OTHER"
MAX_VALUE_CHARS = 128


class MetricsSettings(BaseSettings):
    """Domain-metric knobs, read from ``SUREFOOT_METRICS_*`` environment variables.

    Attributes:
        max_label_values: distinct values kept per label of a domain metric before new ones
            become ``_OTHER`` (``SUREFOOT_METRICS_MAX_LABEL_VALUES``, default 1000).
        slow_query_seconds: database queries at least this long are logged as slow
            (``SUREFOOT_METRICS_SLOW_QUERY_SECONDS``, default 0.5; 0 logs none).
        process_interval: how often the process monitor samples CPU, memory, file
            descriptors and event-loop lag (``SUREFOOT_METRICS_PROCESS_INTERVAL``, default 5).
    """

    model_config = SettingsConfigDict(env_prefix="SUREFOOT_METRICS_", extra="ignore")

    max_label_values: int = Field(default=1000, ge=1)
    slow_query_seconds: float = Field(default=0.5, ge=0)
    process_interval: float = Field(default=5.0, gt=0)


def metrics_settings(**overrides: Any) -> MetricsSettings:
    """Load :class:`MetricsSettings` from the environment plus ``overrides``.

    Raises:
        ConfigurationError: a value is invalid (the message names the variable).
    """
    return load_settings(MetricsSettings, **overrides)


def metrics_enabled() -> bool:
    """``SUREFOOT_METRICS_ENABLED`` (``surefoot.configure(metrics_enabled=...)``)."""
    return get_settings().metrics_enabled


_lock = threading.Lock()
_seen: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], set[str]]] = weakref.WeakKeyDictionary()


class LabelCap:
    """Caps the distinct values of one label of one metric in one registry.

    Args:
        registry: the registry the metric lives in (the cap is shared by everything
            writing that metric there).
        metric: the metric family name.
        label: the label name.
        max_values: how many distinct values are kept.
    """

    __slots__ = ("_values", "_max", "_overflow", "_metric", "_label", "_registry")

    def __init__(self, registry: Any, metric: str, label: str, max_values: int) -> None:
        with _lock:
            per_registry = _seen.setdefault(registry, {})
            self._values = per_registry.setdefault((metric, label), set())
        self._max = max_values
        self._metric = metric
        self._label = label
        self._registry = registry
        self._overflow: Any = None

    def __call__(self, value: str) -> str:
        """Return ``value``, or ``_OTHER`` (counted) once the cap is reached."""
        values = self._values
        if value in values:
            return value
        if len(value) > MAX_VALUE_CHARS:
            value = value[:MAX_VALUE_CHARS]
            if value in values:
                return value
        with _lock:
            if value in values or len(values) < self._max:
                values.add(value)
                return value
        if self._overflow is None:
            from .._core.catalogue import HTTP_LABEL_OVERFLOW

            self._overflow = HTTP_LABEL_OVERFLOW.get(self._registry).labels(self._metric, self._label)
        self._overflow.inc()
        return OVERFLOW
