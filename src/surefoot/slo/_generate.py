"""``surefoot observability generate``: every operations artefact from the objectives.

    deploy/
      prometheus/prometheus.yml                scrape config (basic auth), rule files, Alertmanager
      prometheus/rules/slo.rules.yml           recording rules + burn-rate alerts per objective
      prometheus/rules/operational.rules.yml   seed runbook alerts (lag, signatures, DB, breakers, DLQ)
      prometheus/tests/*.test.yml              promtool unit tests for both rule files
      alertmanager/alertmanager.yml            routing example: page → pager, ticket → tickets
      grafana/dashboards/*.json                six dashboards (grafana-foundation-sdk)
      grafana/provisioning/{datasources,dashboards}/surefoot.yml
      openslo/slos.yaml                        the objectives as OpenSLO v1
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._core.extras import require
from ..errors import ConfigurationError
from ._lint import LintFinding, lint
from ._objectives import Objective
from ._rules import (
    RuleSettings,
    operational_rule_tests,
    operational_rules,
    slo_rule_tests,
    slo_rules,
)
from ._windows import DEFAULT_TIERS, Tier, duration_text

__all__ = ["generate", "collect_objectives", "Generated", "dump_yaml", "LintError"]


class LintError(ConfigurationError):
    """Generation refused: the alert-physics lint found errors."""

    def __init__(self, findings: list[LintFinding]) -> None:
        self.findings = findings
        super().__init__("alert physics: " + "; ".join(str(f) for f in findings if f.level == "error"))


@dataclass
class Generated:
    """What :func:`generate` wrote."""

    files: dict[str, str] = field(default_factory=dict)
    findings: list[LintFinding] = field(default_factory=list)


def dump_yaml(data: Any) -> str:
    """YAML with multi-line strings as literal blocks and keys in the given order."""
    yaml: Any = require("yaml", "dashboards")

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]
        pass

    def text(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return str(yaml.dump(data, Dumper=Dumper, sort_keys=False, width=1000, allow_unicode=True))


def collect_objectives(spec: str) -> list[Objective]:
    """Objectives from ``package.module`` (every objective it defines), ``package.module:NAME``
    (an objective or a list of them) or an OpenSLO YAML file.

    Raises:
        ConfigurationError: nothing found, or the name does not hold objectives.
    """
    if spec.endswith((".yaml", ".yml")) and Path(spec).is_file():
        from ._openslo import from_openslo

        return from_openslo(Path(spec).read_text())
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} to read objectives: {exc}") from exc
    if attr:
        value = getattr(module, attr, None)
        found = [value] if isinstance(value, Objective) else list(value) if isinstance(value, (list, tuple)) else []
    else:
        found = [v for v in vars(module).values() if isinstance(v, Objective)]
    found = [o for o in found if isinstance(o, Objective)]
    if not found:
        raise ConfigurationError(f"{spec!r} holds no surefoot.slo objectives")
    return _unique(found, spec)


def _unique(objectives: Iterable[Objective], where: str) -> list[Objective]:
    """One objective per name; the same declaration twice is kept once, two different ones
    with one name are refused."""
    by_name: dict[str, Objective] = {}
    for o in objectives:
        seen = by_name.setdefault(o.name, o)
        if seen != o:
            raise ConfigurationError(
                f"{where!r} declares two different objectives named {o.name!r}: {seen!r} and {o!r}"
            )
    return list(by_name.values())


def _prometheus_config(targets: Sequence[str], scrape_interval: float, username: str | None,
                       metrics_path: str, alertmanager: str) -> dict[str, Any]:
    job: dict[str, Any] = {
        "job_name": "surefoot",
        "metrics_path": metrics_path,
        "scrape_interval": duration_text(scrape_interval),
        "static_configs": [{"targets": list(targets)}],
    }
    if username:
        job["basic_auth"] = {"username": username, "password_file": "/etc/prometheus/surefoot_metrics_password"}
    return {
        "global": {"scrape_interval": duration_text(scrape_interval), "evaluation_interval": duration_text(scrape_interval)},
        "rule_files": ["rules/*.rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [job],
    }


def _alertmanager_config() -> dict[str, Any]:
    return {
        "route": {
            "receiver": "tickets",
            "group_by": ["alertname", "slo"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "pager", "repeat_interval": "1h"},
                {"matchers": ['severity="warning"'], "receiver": "tickets"},
            ],
        },
        "inhibit_rules": [
            {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
             "equal": ["slo"]},
        ],
        "receivers": [
            {"name": "pager", "webhook_configs": [{"url": "http://pager.example.internal/alert", "send_resolved": True}]},
            {"name": "tickets", "webhook_configs": [{"url": "http://tickets.example.internal/alert",
                                                     "send_resolved": True}]},
        ],
    }


def generate(
    objectives: Iterable[Objective],
    out: str | Path | None = None,
    *,
    targets: Sequence[str] = ("localhost:8000",),
    scrape_interval: float = 15.0,
    scale: float = 1.0,
    runbook_url: str = "docs/runbook.md",
    metrics_username: str | None = "metrics",
    metrics_path: str = "/metrics",
    alertmanager: str = "localhost:9093",
    prometheus_url: str = "http://localhost:9090",
    tiers: Sequence[Tier] = DEFAULT_TIERS,
    available: Iterable[str] | None = None,
    force: bool = False,
    dashboards: bool = True,
) -> Generated:
    """Render (and with ``out``, write) every artefact; see the module docstring for the layout.

    Args:
        objectives: the objectives.
        out: directory to write into (created); ``None`` only returns the files.
        targets: ``host:port`` of each process Prometheus scrapes.
        scrape_interval: seconds; the lint checks windows against it.
        scale: multiply every window and duration (tests: ``1/60``).
        runbook_url: base of ``runbook_url`` annotations (anchors are appended).
        metrics_username: basic-auth user of ``/metrics`` (``None``: no auth).
        available: metric families that exist (default: surefoot's catalogue); rules and
            panels reading anything else are left out.
        force: write even when the lint reports errors.
        dashboards: ``False`` skips the Grafana files (no grafana-foundation-sdk needed).

    Raises:
        LintError: the lint found errors and ``force`` is false.
    """
    objs = list(objectives)
    if not objs:
        raise ConfigurationError("generate needs at least one objective")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ConfigurationError(f"cannot write into {out}: it is a file; give a directory (e.g. deploy/)")
    settings = RuleSettings(scale=scale, runbook_url=runbook_url, tiers=tuple(tiers),
                            available=frozenset(available) if available is not None else None)
    findings = lint(objs, scrape_interval=scrape_interval, settings=settings)
    if any(f.level == "error" for f in findings) and not force:
        raise LintError(findings)
    files: dict[str, str] = {}
    slo = slo_rules(objs, settings)
    ops = operational_rules(objs, settings)
    files["prometheus/rules/slo.rules.yml"] = dump_yaml(slo)
    files["prometheus/rules/operational.rules.yml"] = dump_yaml(ops)
    files["prometheus/tests/slo.test.yml"] = dump_yaml(slo_rule_tests(objs, settings, "../rules/slo.rules.yml"))
    files["prometheus/tests/operational.test.yml"] = dump_yaml(operational_rule_tests(
        objs, settings, ops, ["../rules/slo.rules.yml", "../rules/operational.rules.yml"]))
    files["prometheus/prometheus.yml"] = dump_yaml(
        _prometheus_config(targets, scrape_interval, metrics_username, metrics_path, alertmanager))
    files["alertmanager/alertmanager.yml"] = dump_yaml(_alertmanager_config())
    from ._openslo import to_openslo

    files["openslo/slos.yaml"] = to_openslo(objs)
    if dashboards:
        from ._dashboards import dashboards as build
        from ._dashboards import provisioning

        for name, text in build(objs, settings.has).items():
            files[f"grafana/dashboards/{name}"] = text
        for name, text in provisioning(prometheus_url, "/var/lib/grafana/dashboards/surefoot").items():
            files[f"grafana/provisioning/{name}"] = text
    if out is not None:
        root = Path(out)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return Generated(files=files, findings=findings)
