"""Values a KPI, a cache, an LLM call or a hand-reported query must refuse or keep harmless:
one infinite or NaN amount would stay in a counter's total, or a histogram's sum, for good."""

from __future__ import annotations

import math
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from surefoot.errors import ConfigurationError
from surefoot.logging import log_db_query, log_llm_call
from surefoot.metrics import KPI, CacheMetrics, classify_statement, summary
from surefoot.testing import fresh_registry, metric_value

BAD_AMOUNTS = [math.inf, math.nan, -1, -0.001, "3", None, True]


def _exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_kpi_refuses_amounts_that_are_not_finite_and_non_negative(amount) -> None:
    registry = CollectorRegistry()
    revenue = KPI(f"revenue_{uuid.uuid4().hex[:6]}", unit="cents", description="revenue", registry=registry)
    revenue.inc(250)
    with pytest.raises(ValueError, match="finite number >= 0"):
        revenue.inc(amount)
    assert revenue.value() == 250
    assert "Inf" not in _exposition(registry) and "NaN" not in _exposition(registry)


@pytest.mark.parametrize("value", [["missed"], ("missed",), 1, None, b"missed"])
def test_kpi_label_values_of_another_type_are_refused_with_the_allowed_ones(value) -> None:
    calls = KPI(f"calls_{uuid.uuid4().hex[:6]}", description="calls",
                labels={"outcome": ("missed", "answered")}, registry=CollectorRegistry())
    with pytest.raises(ValueError, match=r"allowed: \['missed', 'answered'\]"):
        calls.inc(outcome=value)
    with pytest.raises(ValueError, match="allowed"):
        calls.value(outcome=value)


@pytest.mark.parametrize("seconds", [math.inf, math.nan, -0.5])
def test_cache_record_refuses_durations_that_are_not_finite_and_non_negative(seconds: float) -> None:
    registry = CollectorRegistry()
    sessions = CacheMetrics("sessions", registry=registry)
    with pytest.raises(ValueError, match="finite number >= 0"):
        sessions.record("hit", seconds=seconds)
    sessions.record("miss", seconds=0.002)
    assert metric_value(registry, "cache_request_duration_seconds_sum", {"cache": "sessions"}) == 0.002
    assert metric_value(registry, "cache_requests_total", {"cache": "sessions", "result": "hit"}) == 0


@pytest.mark.parametrize("limit", [0, -3, True, 2.5, "10"])
def test_cache_label_cap_is_checked_when_declared(limit) -> None:
    with pytest.raises(ConfigurationError, match="max_label_values"):
        CacheMetrics("profiles", max_label_values=limit)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"cost_usd": math.inf}, "cost_usd"),
        ({"cost_usd": math.nan}, "cost_usd"),
        ({"price_in_per_1k": math.inf}, "cost_usd"),
        ({"duration_ms": math.nan}, "duration_ms"),
        ({"duration_ms": math.inf}, "duration_ms"),
        ({"duration_ms": -5.0}, "duration_ms"),
    ],
)
def test_log_llm_call_refuses_values_that_would_poison_the_totals(kwargs: dict, field: str) -> None:
    with fresh_registry() as registry:
        log_llm_call("gpt-4o-mini", tokens_in=100, tokens_out=20, provider="openai", cost_usd=0.5,
                     duration_ms=800)
        with pytest.raises(ValueError, match=field):
            log_llm_call("gpt-4o-mini", tokens_in=100, tokens_out=20, provider="openai", **kwargs)
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    assert metric_value(registry, "llm_cost_usd_total", labels) == 0.5
    assert metric_value(registry, "llm_call_duration_seconds_sum", labels) == 0.8
    assert metric_value(registry, "llm_calls_total", {**labels, "outcome": "success"}) == 1


def test_a_known_cost_of_zero_and_zero_tokens_are_exported() -> None:
    """Counted when known: a free call still creates the cost and token series (at 0)."""
    with fresh_registry() as registry:
        log_llm_call("local-llama", tokens_in=0, tokens_out=0, provider="ollama", cost_usd=0.0)
    labels = {"provider": "ollama", "model": "local-llama"}
    assert registry.get_sample_value("llm_cost_usd_total", labels) == 0.0
    assert registry.get_sample_value("llm_tokens_total", {**labels, "token_type": "prompt"}) == 0.0
    assert registry.get_sample_value("llm_tokens_total", {**labels, "token_type": "completion"}) == 0.0
    with fresh_registry() as unknown:
        log_llm_call("local-llama", tokens_in=3, tokens_out=4, provider="ollama")  # no price: cost unknown
    assert unknown.get_sample_value("llm_cost_usd_total", labels) is None


@pytest.mark.parametrize("duration_ms", [math.inf, math.nan])
def test_log_db_query_keeps_the_histogram_sum_finite(duration_ms: float) -> None:
    with fresh_registry() as registry:
        log_db_query("select_customer", duration_ms=4.0, pool="main")
        log_db_query("select_customer", duration_ms=duration_ms, pool="main")
    labels = {"pool": "main", "operation": "SELECT", "statement": "select_customer"}
    assert metric_value(registry, "db_query_duration_seconds_sum", labels) == 0.004
    assert "Inf" not in _exposition(registry).replace('le="+Inf"', "")


@pytest.mark.parametrize(
    "operation,verb",
    [
        ("select_customer", "SELECT"), ("select-customer", "SELECT"), ("Select.customer", "SELECT"),
        ("insert customer", "INSERT"), ("update", "UPDATE"), ("delete_old_rows", "DELETE"),
        ("selection_report", "_OTHER"), ("refresh_view", "_OTHER"), ("", "_OTHER"), ("__", "_OTHER"),
    ],
)
def test_hand_reported_queries_take_their_first_word_as_the_operation(operation: str, verb: str) -> None:
    with fresh_registry() as registry:
        log_db_query(operation, duration_ms=1.0, pool="main")
    labels = {"pool": "main", "operation": verb, "statement": operation}
    assert metric_value(registry, "db_query_duration_seconds_count", labels) == 1


