"""Prometheus rules from objectives: Sloth-compatible recording rules, multi-window multi-burn-rate
alerts, the operational alerts of the seed runbook, and promtool unit tests for all of them.

All windows, ``for:`` durations and test times are multiplied by ``scale`` (1 in production;
a test loads the rules with ``scale=1/60`` so an hour becomes a minute).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .._core.catalogue import CATALOGUE
from ._objectives import EventPair, Latency, Objective, decimal_str
from ._windows import DEFAULT_TIERS, PERIOD, WINDOWS, Condition, Tier, duration_text

__all__ = ["RuleSettings", "slo_rules", "operational_rules", "slo_rule_tests", "operational_rule_tests",
           "possible", "camel", "SEVERITY"]

SEVERITY = {"page": "critical", "ticket": "warning"}
_N = 1000  # events per (scaled) minute in generated tests


@dataclass(frozen=True)
class RuleSettings:
    """How rules are rendered."""

    scale: float = 1.0
    runbook_url: str = "docs/runbook.md"
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    available: frozenset[str] | None = None  # metric families that exist (default: the catalogue)

    def window(self, name_or_seconds: str | float) -> str:
        seconds = WINDOWS[name_or_seconds] if isinstance(name_or_seconds, str) else name_or_seconds
        return duration_text(max(1, round(seconds * self.scale)))

    def has(self, *names: str) -> bool:
        known = self.available if self.available is not None else frozenset(CATALOGUE) | {"slo_pair_duration_seconds"}
        return all(n in known for n in names)

    def runbook(self, anchor: str) -> str:
        return f"{self.runbook_url}#{anchor}"


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def anchor(name: str) -> str:
    return "slo-" + name.replace("_", "-")


def threshold(cond: Condition, objective: Objective) -> Decimal:
    return Decimal(repr(cond.factor)) * (Decimal(1) - Decimal(repr(objective.target)))


def possible(cond: Condition, objective: Objective) -> bool:
    """A condition can fire only when ``factor × (1 − target) < 1``."""
    return threshold(cond, objective) < 1


def _labels(o: Objective) -> dict[str, str]:
    return {"slo": o.name, "sloth_id": f"{o.service}-{o.name}", "sloth_service": o.service, "sloth_slo": o.name}


def _sel(o: Objective) -> str:
    return f'sloth_id="{o.service}-{o.name}"'


def _p95_expr(o: Objective, window: str) -> str | None:
    if isinstance(o, EventPair):
        inner = f'sum by (le) (rate(slo_pair_duration_seconds_bucket{{slo="{o.name}"}}[{window}]))'
    elif isinstance(o, Latency) and o.route is not None and o.route != "*":
        matchers = f'http_route="{o.route}"' + (f',http_request_method="{o.method}"' if o.method else "")
        inner = f"sum by (le) (rate(http_server_request_duration_seconds_bucket{{{matchers}}}[{window}]))"
    else:
        return None
    expr = f"histogram_quantile(0.95, {inner})"
    series = o.p95_series() or ""
    return f"1000 * {expr}" if series.endswith("_ms") else expr


def slo_rules(objectives: Sequence[Objective], s: RuleSettings) -> dict[str, Any]:
    """One rule group of recordings and one of alerts per objective."""
    groups: list[dict[str, Any]] = []
    for o in objectives:
        labels = _labels(o)
        budget = decimal_str(o.error_budget)
        records: list[dict[str, Any]] = []
        for w in WINDOWS:
            rng = s.window(w)
            records.append({
                "record": f"slo:sli_error:ratio_rate{w}",
                "expr": (f'sum(rate(slo_events_total{{slo="{o.name}",outcome="bad"}}[{rng}]))\n'
                         f'/\nsum(rate(slo_events_total{{slo="{o.name}"}}[{rng}]))'),
                "labels": {**labels, "sloth_window": w},
            })
        days = WINDOWS[PERIOD] // 86400
        records += [
            {"record": "slo:objective:ratio", "expr": f"vector({decimal_str(o.target)})", "labels": labels},
            {"record": "slo:error_budget:ratio", "expr": f"vector({budget})", "labels": labels},
            {"record": "slo:time_period:days", "expr": f"vector({days})", "labels": labels},
            {"record": "slo:current_burn_rate:ratio",
             "expr": f"max(slo:sli_error:ratio_rate5m{{{_sel(o)}}}) without (sloth_window) / {budget}", "labels": labels},
            {"record": "slo:period_burn_rate:ratio",
             "expr": f"max(slo:sli_error:ratio_rate{PERIOD}{{{_sel(o)}}}) without (sloth_window) / {budget}",
             "labels": labels},
            {"record": "slo:period_error_budget_remaining:ratio",
             "expr": f"1 - slo:period_burn_rate:ratio{{{_sel(o)}}}", "labels": labels},
            {"record": "sloth_slo_info", "expr": "vector(1)",
             "labels": {**labels, "sloth_objective": decimal_str(o.target * 100), "sloth_mode": "surefoot"}},
        ]
        p95 = _p95_expr(o, s.window("5m"))
        if p95 is not None:
            records.append({"record": o.p95_series(), "expr": p95})
        groups.append({"name": f"surefoot-slo-sli-recordings-{o.name}", "rules": records})
        alerts = []
        for tier in s.tiers:
            conds = [c for c in tier.conditions if possible(c, o)]
            if not conds:
                continue
            parts = []
            for c in conds:
                value = format(threshold(c, o).normalize(), "f")
                parts.append(
                    f"(max(slo:sli_error:ratio_rate{c.long}{{{_sel(o)}}} > {value}) without (sloth_window)\n"
                    f" and\n max(slo:sli_error:ratio_rate{c.short}{{{_sel(o)}}} > {value}) without (sloth_window))"
                )
            rule: dict[str, Any] = {
                "alert": f"{camel(o.name)}ErrorBudgetBurn{camel(tier.name)}",
                "expr": "\nor\n".join(parts),
                "labels": {"severity": SEVERITY.get(tier.name, tier.name), "sloth_severity": tier.name,
                           "tier": tier.name, "slo": o.name},
                "annotations": _burn_annotations(o, tier, conds, s),
            }
            if tier.for_seconds:
                rule["for"] = s.window(float(tier.for_seconds))
            alerts.append(rule)
        if alerts:
            groups.append({"name": f"surefoot-slo-alerts-{o.name}", "rules": alerts})
    return {"groups": groups}


def _burn_annotations(o: Objective, tier: Tier, conds: list[Condition], s: RuleSettings) -> dict[str, str]:
    windows = ", ".join(f"{c.factor:g}× over {c.long} and {c.short}" for c in conds)
    return {
        "summary": f"{o.name}: the error budget is burning too fast ({tier.name})",
        "description": (f"{o.description or o.name} (target {decimal_str(o.target * 100)} %): "
                        f"bad events exceed the budget burn rate {windows}."),
        "runbook_url": s.runbook(anchor(o.name)),
    }


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, anchor_: str, s: RuleSettings) -> dict[str, Any]:
    return {"alert": name, "expr": expr, "for": for_, "labels": {"severity": severity},
            "annotations": {"summary": summary, "runbook_url": s.runbook(anchor_)}}


def operational_rules(objectives: Sequence[Objective], s: RuleSettings) -> dict[str, Any]:
    """Seed 004 §6 alerts, each only when the metrics it reads exist."""
    rules: list[dict[str, Any]] = []
    ten = s.window(600.0)
    for o in objectives:
        p95 = _p95_expr(o, s.window("5m"))
        if p95 is None or o.threshold_seconds is None:
            continue
        series = o.p95_series() or ""
        limit = o.threshold_seconds * 1000 if series.endswith("_ms") else o.threshold_seconds
        unit = "ms" if series.endswith("_ms") else "s"
        rules.append(_alert(
            f"{camel(o.name)}P95Breach", f"{series} > {decimal_str(limit)}", ten, "critical",
            f"{o.name}: P95 above {decimal_str(limit)} {unit} for 10 minutes", anchor(o.name), s))
    if s.has("outbox_dispatch_lag_seconds"):
        rules.append(_alert("OutboxLagHigh", "max(outbox_dispatch_lag_seconds) > 60", ten, "critical",
                            "The oldest pending outbox event is older than 60 s: domain events, KPIs and "
                            "SLO measurements are delayed", "outbox-lag", s))
    if s.has("webhook_signature_failures_total"):
        rules.append(_alert(
            "WebhookSignatureFailures",
            # per minute: per *scaled* minute when windows are scaled, so tests keep the threshold
            f"sum by (provider) (rate(webhook_signature_failures_total[{s.window(60.0)}])) * "
            f"{s.window(60.0)[:-1] if s.window(60.0).endswith('s') else 60} > 10",
            s.window(300.0), "warning", "More than 10 webhook signature failures per minute for 5 minutes",
            "webhook-signature-failures", s))
    if s.has("db_connections_in_use", "db_connections_max"):
        rules.append(_alert(
            "DatabaseSaturation", "max by (pool) (db_connections_in_use / db_connections_max) > 0.8", ten,
            "warning", "Database pool above 80 % of its connections for 10 minutes", "db-saturation", s))
    if s.has("circuit_breaker_state"):
        rules.append(_alert("CircuitBreakerOpen", 'max by (name) (circuit_breaker_state{state="open"}) > 0',
                            s.window(120.0), "warning", "A circuit breaker has been open for 2 minutes",
                            "circuit-breaker-open", s))
    if s.has("outbox_dead_letters_total"):
        rules.append(_alert(
            "OutboxDeadLettersGrowing",
            f"sum by (event_name) (increase(outbox_dead_letters_total[{s.window(900.0)}])) > 0",
            s.window(300.0), "warning", "Outbox events are being dead-lettered", "dead-letters", s))
    return {"groups": [{"name": "surefoot-operational", "rules": rules}]}


# -- promtool unit tests ------------------------------------------------------------------


def _burn_ratio(o: Objective, factor: float) -> int:
    """Bad events per _N that burn faster than ``factor`` (and never more than all of them)."""
    fb = factor * o.error_budget
    ratio = fb * 1.4 if fb * 1.4 < 1 else (1 + fb) / 2
    return min(_N, max(1, math.ceil(ratio * _N)))


def slo_rule_tests(objectives: Sequence[Objective], s: RuleSettings, rule_file: str) -> dict[str, Any]:
    """For each objective: the page tier fires under a fast burn and nothing fires when healthy."""
    minute = s.window(60.0)
    tests: list[dict[str, Any]] = []
    for o in objectives:
        page = next((t for t in s.tiers if t.name == "page"), None)
        conds = [c for c in page.conditions if possible(c, o)] if page else []
        alerts = [t for t in s.tiers if any(possible(c, o) for c in t.conditions)]
        healthy = {
            "interval": minute,
            "input_series": [
                {"series": f'slo_events_total{{slo="{o.name}",outcome="good"}}', "values": f"0+{_N}x120"},
                {"series": f'slo_events_total{{slo="{o.name}",outcome="bad"}}', "values": "0+0x120"},
            ],
            "alert_rule_test": [
                {"eval_time": s.window(6000.0), "alertname": f"{camel(o.name)}ErrorBudgetBurn{camel(t.name)}",
                 "exp_alerts": []} for t in alerts
            ],
            "promql_expr_test": [
                {"expr": f'slo:sli_error:ratio_rate5m{{slo="{o.name}"}}', "eval_time": s.window(600.0),
                 "exp_samples": [{"labels": _series_labels("slo:sli_error:ratio_rate5m", o, "5m"), "value": 0}]},
            ],
        }
        tests.append(healthy)
        if not conds or page is None:
            continue
        bad = _burn_ratio(o, max(c.factor for c in conds))
        ratio = Decimal(bad) / Decimal(_N)
        fast = {
            "interval": minute,
            "input_series": [
                {"series": f'slo_events_total{{slo="{o.name}",outcome="good"}}', "values": f"0+{_N - bad}x60"},
                {"series": f'slo_events_total{{slo="{o.name}",outcome="bad"}}', "values": f"0+{bad}x60"},
            ],
            "alert_rule_test": [{
                "eval_time": s.window(600.0),
                "alertname": f"{camel(o.name)}ErrorBudgetBurnPage",
                "exp_alerts": [{
                    "exp_labels": {**_labels(o), "severity": SEVERITY["page"], "sloth_severity": "page", "tier": "page"},
                    "exp_annotations": _burn_annotations(o, page, conds, s),
                }],
            }],
            "promql_expr_test": [
                {"expr": f'slo:sli_error:ratio_rate5m{{slo="{o.name}"}}', "eval_time": s.window(600.0),
                 "exp_samples": [{"labels": _series_labels("slo:sli_error:ratio_rate5m", o, "5m"),
                                  "value": float(ratio)}]},
            ],
        }
        tests.append(fast)
        quiet = math.floor(min(float(threshold(c, o)) for c in conds) * 0.8 * _N)
        if quiet >= 1:
            tests.append({
                "interval": minute,
                "input_series": [
                    {"series": f'slo_events_total{{slo="{o.name}",outcome="good"}}', "values": f"0+{_N - quiet}x60"},
                    {"series": f'slo_events_total{{slo="{o.name}",outcome="bad"}}', "values": f"0+{quiet}x60"},
                ],
                "alert_rule_test": [{"eval_time": s.window(600.0), "alertname": f"{camel(o.name)}ErrorBudgetBurnPage",
                                     "exp_alerts": []}],
            })
    return {"rule_files": [rule_file], "evaluation_interval": s.window(60.0), "tests": tests}


def _series_labels(name: str, o: Objective, window: str) -> str:
    labels = {**_labels(o), "sloth_window": window}
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def operational_rule_tests(objectives: Sequence[Objective], s: RuleSettings, rules: dict[str, Any],
                           rule_files: list[str]) -> dict[str, Any]:
    """Each operational alert fires on a breach and stays quiet when healthy."""
    minute = s.window(60.0)
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    tests: list[dict[str, Any]] = []

    def case(alert: str, series: list[dict[str, str]], labels: dict[str, str], healthy: list[dict[str, str]]) -> None:
        rule = by_name[alert]
        exp = [{"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": rule["annotations"]}]
        tests.append({"interval": minute, "input_series": series,
                      "alert_rule_test": [{"eval_time": s.window(1200.0), "alertname": alert, "exp_alerts": exp}]})
        tests.append({"interval": minute, "input_series": healthy,
                      "alert_rule_test": [{"eval_time": s.window(1200.0), "alertname": alert, "exp_alerts": []}]})

    for o in objectives:
        name = f"{camel(o.name)}P95Breach"
        if name not in by_name:
            continue
        series_name, matchers, above, below = _histogram_case(o)
        case(name, _buckets(series_name, matchers, above), {}, _buckets(series_name, matchers, below))
    if "OutboxLagHigh" in by_name:
        case("OutboxLagHigh", [{"series": "outbox_dispatch_lag_seconds", "values": "120x30"}], {},
             [{"series": "outbox_dispatch_lag_seconds", "values": "5x30"}])
    if "WebhookSignatureFailures" in by_name:
        case("WebhookSignatureFailures",
             [{"series": 'webhook_signature_failures_total{provider="stripe",reason="bad_signature"}', "values": "0+20x30"}],
             {"provider": "stripe"},
             [{"series": 'webhook_signature_failures_total{provider="stripe",reason="bad_signature"}', "values": "0+2x30"}])
    if "DatabaseSaturation" in by_name:
        case("DatabaseSaturation",
             [{"series": 'db_connections_in_use{pool="default"}', "values": "9x30"},
              {"series": 'db_connections_max{pool="default"}', "values": "10x30"}], {"pool": "default"},
             [{"series": 'db_connections_in_use{pool="default"}', "values": "3x30"},
              {"series": 'db_connections_max{pool="default"}', "values": "10x30"}])
    if "CircuitBreakerOpen" in by_name:
        case("CircuitBreakerOpen", [{"series": 'circuit_breaker_state{name="twilio",state="open"}', "values": "1x30"}],
             {"name": "twilio"}, [{"series": 'circuit_breaker_state{name="twilio",state="open"}', "values": "0x30"}])
    if "OutboxDeadLettersGrowing" in by_name:
        case("OutboxDeadLettersGrowing",
             [{"series": 'outbox_dead_letters_total{event_name="CallDetected"}', "values": "0+1x30"}],
             {"event_name": "CallDetected"},
             [{"series": 'outbox_dead_letters_total{event_name="CallDetected"}', "values": "3x30"}])
    return {"rule_files": rule_files, "evaluation_interval": minute, "tests": tests}


def _histogram_case(o: Objective) -> tuple[str, str, float, float]:
    limit = o.threshold_seconds or 1.0
    if isinstance(o, EventPair):
        return "slo_pair_duration_seconds_bucket", f'slo="{o.name}"', limit * 2, limit / 2
    assert isinstance(o, Latency)
    matchers = f'http_route="{o.route}"' + (f',http_request_method="{o.method}"' if o.method else "")
    return "http_server_request_duration_seconds_bucket", matchers, limit * 2, limit / 2


def _buckets(name: str, matchers: str, le: float) -> list[dict[str, str]]:
    """Cumulative buckets with every observation at most ``le`` (10 per minute)."""
    return [
        {"series": f'{name}{{{matchers},le="{_le(le)}"}}', "values": "0+10x30"},
        {"series": f'{name}{{{matchers},le="+Inf"}}', "values": "0+10x30"},
    ]


def _le(value: float) -> str:
    return repr(float(value))
