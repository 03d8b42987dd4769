"""instrument_engine as docs/metrics.md describes it: the slow-query threshold (measured with
an injected clock the query itself moves), the pool maximum and max_connections, and the
statement-name cap under a flood of names."""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from surefoot.metrics import instrument_engine
from surefoot.testing import capture_logs, metric_value


class QueryClock:
    """Stands in for ``time.perf_counter``: it moves only when a query calls ``spend(ms)``.

    The tests spend multiples of 1/8 s, which floats add and subtract exactly."""

    def __init__(self) -> None:
        self.now = 4096.0

    def __call__(self) -> float:
        return self.now

    def spend(self, ms: float) -> int:
        self.now += ms / 1000.0
        return 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> QueryClock:
    fake = QueryClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def _engine(url: str, clock: QueryClock, **kwargs) -> sa.Engine:
    engine = sa.create_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _spend(dbapi_connection, _record) -> None:
        dbapi_connection.create_function("spend", 1, clock.spend)

    return engine


def _slow(registry: CollectorRegistry, statement: str = "") -> float:
    return metric_value(registry, "db_slow_queries_total",
                        {"pool": "main", "operation": "SELECT", "statement": statement})


def test_statements_at_least_as_long_as_the_threshold_are_slow(sqlite_url: str, clock: QueryClock) -> None:
    registry = CollectorRegistry()
    engine = _engine(sqlite_url, clock)
    instrument_engine(engine, name="main", registry=registry, slow_query_seconds=0.5)
    with capture_logs() as logs, engine.connect() as conn:
        conn.execute(sa.text("SELECT spend(375)")).all()
        conn.execute(sa.text("SELECT spend(:ms)").execution_options(statement_name="exactly"),
                     {"ms": 500}).all()
        conn.execute(sa.text("SELECT spend(2500), :token"), {"token": "s3cret-value"}).all()
    assert _slow(registry) == 1 and _slow(registry, "exactly") == 1
    lines = logs.filter(event="db_query")
    assert [line["duration_ms"] for line in lines] == [500.0, 2500.0]
    first, second = lines
    assert first["slow"] is True and first["threshold_ms"] == 500.0 and first["level"] == "warning"
    assert first["statement"] == "exactly" and first["operation"] == "SELECT" and first["pool"] == "main"
    assert first["sql"] == "SELECT spend(?)" and second["sql"] == "SELECT spend(2500), ?"
    assert "s3cret-value" not in repr(lines)
    assert metric_value(registry, "db_query_duration_seconds_sum",
                        {"pool": "main", "operation": "SELECT", "statement": ""}) == 2.875
    engine.dispose()


def test_the_logged_sql_is_cut_to_1000_characters(sqlite_url: str, clock: QueryClock) -> None:
    engine = _engine(sqlite_url, clock)
    instrument_engine(engine, name="main", registry=CollectorRegistry(), slow_query_seconds=0.1)
    long_sql = "SELECT spend(200)" + " + 0" * 600
    with capture_logs() as logs, engine.connect() as conn:
        conn.execute(sa.text(long_sql)).all()
    assert logs.one(event="db_query")["sql"] == long_sql[:1000]
    engine.dispose()


def test_a_zero_threshold_logs_no_slow_query(sqlite_url: str, clock: QueryClock) -> None:
    registry = CollectorRegistry()
    engine = _engine(sqlite_url, clock)
    instrument_engine(engine, name="main", registry=registry, slow_query_seconds=0)
    with capture_logs() as logs, engine.connect() as conn:
        conn.execute(sa.text("SELECT spend(60000)")).all()
    assert not logs.filter(event="db_query") and _slow(registry) == 0
    engine.dispose()


