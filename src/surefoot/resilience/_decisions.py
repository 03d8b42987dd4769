"""Counting resilience decisions in ``resilience_events_total{component,name,event}``.

Only slow paths (a timeout, a refusal, an injected fault) count here, so the family and its
label children are created on the first decision, never at construction or import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DecisionCounter"]


class DecisionCounter:
    """The ``resilience_events_total`` children of one component instance."""

    __slots__ = ("component", "name", "registry", "_children")

    def __init__(self, component: str, name: str, registry: Any = None) -> None:
        self.component = component
        self.name = name
        self.registry = registry
        self._children: dict[str, Any] = {}

    def inc(self, event: str) -> None:
        """Count one ``event`` (e.g. ``timeout``, ``rejected``, ``fault``)."""
        child = self._children.get(event)
        if child is None:
            from .._core.catalogue import RESILIENCE_EVENTS

            child = RESILIENCE_EVENTS.get(self.registry).labels(self.component, self.name, event)
            self._children[event] = child
        child.inc()
