"""Grafana dashboards built with grafana-foundation-sdk (the ``dashboards`` extra), plus provisioning.

Six dashboards: SLO overview, outbox health, webhook health, provider errors and breaker
states, HTTP RED, database and workers. A panel is only added when every metric it reads is
in the catalogue given to :func:`dashboards`, so no panel can stay empty forever.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .._core.extras import require
from ._objectives import EventPair, Latency, Objective, decimal_str

__all__ = ["dashboards", "provisioning", "panel_queries", "DATASOURCE_UID"]

DATASOURCE_UID = "surefoot-prometheus"

# (title, unit, [(expr, legend)], [metric families read], kind)
Panel = tuple[str, str, list[tuple[str, str]], list[str], str]


def _slo_panels(objectives: Sequence[Objective]) -> list[Panel]:
    panels: list[Panel] = []
    for o in objectives:
        sel = f'sloth_id="{o.service}-{o.name}"'
        panels.append((f"{o.name}: error budget remaining (28 d)", "percentunit",
                       [(f"slo:period_error_budget_remaining:ratio{{{sel}}}", "remaining")], ["slo_events_total"], "stat"))
        panels.append((f"{o.name}: SLI (5 m / 1 h)", "percentunit",
                       [(f"1 - slo:sli_error:ratio_rate5m{{{sel}}}", "5m"), (f"1 - slo:sli_error:ratio_rate1h{{{sel}}}", "1h"),
                        (f"slo:objective:ratio{{{sel}}}", "objective")], ["slo_events_total"], "timeseries"))
        panels.append((f"{o.name}: burn rate", "none",
                       [(f"slo:current_burn_rate:ratio{{{sel}}}", "5m burn rate")], ["slo_events_total"], "timeseries"))
        series = o.p95_series()
        if series and (isinstance(o, EventPair) or (isinstance(o, Latency) and o.route not in (None, "*"))):
            unit = "ms" if series.endswith("_ms") else "s"
            limit = (o.threshold_seconds or 0) * (1000 if unit == "ms" else 1)
            source = "slo_pair_duration_seconds" if isinstance(o, EventPair) else "http_server_request_duration_seconds"
            panels.append((f"{o.name}: P95 (objective {decimal_str(limit)} {unit})", unit,
                           [(series, "P95")], [source], "timeseries"))
        panels.append((f"{o.name}: events per second", "reqps",
                       [(f'sum by (outcome) (rate(slo_events_total{{slo="{o.name}"}}[5m]))', "{{outcome}}")],
                       ["slo_events_total"], "timeseries"))
    return panels


_OUTBOX: list[Panel] = [
    ("Dispatch lag (oldest pending event)", "s", [("max(outbox_dispatch_lag_seconds)", "lag")],
     ["outbox_dispatch_lag_seconds"], "timeseries"),
    ("Pending events", "short", [("max(outbox_pending_events)", "pending")], ["outbox_pending_events"], "timeseries"),
    ("Dispatch attempts by event", "ops",
     [("sum by (event_name) (rate(outbox_dispatch_attempts_total[5m]))", "{{event_name}}")],
     ["outbox_dispatch_attempts_total"], "timeseries"),
    ("Dispatch failures by event", "ops",
     [("sum by (event_name) (rate(outbox_dispatch_failures_total[5m]))", "{{event_name}}")],
     ["outbox_dispatch_failures_total"], "timeseries"),
    ("Dead letters (last hour)", "short",
     [("sum by (event_name) (increase(outbox_dead_letters_total[1h]))", "{{event_name}}")],
     ["outbox_dead_letters_total"], "timeseries"),
    ("Commit to delivery P95", "s",
     [("histogram_quantile(0.95, sum by (le, event_name) (rate(outbox_dispatch_duration_seconds_bucket[5m])))",
       "{{event_name}}")], ["outbox_dispatch_duration_seconds"], "timeseries"),
]

_WEBHOOKS: list[Panel] = [
    ("Dedupe hits by provider", "ops", [("sum by (provider) (rate(webhook_dedupe_hits_total[5m]))", "{{provider}}")],
     ["webhook_dedupe_hits_total"], "timeseries"),
    ("Signature failures per minute", "short",
     [("sum by (provider, reason) (rate(webhook_signature_failures_total[5m])) * 60", "{{provider}} {{reason}}")],
     ["webhook_signature_failures_total"], "timeseries"),
    ("Handler P95 by provider", "s",
     [("histogram_quantile(0.95, sum by (le, provider) (rate(webhook_handler_duration_seconds_bucket[5m])))",
       "{{provider}}")], ["webhook_handler_duration_seconds"], "timeseries"),
]

_PROVIDERS: list[Panel] = [
    ("Provider error rate (non-2xx share)", "percentunit",
     [('sum by (provider) (rate(integration_http_requests_total{status!~"2.."}[5m])) / '
       "sum by (provider) (rate(integration_http_requests_total[5m]))", "{{provider}}")],
     ["integration_http_requests_total"], "timeseries"),
    ("Provider latency P95", "s",
     [("histogram_quantile(0.95, sum by (le, provider) (rate(integration_http_latency_seconds_bucket[5m])))",
       "{{provider}}")], ["integration_http_latency_seconds"], "timeseries"),
    ("Circuit breaker states", "short", [("max by (name, state) (circuit_breaker_state) > 0", "{{name}} {{state}}")],
     ["circuit_breaker_state"], "timeseries"),
    ("Breaker calls by outcome", "ops", [("sum by (name, kind) (rate(circuit_breaker_calls_total[5m]))",
                                          "{{name}} {{kind}}")], ["circuit_breaker_calls_total"], "timeseries"),
    ("Retries by outcome", "ops", [("sum by (name, outcome) (rate(retry_attempts_total[5m]))", "{{name}} {{outcome}}")],
     ["retry_attempts_total"], "timeseries"),
]

_HTTP: list[Panel] = [
    ("Requests per second by route", "reqps",
     [("sum by (http_route) (rate(http_server_request_duration_seconds_count[5m]))", "{{http_route}}")],
     ["http_server_request_duration_seconds"], "timeseries"),
    ("Errors (5xx share) by route", "percentunit",
     [('sum by (http_route) (rate(http_server_request_duration_seconds_count{http_response_status_code=~"5.."}[5m]))'
       " / sum by (http_route) (rate(http_server_request_duration_seconds_count[5m]))", "{{http_route}}")],
     ["http_server_request_duration_seconds"], "timeseries"),
    ("Duration P95 by route", "s",
     [("histogram_quantile(0.95, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket[5m])))",
       "{{http_route}}")], ["http_server_request_duration_seconds"], "timeseries"),
    ("Active requests", "short", [("sum(http_server_active_requests)", "active")], ["http_server_active_requests"],
     "timeseries"),
]

_DB: list[Panel] = [
    ("DB connections in use / max", "percentunit",
     [("max by (pool) (db_connections_in_use / db_connections_max)", "{{pool}}")],
     ["db_connections_in_use", "db_connections_max"], "timeseries"),
    ("CPU", "percent", [("sum(cpu_utilization_percent)", "cpu")], ["cpu_utilization_percent"], "timeseries"),
    ("Memory", "percent", [("sum(memory_utilization_percent)", "memory")], ["memory_utilization_percent"], "timeseries"),
    ("Worker queue depth", "short", [("max(worker_queue_depth)", "depth")], ["worker_queue_depth"], "timeseries"),
    ("Outbox pending events", "short", [("max(outbox_pending_events)", "pending")], ["outbox_pending_events"],
     "timeseries"),
    ("Health checks failing", "short", [('sum by (check) (health_check_status{status!="pass"})', "{{check}}")],
     ["health_check_status"], "timeseries"),
]


def _specs(objectives: Sequence[Objective]) -> dict[str, tuple[str, list[Panel]]]:
    return {
        "slo-overview": ("SLO overview", _slo_panels(objectives)),
        "outbox-health": ("Outbox health", _OUTBOX),
        "webhook-health": ("Webhook health", _WEBHOOKS),
        "provider-errors": ("Provider errors and breaker states", _PROVIDERS),
        "http-red": ("HTTP requests (RED)", _HTTP),
        "db-workers": ("Database and workers", _DB),
    }


def panel_queries(objectives: Sequence[Objective], has: Callable[..., bool]) -> dict[str, list[str]]:
    """Every query of every dashboard: ``{uid: [expr, ...]}`` (for checks)."""
    return {uid: [e for (_t, _u, exprs, needs, _k) in panels if has(*needs) for e, _ in exprs]
            for uid, (_title, panels) in _specs(objectives).items()}


def dashboards(objectives: Sequence[Objective], has: Callable[..., bool]) -> dict[str, str]:
    """``{file name: dashboard JSON}`` built with grafana-foundation-sdk."""
    out: dict[str, str] = {}
    with warnings.catch_warnings():
        # The v1 builders warn in favour of dashboardv2; file provisioning loads the v1 JSON.
        warnings.simplefilter("ignore", DeprecationWarning)
        require("grafana_foundation_sdk", "dashboards")
        from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.models.dashboard import DataSourceRef

        ds = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
        for uid, (title, panels) in _specs(objectives).items():
            out[f"{uid}.json"] = _board(dashboard, prometheus, stat, timeseries, JSONEncoder, ds, uid, title, panels, has)
    return out


def _board(dashboard: Any, prometheus: Any, stat: Any, timeseries: Any, encoder: Any, ds: Any, uid: str, title: str,
           panels: list[Panel], has: Callable[..., bool]) -> str:
    board = (dashboard.Dashboard(title).uid(f"surefoot-{uid}").tags(["surefoot"]).refresh("30s")
             .time("now-6h", "now").timezone("utc"))
    for panel_title, unit, exprs, needs, kind in panels:
        if not has(*needs):
            continue
        builder = stat.Panel() if kind == "stat" else timeseries.Panel()
        builder = builder.title(panel_title).unit(unit).datasource(ds).height(8).span(12 if kind != "stat" else 6)
        for ref, (expr, legend) in enumerate(exprs):
            builder = builder.with_target(
                prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + ref))
            )
        board = board.with_panel(builder)
    return str(encoder(sort_keys=True, indent=2).encode(board.build())) + "\n"


def provisioning(prometheus_url: str, dashboards_path: str) -> dict[str, str]:
    """Grafana datasource and dashboard-provider provisioning files."""
    from ._generate import dump_yaml

    datasource = {
        "apiVersion": 1,
        "datasources": [{"name": "Prometheus", "type": "prometheus", "uid": DATASOURCE_UID, "access": "proxy",
                         "url": prometheus_url, "isDefault": True, "editable": False}],
    }
    provider = {
        "apiVersion": 1,
        "providers": [{"name": "surefoot", "orgId": 1, "folder": "surefoot", "type": "file",
                       "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 30,
                       "options": {"path": dashboards_path, "foldersFromFilesStructure": False}}],
    }
    return {
        "datasources/surefoot.yml": dump_yaml(datasource),
        "dashboards/surefoot.yml": dump_yaml(provider),
    }
