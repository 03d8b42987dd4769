"""Objectives as OpenSLO v1 documents, and back.

Each objective becomes one ``kind: SLO`` document with an inline ``ratioMetric`` indicator
(good and total counters of ``slo_events_total``), a rolling 28-day window and
``Occurrences`` budgeting. What OpenSLO has no field for (kind, deadline, route, method) is
kept in ``metadata.annotations`` under ``surefoot.dev/``, so ``from_openslo(to_openslo(x))``
gives back equal objectives. Foreign OpenSLO SLOs load too: a ``ratioMetric`` becomes a
:class:`Ratio`, an objective with ``op``/``value`` a :class:`Latency` (``value`` in seconds).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._core.extras import require
from ..errors import ConfigurationError
from ._objectives import EventPair, Latency, Objective, Ratio, decimal_str

__all__ = ["to_openslo", "from_openslo"]

_P = "surefoot.dev/"


def _doc(o: Objective) -> dict[str, Any]:
    annotations = {_P + "name": o.name, _P + "kind": o.kind}
    objective: dict[str, Any] = {"displayName": o.description or o.name, "target": o.target}
    if isinstance(o, (Ratio, Latency)):
        if o.route:
            annotations[_P + "route"] = o.route
        if o.method:
            annotations[_P + "method"] = o.method
    if isinstance(o, Latency):
        objective.update(op="lte", value=o.threshold)
    if isinstance(o, EventPair):
        annotations[_P + "deadline"] = decimal_str(o.deadline)
        objective.update(op="lte", value=o.deadline)
    if o.expected_events_per_hour is not None:
        annotations[_P + "expected-events-per-hour"] = decimal_str(o.expected_events_per_hour)

    def source(query: str) -> dict[str, Any]:
        return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}

    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": o.name.replace("_", "-"), "displayName": o.description or o.name,
                     "annotations": annotations},
        "spec": {
            "description": o.description,
            "service": o.service,
            "indicator": {
                "metadata": {"name": o.name.replace("_", "-") + "-sli"},
                "spec": {"ratioMetric": {
                    "counter": True,
                    "good": source(f'slo_events_total{{slo="{o.name}",outcome="good"}}'),
                    "total": source(f'slo_events_total{{slo="{o.name}"}}'),
                }},
            },
            "timeWindow": [{"duration": "28d", "isRolling": True}],
            "budgetingMethod": "Occurrences",
            "objectives": [objective],
        },
    }


def to_openslo(objectives: Iterable[Objective]) -> str:
    """Render objectives as a multi-document OpenSLO v1 YAML stream."""
    yaml = require("yaml", "dashboards")
    return str(yaml.safe_dump_all([_doc(o) for o in objectives], sort_keys=False, allow_unicode=True))


def from_openslo(text: str) -> list[Objective]:
    """Read the ``kind: SLO`` documents of an OpenSLO v1 YAML stream.

    Raises:
        ConfigurationError: a document is not OpenSLO v1, or lacks a target.
    """
    yaml = require("yaml", "dashboards")
    out: list[Objective] = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        if doc.get("apiVersion") != "openslo/v1":
            raise ConfigurationError(f"not an OpenSLO v1 document: apiVersion {doc.get('apiVersion')!r}")
        if doc.get("kind") != "SLO":
            continue
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        notes = meta.get("annotations") or {}
        objectives = spec.get("objectives") or []
        if not objectives or "target" not in objectives[0]:
            raise ConfigurationError(f"OpenSLO SLO {meta.get('name')!r} has no objectives[0].target")
        first = objectives[0]
        name = notes.get(_P + "name") or str(meta.get("name", "")).replace("-", "_")
        common: dict[str, Any] = {"target": float(first["target"]), "description": spec.get("description") or "",
                                  "service": spec.get("service") or "surefoot"}
        if _P + "expected-events-per-hour" in notes:
            common["expected_events_per_hour"] = float(notes[_P + "expected-events-per-hour"])
        kind = notes.get(_P + "kind") or ("latency" if "value" in first else "ratio")
        route, method = notes.get(_P + "route"), notes.get(_P + "method")
        if kind == "event_pair":
            out.append(EventPair(name, deadline=float(notes.get(_P + "deadline", first.get("value"))), **common))
        elif kind == "latency":
            out.append(Latency(name, threshold=float(first["value"]), route=route, method=method, **common))
        else:
            out.append(Ratio(name, route=route, method=method, **common))
    return out
