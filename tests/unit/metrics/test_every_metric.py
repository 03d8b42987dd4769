"""The "Every metric" table of docs/metrics.md is what surefoot exports: each metric it lists
exists with exactly that type and those labels, and every metric surefoot can export is listed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from surefoot.metrics import CATALOGUE

DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


def _table() -> dict[str, tuple[str, tuple[str, ...]]]:
    """``{metric: (type, labels)}`` from the table (``as duration`` resolved)."""
    section = DOC.read_text().split("## Every metric", 1)[1]
    rows: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, types_cell, labels_cell, _asked = (c.strip() for c in line.strip().strip("|").split("|"))
        names = re.findall(r"`([^`]+)`", names_cell)
        types = [t.strip().split(",")[0].split()[0] for t in types_cell.split("/")]
        if labels_cell == "as duration":
            labels = rows["http_server_request_duration_seconds"][1]
        elif labels_cell in ("—", "declared per KPI"):
            labels = ()
        else:
            # label names are the backticked words outside parentheses (which list values)
            labels = tuple(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", labels_cell)))
        for i, name in enumerate(names):
            rows[name] = (types[i] if len(types) == len(names) else types[0], labels)
    return rows


TABLE = _table()
DOCUMENTED = sorted(name for name in TABLE if not name.startswith("kpi_"))


def test_the_table_lists_every_metric_surefoot_can_export() -> None:
    assert set(CATALOGUE) - set(TABLE) == set()
    assert set(DOCUMENTED) - set(CATALOGUE) == set()


@pytest.mark.parametrize("name", DOCUMENTED)
def test_each_listed_metric_has_that_type_and_exactly_those_labels(name: str) -> None:
    kind, labels = TABLE[name]
    registry = CollectorRegistry()
    family = CATALOGUE[name].get(registry)
    child = family.labels(*(f"v{i}" for i in range(len(labels)))) if labels else family
    if kind == "counter":
        child.inc()
    elif kind == "gauge":
        child.set(1)
    else:
        child.observe(0.1)
    exposition = generate_latest(registry).decode()
    assert f"# TYPE {name} {kind}\n" in exposition
    samples = [s for f in registry.collect() for s in f.samples]
    value_sample = {"counter": name, "gauge": name, "histogram": name + "_count"}[kind]
    (sample,) = [s for s in samples if s.name == value_sample]
    assert sorted(sample.labels) == sorted(labels)
    if kind == "histogram":
        assert {s.name for s in samples} >= {name + "_bucket", name + "_count", name + "_sum"}
    if kind == "counter":  # counters carry _total and a _created series
        assert name.endswith("_total")
        assert any(s.name == name.removesuffix("_total") + "_created" for s in samples)


def test_db_duration_buckets_run_from_half_a_millisecond_to_30_seconds() -> None:
    registry = CollectorRegistry()
    CATALOGUE["db_query_duration_seconds"].get(registry).labels("p", "SELECT", "").observe(0.001)
    bounds = [float(s.labels["le"]) for f in registry.collect() for s in f.samples if s.name.endswith("_bucket")]
    assert bounds[0] == 0.0005 and bounds[-2] == 30.0 and bounds[-1] == float("inf")
