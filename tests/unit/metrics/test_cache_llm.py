"""Cache metrics, LLM call metrics, hand-reported queries and the label cap."""

from __future__ import annotations

import asyncio
import functools
import os

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import surefoot
from surefoot.errors import ConfigurationError
from surefoot.logging import log_db_query, log_llm_call
from surefoot.metrics import OVERFLOW, CacheMetrics, classify_statement, instrument_engine
from surefoot.testing import capture_logs, fresh_registry, metric_value


def _requests(registry: CollectorRegistry, cache: str, result: str) -> float:
    return metric_value(registry, "cache_requests_total", {"cache": cache, "result": result})


def test_in_process_cache_decorator_counts_hits_misses_and_errors() -> None:
    registry = CollectorRegistry()
    store = {"a": 1}
    profiles = CacheMetrics("profiles", registry=registry)

    @profiles
    def lookup(key: str) -> int | None:
        if key == "boom":
            raise KeyError(key)
        return store.get(key)

    assert lookup("a") == 1 and lookup("a") == 1
    assert lookup("b") is None
    with pytest.raises(KeyError):
        lookup("boom")
    assert _requests(registry, "profiles", "hit") == 2
    assert _requests(registry, "profiles", "miss") == 1
    assert _requests(registry, "profiles", "error") == 1
    assert metric_value(registry, "cache_request_duration_seconds_count", {"cache": "profiles"}) == 4
    assert lookup.__name__ == "lookup"


def test_functools_lru_cache_style_with_is_hit_and_manual_record() -> None:
    registry = CollectorRegistry()
    calls = CacheMetrics("lru", registry=registry, is_hit=lambda v: v != "")
    cached = functools.lru_cache(maxsize=2)(str.upper)
    assert calls.call(cached, "x") == "X"
    assert calls.call(lambda: "") == ""
    calls.record("hit", seconds=0.001)
    calls.record("miss")
    assert _requests(registry, "lru", "hit") == 2
    assert _requests(registry, "lru", "miss") == 2
    with pytest.raises(ValueError, match="hit, miss or error|one of"):
        calls.record("stale")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        calls.record("hit", seconds=-1)


async def test_async_lookup_is_timed_around_the_await() -> None:
    registry = CollectorRegistry()
    sessions = CacheMetrics("sessions", registry=registry)

    @sessions
    async def lookup(key: str) -> str | None:
        await asyncio.sleep(0.02)
        return None if key == "missing" else key

    assert await lookup("k") == "k"
    assert await sessions.acall(lookup.__wrapped__, "missing") is None
    assert _requests(registry, "sessions", "hit") == 1
    assert _requests(registry, "sessions", "miss") == 1
    # the await itself is measured, not only the creation of the coroutine
    assert metric_value(registry, "cache_request_duration_seconds_sum", {"cache": "sessions"}) >= 0.035


def test_generators_and_bad_names_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        CacheMetrics("")
    with pytest.raises(ConfigurationError):
        CacheMetrics("x", is_hit=True)  # type: ignore[arg-type]

    def gen():  # pragma: no cover - never called
        yield 1

    with pytest.raises(ConfigurationError, match="generator"):
        CacheMetrics("x")(gen)


def test_cache_names_beyond_the_cap_become_other() -> None:
    registry = CollectorRegistry()
    for i in range(5):
        CacheMetrics(f"c{i}", registry=registry, max_label_values=3).record("hit")
    assert _requests(registry, OVERFLOW, "hit") == 2
    assert metric_value(registry, "surefoot_metric_label_overflow_total",
                        {"metric": "cache", "label": "cache"}) == 2


def test_cache_metrics_off_runs_the_lookup_untimed() -> None:
    registry = CollectorRegistry()
    surefoot.configure(metrics_enabled=False)
    cache = CacheMetrics("off", registry=registry)
    assert cache.call(dict(a=1).get, "a") == 1
    assert list(registry.collect()) == []


def test_log_llm_call_counts_tokens_cost_and_calls() -> None:
    with fresh_registry() as registry, capture_logs() as logs:
        log_llm_call("gpt-4o-mini", tokens_in=1200, tokens_out=300, provider="openai",
                     price_in_per_1k=0.15, price_out_per_1k=0.6, duration_ms=850)
        log_llm_call("gpt-4o-mini", tokens_in=10, tokens_out=0, provider="openai",
                     error=TimeoutError("slow"))
        log_llm_call("claude-x", tokens_in=5, tokens_out=7, cost_usd=0.01)
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    assert metric_value(registry, "llm_tokens_total", {**labels, "token_type": "prompt"}) == 1210
    assert metric_value(registry, "llm_tokens_total", {**labels, "token_type": "completion"}) == 300
    assert metric_value(registry, "llm_cost_usd_total", labels) == pytest.approx(0.18 + 0.18)
    assert metric_value(registry, "llm_calls_total", {**labels, "outcome": "success"}) == 1
    assert metric_value(registry, "llm_calls_total", {**labels, "outcome": "error"}) == 1
    assert metric_value(registry, "llm_call_duration_seconds_sum", labels) == pytest.approx(0.85)
    assert metric_value(registry, "llm_cost_usd_total", {"provider": "unknown", "model": "claude-x"}) == 0.01
    assert len(logs.filter(event="llm_call")) == 3


