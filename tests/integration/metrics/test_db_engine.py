"""instrument_engine on real SQLite and PostgreSQL engines, sync and async, under load."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import create_async_engine

import surefoot
from surefoot.metrics import instrument_engine, pool_readings
from surefoot.testing import capture_logs, metric_value

POOL_SIZE = 3
MAX_OVERFLOW = 2


def _async_url(url: str) -> str:
    if url.startswith("sqlite:"):
        return url.replace("sqlite:", "sqlite+aiosqlite:", 1)
    return url  # postgresql+psycopg serves sync and async


def _gauges(registry: CollectorRegistry, pool: str) -> dict[str, float | None]:
    names = ("in_use", "idle", "overflow", "max", "utilization_percent")
    return {
        n: registry.get_sample_value(f"db_connections_{n}", {"pool": pool}) for n in names
    }


def _table() -> str:
    return "t_" + uuid.uuid4().hex[:8]


def test_queries_are_timed_by_operation_and_statement_name(db_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(db_url)
    table = _table()
    try:
        inst = instrument_engine(engine, name="main", registry=registry)
        assert inst.enabled
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, secret TEXT)"))
            conn.execute(sa.text(f"INSERT INTO {table} (id, secret) VALUES (:i, :s)"),
                         [{"i": i, "s": f"tok-{i}"} for i in range(5)])
            named = sa.text(f"SELECT secret FROM {table} WHERE id = :i").execution_options(
                statement_name="load_secret"
            )
            for i in range(3):
                conn.execute(named, {"i": i}).all()
            conn.execute(sa.text(f"UPDATE {table} SET secret = 'x' WHERE id = 1"))
            conn.execute(sa.text(f"/* why */ DELETE FROM {table} WHERE id = 2"))
            query = sa.select(sa.literal_column("secret")).select_from(sa.table(table)).execution_options(
                statement_name="orm_style"
            )
            conn.execute(query).all()

        def count(operation: str, statement: str = "") -> float:
            return metric_value(registry, "db_query_duration_seconds_count",
                                {"pool": "main", "operation": operation, "statement": statement})

        assert count("SELECT", "load_secret") == 3
        assert count("SELECT", "orm_style") == 1
        assert count("INSERT") == 1  # one executemany
        assert count("UPDATE") == 1
        assert count("DELETE") == 1
        assert count("_OTHER") >= 1  # CREATE TABLE
        assert metric_value(registry, "db_query_duration_seconds_sum",
                            {"pool": "main", "operation": "SELECT", "statement": "load_secret"}) > 0
        exposition = generate_latest(registry).decode()
        assert table not in exposition and "tok-" not in exposition
    finally:
        engine.dispose()


def test_failed_statements_are_counted_by_error_type(db_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(db_url)
    table = _table()
    try:
        instrument_engine(engine, name="main", registry=registry)
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text(f"INSERT INTO {table} (id) VALUES (1)"))
        with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} (id) VALUES (1)"))
        error_type = type(caught.value.orig).__name__
        assert metric_value(registry, "db_query_errors_total",
                            {"pool": "main", "operation": "INSERT", "error_type": error_type}) == 1
        # the failed statement is not in the duration histogram
        assert metric_value(registry, "db_query_duration_seconds_count",
                            {"pool": "main", "operation": "INSERT", "statement": ""}) == 1
    finally:
        engine.dispose()


def test_slow_queries_are_logged_without_bound_parameters(db_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(db_url)
    try:
        instrument_engine(engine, name="main", registry=registry, slow_query_seconds=1e-9)
        with capture_logs() as logs, engine.connect() as conn:
            conn.execution_options(statement_name="probe").execute(
                sa.text("SELECT :secret"), {"secret": "hunter2-parameter"}
            ).all()
        line = logs.one(event="db_query", statement="probe")
        assert line["slow"] is True and line["operation"] == "SELECT" and line["pool"] == "main"
        assert line["duration_ms"] >= 0 and line["sql"].startswith("SELECT ")
        assert "hunter2-parameter" not in repr(list(logs))
        assert metric_value(registry, "db_slow_queries_total",
                            {"pool": "main", "operation": "SELECT", "statement": "probe"}) == 1
    finally:
        engine.dispose()


def _hold(engine: sa.Engine, n: int) -> tuple[list[threading.Thread], threading.Event, threading.Barrier]:
    """Check out ``n`` connections in ``n`` threads and keep them until released."""
    release = threading.Event()
    ready = threading.Barrier(n + 1, timeout=30)

    def worker() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).all()
            ready.wait()
            release.wait(30)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, release, ready


def test_pool_gauges_match_the_pool_under_concurrent_load(db_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(db_url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=0.2)
    try:
        instrument_engine(engine, name="load", registry=registry)
        for held in (1, POOL_SIZE, POOL_SIZE + MAX_OVERFLOW):
            threads, release, ready = _hold(engine, held)
            ready.wait()
            pool = engine.pool
            gauges = _gauges(registry, "load")
            assert gauges["in_use"] == pool.checkedout() == held
            assert gauges["idle"] == pool.checkedin()
            assert gauges["overflow"] == max(0, pool.overflow()) == max(0, held - POOL_SIZE)
            assert gauges["max"] == POOL_SIZE + MAX_OVERFLOW
            assert gauges["utilization_percent"] == pytest.approx(100.0 * held / (POOL_SIZE + MAX_OVERFLOW))
            if held == POOL_SIZE + MAX_OVERFLOW:
                # exhausted: 100 % in use, and the next checkout really waits and fails
                assert gauges["utilization_percent"] == 100.0
                with pytest.raises(sa.exc.TimeoutError):
                    engine.connect()
            release.set()
            for t in threads:
                t.join(30)
        gauges = _gauges(registry, "load")
        assert gauges["in_use"] == 0 == engine.pool.checkedout()
        assert gauges["idle"] == engine.pool.checkedin() > 0
        # queries from many threads at once are all counted
        def run_queries() -> None:
            for _ in range(20):
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1")).all()

        workers = [threading.Thread(target=run_queries) for _ in range(8)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        assert metric_value(registry, "db_query_duration_seconds_count",
                            {"pool": "load", "operation": "SELECT", "statement": ""}) >= 160
    finally:
        engine.dispose()


async def test_async_engine_pool_gauges_and_queries(db_url: str) -> None:
    registry = CollectorRegistry()
    engine = create_async_engine(
        _async_url(db_url), pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=0.2
    )
    try:
        instrument_engine(engine, name="async", registry=registry)
        total = POOL_SIZE + MAX_OVERFLOW
        holding = asyncio.Event()
        release = asyncio.Event()
        started = 0

        async def hold() -> None:
            nonlocal started
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
                started += 1
                if started == total:
                    holding.set()
                await release.wait()

        tasks = [asyncio.create_task(hold()) for _ in range(total)]
        await asyncio.wait_for(holding.wait(), 30)
        gauges = _gauges(registry, "async")
        assert gauges["in_use"] == engine.pool.checkedout() == total
        assert gauges["utilization_percent"] == 100.0
        assert gauges["overflow"] == MAX_OVERFLOW
        with pytest.raises(sa.exc.TimeoutError):
            async with engine.connect():
                pass
        release.set()
        await asyncio.gather(*tasks)
        assert _gauges(registry, "async")["in_use"] == 0

        async def query(i: int) -> None:
            async with engine.connect() as conn:
                ping = sa.text("SELECT :i").execution_options(statement_name="ping")
                await conn.execute(ping, {"i": i})

        await asyncio.gather(*(query(i) for i in range(40)))
        assert metric_value(registry, "db_query_duration_seconds_count",
                            {"pool": "async", "operation": "SELECT", "statement": "ping"}) == 40
    finally:
        await engine.dispose()


def test_gauges_follow_the_new_pool_after_dispose(sqlite_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(sqlite_url, pool_size=2, max_overflow=0)
    instrument_engine(engine, name="d", registry=registry)
    conn = engine.connect()
    assert _gauges(registry, "d")["in_use"] == 1
    conn.close()
    engine.dispose()
    held = [engine.connect(), engine.connect()]
    assert _gauges(registry, "d")["in_use"] == 2 == engine.pool.checkedout()
    assert _gauges(registry, "d")["utilization_percent"] == 100.0
    for c in held:
        c.close()
    engine.dispose()


def test_pools_without_counters_are_tracked_by_checkouts(sqlite_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(sqlite_url, poolclass=sa.pool.NullPool)
    instrument_engine(engine, name="null", registry=registry)
    held = [engine.connect() for _ in range(3)]
    gauges = _gauges(registry, "null")
    assert gauges["in_use"] == 3
    assert gauges["max"] is None and gauges["utilization_percent"] is None  # unbounded pool
    for c in held:
        c.close()
    assert _gauges(registry, "null")["in_use"] == 0
    engine.dispose()


def test_max_connections_overrides_and_names_add_up(sqlite_url: str, tmp_path) -> None:
    registry = CollectorRegistry()
    first = sa.create_engine(sqlite_url, pool_size=2, max_overflow=0)
    second = sa.create_engine(f"sqlite:///{tmp_path / 'other.sqlite3'}", poolclass=sa.pool.NullPool)
    instrument_engine(first, name="shared", registry=registry)
    instrument_engine(second, name="shared", registry=registry, max_connections=4)
    held = [first.connect(), second.connect(), second.connect()]
    readings = pool_readings(registry)["shared"]
    assert readings[0] == 3 and readings[3] == 6
    assert _gauges(registry, "shared")["utilization_percent"] == pytest.approx(50.0)
    for c in held:
        c.close()
    first.dispose()
    second.dispose()


def test_metrics_off_attaches_nothing(sqlite_url: str) -> None:
    surefoot.configure(metrics_enabled=False)
    registry = CollectorRegistry()
    engine = sa.create_engine(sqlite_url)
    inst = instrument_engine(engine, registry=registry)
    assert inst.enabled is False
    assert not engine.dialect._has_events and not engine._has_events
    assert inst.hook is None and "do_execute" not in vars(engine.dialect)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).all()
    assert list(registry.collect()) == []
    engine.dispose()


def test_remove_detaches_and_instrumenting_twice_returns_the_first(sqlite_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(sqlite_url)
    inst = instrument_engine(engine, registry=registry, name="x")
    assert instrument_engine(engine, registry=registry, name="y") is inst
    inst.remove()
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).all()
    assert registry.get_sample_value(
        "db_query_duration_seconds_count", {"pool": "x", "operation": "SELECT", "statement": ""}
    ) is None
    assert pool_readings(registry) == {}
    engine.dispose()


def test_the_dialect_wrapper_is_installed_and_removed(sqlite_url: str) -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine(sqlite_url)
    inst = instrument_engine(engine, registry=registry, name="w")
    assert inst.hook == "dialect"
    assert {"do_execute", "do_executemany", "do_execute_no_params"} <= set(vars(engine.dialect))
    assert not engine._has_events  # the connection-event slow path stays off
    inst.remove()
    assert not {"do_execute", "do_executemany", "do_execute_no_params"} & set(vars(engine.dialect))
    engine.dispose()


def test_dialect_events_are_the_fallback(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import surefoot.metrics._db as db

    monkeypatch.setattr(db, "wrap_dialect", lambda dialect, wrappers: None)
    registry = CollectorRegistry()
    engine = sa.create_engine(db_url)
    table = _table()
    try:
        inst = instrument_engine(engine, registry=registry, name="ev")
        assert inst.hook == "events"
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text(f"INSERT INTO {table} (id) VALUES (:i)"), [{"i": 1}, {"i": 2}])
            conn.execute(sa.text(f"SELECT id FROM {table}").execution_options(statement_name="ids")).all()
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} (id) VALUES (1)"))
        labels = {"pool": "ev", "operation": "SELECT", "statement": "ids"}
        assert metric_value(registry, "db_query_duration_seconds_count", labels) == 1
        assert metric_value(registry, "db_query_duration_seconds_count",
                            {"pool": "ev", "operation": "INSERT", "statement": ""}) == 1
        errors = [s for f in registry.collect() for s in f.samples if s.name == "db_query_errors_total"]
        assert [s.value for s in errors] == [1.0]
        assert list(engine.dialect.dispatch.do_execute)
        inst.remove()
        assert not list(engine.dialect.dispatch.do_execute)
    finally:
        engine.dispose()