def test_the_threshold_defaults_to_the_setting(
    sqlite_url: str, clock: QueryClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUREFOOT_METRICS_SLOW_QUERY_SECONDS", "0.25")
    registry = CollectorRegistry()
    engine = _engine(sqlite_url, clock)
    inst = instrument_engine(engine, name="main", registry=registry)
    assert inst.slow_query_seconds == 0.25
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT spend(125)")).all()
        conn.execute(sa.text("SELECT spend(250)")).all()
    assert _slow(registry) == 1
    engine.dispose()


def test_failed_statements_are_counted_not_timed_nor_logged_as_slow(sqlite_url: str, clock: QueryClock) -> None:
    registry = CollectorRegistry()
    engine = _engine(sqlite_url, clock)
    instrument_engine(engine, name="main", registry=registry, slow_query_seconds=0.1)
    with capture_logs() as logs, engine.connect() as conn, pytest.raises(sa.exc.OperationalError):
        conn.execute(sa.text("SELECT spend(900) FROM missing_table")).all()
    assert metric_value(registry, "db_query_errors_total",
                        {"pool": "main", "operation": "SELECT", "error_type": "OperationalError"}) == 1
    assert registry.get_sample_value("db_query_duration_seconds_count",
                                     {"pool": "main", "operation": "SELECT", "statement": ""}) is None
    assert not logs.filter(event="db_query")
    engine.dispose()


def _max(registry: CollectorRegistry, pool: str) -> float | None:
    return registry.get_sample_value("db_connections_max", {"pool": pool})


def test_max_connections_is_used_only_where_sqlalchemy_cannot_tell(db_url: str) -> None:
    registry = CollectorRegistry()
    bounded = sa.create_engine(db_url, pool_size=2, max_overflow=3)
    unbounded = sa.create_engine(db_url, pool_size=2, max_overflow=-1)
    unknown = sa.create_engine(db_url, pool_size=2, max_overflow=-1)
    null = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        instrument_engine(bounded, name="bounded", registry=registry, max_connections=50)
        instrument_engine(unbounded, name="unbounded", registry=registry, max_connections=20)
        instrument_engine(unknown, name="unknown", registry=registry)
        instrument_engine(null, name="null", registry=registry, max_connections=8)
        held = [bounded.connect(), unbounded.connect(), null.connect(), null.connect()]
        assert _max(registry, "bounded") == 5  # size() + max_overflow, which SQLAlchemy knows
        assert _max(registry, "unbounded") == 20
        assert _max(registry, "unknown") is None
        assert registry.get_sample_value("db_connections_utilization_percent", {"pool": "unknown"}) is None
        assert _max(registry, "null") == 8
        assert registry.get_sample_value("db_connections_utilization_percent", {"pool": "null"}) == 25.0
        assert registry.get_sample_value("db_connections_utilization_percent", {"pool": "bounded"}) == 20.0
        for conn in held:
            conn.close()
    finally:
        for engine in (bounded, unbounded, unknown, null):
            engine.dispose()


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
def test_bad_max_connections_is_refused(sqlite_url: str, bad) -> None:
    from surefoot.errors import ConfigurationError

    engine = sa.create_engine(sqlite_url)
    with pytest.raises(ConfigurationError, match="max_connections must be a positive integer"):
        instrument_engine(engine, registry=CollectorRegistry(), max_connections=bad)
    engine.dispose()


def test_a_flood_of_statement_names_is_capped_and_every_overflow_counted(db_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(db_url)
    try:
        instrument_engine(engine, name="main", registry=registry, max_label_values=3,
                          statement_name=lambda sql, context: "q_" + uuid.uuid4().hex)
        with engine.connect() as conn:
            for _ in range(20):
                conn.execute(sa.text("SELECT 1")).all()
        counts = [s for f in registry.collect() for s in f.samples if s.name == "db_query_duration_seconds_count"]
        statements = {s.labels["statement"] for s in counts}
        # three names (PostgreSQL's own start-up queries may take some), then _OTHER
        assert len(statements - {"_OTHER"}) == 3 and "_OTHER" in statements
        folded = sum(s.value for s in counts if s.labels["statement"] == "_OTHER")
        assert folded >= 17 and sum(s.value for s in counts) == folded + 3
        assert metric_value(registry, "surefoot_metric_label_overflow_total",
                            {"metric": "db", "label": "statement"}) == folded
    finally:
        engine.dispose()


def test_a_name_beyond_the_cap_is_counted_each_time_it_runs(sqlite_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(sqlite_url)
    instrument_engine(engine, name="main", registry=registry, max_label_values=1)
    with engine.connect() as conn:
        for name in ("first", "second", "second", "second"):
            conn.execute(sa.text("SELECT 1").execution_options(statement_name=name)).all()
    assert metric_value(registry, "db_query_duration_seconds_count",
                        {"pool": "main", "operation": "SELECT", "statement": "_OTHER"}) == 3
    assert metric_value(registry, "surefoot_metric_label_overflow_total",
                        {"metric": "db", "label": "statement"}) == 3
    engine.dispose()