def test_log_llm_call_refuses_negative_cost() -> None:
    with pytest.raises(ValueError, match="cost_usd"):
        log_llm_call("m", tokens_in=1, tokens_out=1, cost_usd=-0.5)


def test_log_db_query_records_the_db_families() -> None:
    with fresh_registry() as registry, capture_logs() as logs:
        log_db_query("select_customer", duration_ms=12.0, pool="main")
        log_db_query("select_customer", duration_ms=900.0, pool="main")
        log_db_query("refresh_view", duration_ms=3.0, error=RuntimeError("x"))
    labels = {"pool": "main", "operation": "SELECT", "statement": "select_customer"}
    assert metric_value(registry, "db_query_duration_seconds_count", labels) == 2
    assert metric_value(registry, "db_slow_queries_total", labels) == 1
    assert metric_value(registry, "db_query_errors_total",
                        {"pool": "", "operation": OVERFLOW, "error_type": "RuntimeError"}) == 1
    assert logs.filter(event="db_query", pool="main")


@pytest.mark.parametrize("sql,op", [
    ("SELECT 1", "SELECT"), ("  select * from t", "SELECT"), ("(SELECT 1) UNION (SELECT 2)", "SELECT"),
    ("-- note\nINSERT INTO t VALUES (1)", "INSERT"), ("/* a */ update t set x=1", "UPDATE"),
    ("DELETE FROM t", "DELETE"), ("WITH x AS (SELECT 1) DELETE FROM t USING x", "DELETE"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "SELECT"), ("CREATE TABLE t (x int)", OVERFLOW),
    ("BEGIN", OVERFLOW), ("", OVERFLOW), ("   ", OVERFLOW), ("PRAGMA foreign_keys", OVERFLOW),
])
def test_operation_is_the_statement_verb(sql: str, op: str) -> None:
    assert classify_statement(sql) == op


_NAMES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(_NAMES, min_size=1, max_size=30), models=st.lists(_NAMES, min_size=1, max_size=30),
       sql=st.lists(st.text(max_size=40), max_size=10))
def test_label_values_stay_within_their_declared_sets(names: list[str], models: list[str], sql: list[str]) -> None:
    """Statement names, model and provider names are capped; operations come from a fixed set;
    no SQL text ever becomes a label."""
    cap = 4
    registry = CollectorRegistry()
    engine = sa.create_engine("sqlite://")
    instrument_engine(engine, registry=registry, name="h", max_label_values=cap)
    with engine.connect() as conn:
        for name in names:
            stmt = sa.text("SELECT 1").execution_options(statement_name=name)
            conn.execute(stmt).all()
        for text in sql:
            try:
                conn.exec_driver_sql(text)
            except Exception:
                pass
    os.environ["SUREFOOT_METRICS_MAX_LABEL_VALUES"] = str(cap)
    try:
        with fresh_registry() as llm_registry:
            for model in models:
                log_llm_call(model, tokens_in=1, tokens_out=1, provider=model[::-1], cost_usd=0.1)
            exposed_llm = [s for f in llm_registry.collect() for s in f.samples if s.name.startswith("llm_")]
    finally:
        del os.environ["SUREFOOT_METRICS_MAX_LABEL_VALUES"]
    engine.dispose()
    samples = [s for f in registry.collect() for s in f.samples]
    statements = {s.labels["statement"] for s in samples if "statement" in s.labels}
    operations = {s.labels["operation"] for s in samples if "operation" in s.labels}
    assert operations <= {"SELECT", "INSERT", "UPDATE", "DELETE", OVERFLOW}
    assert len(statements - {"", OVERFLOW}) <= cap
    assert statements - {"", OVERFLOW} <= set(names)
    for text in sql:
        if len(text) > 3 and text not in names:
            assert text not in statements
    assert {s.labels["pool"] for s in samples if "pool" in s.labels} <= {"h"}
    error_types = {s.labels["error_type"] for s in samples if "error_type" in s.labels}
    assert len(error_types - {OVERFLOW}) <= cap
    exposed_models = {s.labels["model"] for s in exposed_llm} - {OVERFLOW}
    exposed_providers = {s.labels["provider"] for s in exposed_llm} - {OVERFLOW}
    assert exposed_models <= set(models) and len(exposed_models) <= cap
    assert exposed_providers <= {m[::-1] for m in models} and len(exposed_providers) <= cap
    assert {s.labels["token_type"] for s in exposed_llm if "token_type" in s.labels} <= {"prompt", "completion"}
    assert {s.labels["outcome"] for s in exposed_llm if "outcome" in s.labels} <= {"success", "error"}


def test_long_label_values_are_cut() -> None:
    registry = CollectorRegistry()
    CacheMetrics("c" * 5000, registry=registry).record("hit")
    caches = {s.labels["cache"] for f in registry.collect() for s in f.samples if "cache" in s.labels}
    assert caches == {"c" * 128}