@pytest.mark.parametrize(
    "sql,verb",
    [
        ("WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT sum(n) FROM t",
         "SELECT"),
        ("WITH moved AS (DELETE FROM inbox RETURNING *) INSERT INTO archive SELECT * FROM moved", "INSERT"),
        ("WITH a AS (SELECT 1), b AS (SELECT 2) UPDATE t SET x = (SELECT 3)", "UPDATE"),
        # what comes after the common table expressions decides, not text inside literals
        ("WITH x AS (SELECT 1) INSERT INTO notes VALUES (') DELETE')", "INSERT"),
        ('WITH x AS (SELECT ") update" FROM y) SELECT * FROM x', "SELECT"),
        ("WITH x AS (SELECT $$) delete $$) SELECT 1", "SELECT"),
        ("WITH x AS (SELECT 1) /* ) delete */ -- ) update\nSELECT * FROM x", "SELECT"),
        ("with x as materialized (select 1) delete from t", "DELETE"),
        ("WITH x AS (SELECT 1) MERGE INTO t USING x ON true WHEN MATCHED THEN UPDATE SET a = 1", "_OTHER"),
        ("WITH x AS (SELECT 1) VALUES (1)", "_OTHER"),
        ("WITH x AS (SELECT 1", "_OTHER"),
    ],
)
def test_with_statements_take_the_verb_after_the_last_cte(sql: str, verb: str) -> None:
    assert classify_statement(sql) == verb


_SQLISH = st.lists(
    st.one_of(
        st.sampled_from(["WITH", "with", "RECURSIVE", "AS", "(", ")", ",", "'", '"', "--", "\n", "/*", "*/",
                         "$$", "SELECT", "insert", "Update", "DELETE", "VALUES", "x", "1", ";", " "]),
        st.text(max_size=6),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(_SQLISH)
def test_classify_statement_always_answers_one_of_the_operations(parts: list[str]) -> None:
    sql = " ".join(parts)
    assert classify_statement(sql) in {"SELECT", "INSERT", "UPDATE", "DELETE", "_OTHER"}
    for verb in ("SELECT", "INSERT", "UPDATE", "DELETE"):
        # a statement starting with its verb is that verb, whatever follows
        assert classify_statement(f"{verb.lower()} {sql}") == verb


def test_summary_lists_only_routes_that_served_requests() -> None:
    from surefoot.http import install_http  # noqa: F401 - the HTTP family as the middleware creates it
    from surefoot.metrics import CATALOGUE

    registry = CollectorRegistry()
    family = CATALOGUE["http_server_request_duration_seconds"].get(registry)
    family.labels("GET", "/idle", "200", "http", "")  # a child without an observation
    family.labels("GET", "/busy", "200", "http", "").observe(0.01)
    out = summary(registry, module="m")
    assert [route["path"] for route in out["top_routes"]] == ["/busy"]
    assert out["routes_tracked"] == 1 and out["requests_total"] == 1


def test_the_label_cap_setting_caps_cache_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUREFOOT_METRICS_MAX_LABEL_VALUES", "2")
    registry = CollectorRegistry()
    for name in ("profiles", "sessions", "tokens", "carts"):
        CacheMetrics(name, registry=registry).record("hit")
    caches = {s.labels["cache"] for f in registry.collect() for s in f.samples if "cache" in s.labels}
    assert caches == {"profiles", "sessions", "_OTHER"}
    assert metric_value(registry, "surefoot_metric_label_overflow_total", {"metric": "cache", "label": "cache"}) == 2


@pytest.mark.parametrize(
    "variable,value",
    [
        ("SUREFOOT_METRICS_MAX_LABEL_VALUES", "0"),
        ("SUREFOOT_METRICS_MAX_LABEL_VALUES", "many"),
        ("SUREFOOT_METRICS_SLOW_QUERY_SECONDS", "-1"),
        ("SUREFOOT_METRICS_PROCESS_INTERVAL", "0"),
    ],
)
def test_a_bad_metrics_setting_stops_the_installed_app_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import surefoot

    monkeypatch.setenv(variable, value)
    app = FastAPI()
    surefoot.install(app, logging=False)
    with pytest.raises(ConfigurationError, match=f"{variable}: got '{value}'"), TestClient(app):
        pass


def test_the_same_kpi_declared_with_its_labels_in_another_order_counts_the_same_series() -> None:
    registry = CollectorRegistry()
    name = f"orders_{uuid.uuid4().hex[:6]}"
    by_channel = KPI(name, description="orders", registry=registry,
                     labels={"channel": ("web", "app"), "plan": ("free", "pro")})
    by_plan = KPI(name, description="orders", registry=registry,
                  labels={"plan": ("free", "pro"), "channel": ("web", "app")})
    by_plan.inc(plan="pro", channel="web")  # creates the family with plan first
    by_channel.inc(channel="app", plan="free")
    by_channel.inc(channel="web", plan="pro")
    assert by_channel.value(channel="web", plan="pro") == by_plan.value(plan="pro", channel="web") == 2
    assert by_plan.value(plan="free", channel="app") == 1
    exported = {(s.labels["channel"], s.labels["plan"]) for f in registry.collect() for s in f.samples}
    assert exported <= {(c, p) for c in ("web", "app") for p in ("free", "pro")}
