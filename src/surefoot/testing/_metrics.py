"""Metrics in tests: read a sample, use a private registry."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["metric_value", "fresh_registry"]


def metric_value(registry: Any, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Return the value of one sample, ``0.0`` when it was never recorded.

    Args:
        registry: a ``prometheus_client.CollectorRegistry`` (e.g. ``installation.registry``).
        name: the sample name as exposed (``..._total``, ``..._count``, ``..._bucket``).
        labels: the sample's labels (all of them); ``le`` for buckets.

    Returns:
        The value; ``0.0`` when there is no such sample (a counter not yet incremented).
    """
    value = registry.get_sample_value(name, dict(labels or {}))
    return 0.0 if value is None else float(value)


@contextlib.contextmanager
def fresh_registry() -> Iterator[Any]:
    """Use a new, empty registry as the process default for the ``with`` block.

    Components that were given no ``registry=`` (breakers, outbox, ...) register there, so a
    test sees only its own samples; the previous default is restored afterwards.

    Yields:
        The ``CollectorRegistry``.
    """
    from prometheus_client import CollectorRegistry

    from .._core.state import STATE, set_default_registry

    previous = STATE.registry
    registry = CollectorRegistry()
    set_default_registry(registry)
    try:
        yield registry
    finally:
        set_default_registry(previous)
