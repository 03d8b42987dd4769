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
_DEFAULT_BAD = (500, 599)


def _doc(o: Objective) -> dict[str, Any]:
    annotations = {_P + "name": o.name, _P + "kind": o.kind}
    objective: dict[str, Any] = {"displayName": o.description or o.name, "target": o.target}
    if isinstance(o, (Ratio, Latency)):
        if o.route:
            annotations[_P + "route"] = o.route
        if o.method:
            annotations[_P + "method"] = o.method
    if isinstance(o, Ratio) and o.bad_statuses != _DEFAULT_BAD:
        annotations[_P + "bad-statuses"] = "{}-{}".format(*o.bad_statuses)
    if isinstance(o, Latency):
        objective.update(op="lte", value=o.threshold)
        if not o.errors_are_bad:
            annotations[_P + "errors-are-bad"] = "false"
        if o.p95_series() != o.default_p95_series(o.name):
            annotations[_P + "p95-series"] = o.p95_series()
    if isinstance(o, EventPair):
        annotations[_P + "deadline"] = decimal_str(o.deadline)
        objective.update(op="lte", value=o.deadline)
        if o.p95_series() != o.default_p95_series(o.name):
            annotations[_P + "p95-series"] = o.p95_series()
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


def _number(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool):
        value = None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"OpenSLO SLO {where!r}: {what} must be a number; got {value!r}") from None


def _statuses(text: Any, where: str) -> tuple[int, int]:
    low, _, high = str(text).partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise ConfigurationError(
            f"OpenSLO SLO {where!r}: {_P}bad-statuses must look like 500-599; got {text!r}"
        ) from None


def from_openslo(text: str) -> list[Objective]:
    """Read the ``kind: SLO`` documents of an OpenSLO v1 YAML stream.

    ``objectives[0]`` gives the target (``target``, a fraction, or ``targetPercent``) and,
    with ``op``/``value``, a latency threshold in seconds.

    Raises:
        ConfigurationError: the text is not YAML, a document is not OpenSLO v1, lacks a
            target, or holds a value surefoot cannot use (the message names it).
    """
    yaml = require("yaml", "dashboards")
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"not valid OpenSLO YAML: {' '.join(str(exc).split())}") from None
    out: list[Objective] = []
    for doc in docs:
        if not doc:
            continue
        if not isinstance(doc, dict):
            raise ConfigurationError(f"not an OpenSLO v1 document (a mapping with apiVersion: openslo/v1): {doc!r}")
        if doc.get("apiVersion") != "openslo/v1":
            raise ConfigurationError(f"not an OpenSLO v1 document: apiVersion {doc.get('apiVersion')!r}")
        if doc.get("kind") != "SLO":
            continue
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        notes = meta.get("annotations") or {}
        objectives = spec.get("objectives") or []
        where = str(meta.get("name"))
        first = objectives[0] if objectives and isinstance(objectives[0], dict) else {}
        if "target" in first:
            target = _number(first["target"], "objectives[0].target", where)
        elif "targetPercent" in first:
            target = _number(first["targetPercent"], "objectives[0].targetPercent", where) / 100
        else:
            raise ConfigurationError(f"OpenSLO SLO {where!r} has no objectives[0].target (or targetPercent)")
        name = notes.get(_P + "name") or str(meta.get("name", "")).replace("-", "_")
        common: dict[str, Any] = {"target": target, "description": spec.get("description") or "",
                                  "service": spec.get("service") or "surefoot"}
        if _P + "expected-events-per-hour" in notes:
            common["expected_events_per_hour"] = _number(
                notes[_P + "expected-events-per-hour"], _P + "expected-events-per-hour", where)
        kind = notes.get(_P + "kind") or ("latency" if "value" in first else "ratio")
        route, method = notes.get(_P + "route"), notes.get(_P + "method")
        p95 = notes.get(_P + "p95-series")
        if kind == "event_pair":
            deadline = _number(notes.get(_P + "deadline", first.get("value")), "the deadline", where)
            out.append(EventPair(name, deadline=deadline, p95_series=p95, **common))
        elif kind == "latency":
            errors_are_bad = str(notes.get(_P + "errors-are-bad", "true")).lower() != "false"
            out.append(Latency(name, threshold=_number(first.get("value"), "objectives[0].value", where),
                               route=route, method=method, errors_are_bad=errors_are_bad, p95_series=p95,
                               **common))
        elif kind == "ratio":
            bad = _statuses(notes[_P + "bad-statuses"], where) if _P + "bad-statuses" in notes else _DEFAULT_BAD
            out.append(Ratio(name, route=route, method=method, bad_statuses=bad, **common))
        else:
            raise ConfigurationError(
                f"OpenSLO SLO {where!r}: {_P}kind must be ratio, latency or event_pair; got {kind!r}"
            )
    return out
