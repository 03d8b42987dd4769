"""The compatibility shims against the installed SQLAlchemy and prometheus_client."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from surefoot.metrics import KPI, declared_kpis, instrument_engine
from surefoot._compat.prometheus import FOLD_MASK, fast_observer, observer_parts
from surefoot._compat.sqlalchemy import max_overflow, wrap_dialect

BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in registry.collect() for s in f.samples if not s.name.endswith("_created")
    }


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=200))
def test_fast_observer_matches_histogram_observe(values: list[float]) -> None:
    reference, fast = CollectorRegistry(), CollectorRegistry()
    ref = Histogram("h", "h", ["a"], registry=reference, buckets=BUCKETS).labels("x")
    observe = fast_observer(Histogram("h", "h", ["a"], registry=fast, buckets=BUCKETS).labels("x"))
    for value in values:
        ref.observe(value)
        observe(value)
    got, want = _samples(fast), _samples(reference)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


def test_fast_observer_counts_every_observation_across_threads() -> None:
    registry = CollectorRegistry()
    observe = fast_observer(Histogram("h", "h", registry=registry, buckets=BUCKETS))
    per_thread = (FOLD_MASK + 1) * 12 + 7

    def work() -> None:
        for i in range(per_thread):
            observe(0.005 if i % 2 else 5.0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.get_sample_value("h_count") == 4 * per_thread
    assert registry.get_sample_value("h_sum") == pytest.approx(4 * ((per_thread // 2) * 0.005 + (per_thread - per_thread // 2) * 5.0))
    assert registry.get_sample_value("h_bucket", {"le": "0.01"}) == 4 * (per_thread // 2)


def test_max_overflow_is_read_from_the_installed_sqlalchemy() -> None:
    engine = sa.create_engine("sqlite:///:memory:", poolclass=sa.pool.QueuePool, pool_size=4, max_overflow=7)
    assert max_overflow(engine.pool) == 7
    assert max_overflow(object()) is None
    engine.dispose()


def test_wrap_dialect_undo_leaves_later_replacements_alone() -> None:
    engine = sa.create_engine("sqlite://")
    dialect = engine.dialect
    undo = wrap_dialect(dialect, {name: (lambda original: original) for name in
                                  ("do_execute", "do_executemany", "do_execute_no_params")})
    assert undo is not None and "do_execute" in vars(dialect)

    def later(*args):  # pragma: no cover - never called
        return None

    dialect.do_executemany = later
    undo()
    assert "do_execute" not in vars(dialect) and dialect.do_executemany is later

    class Frozen:
        __slots__ = ()

        def do_execute(self, *args):  # pragma: no cover - never called
            return None

    assert wrap_dialect(Frozen(), {"do_execute": lambda o: o}) is None


def test_default_pool_names(tmp_path) -> None:
    registry = CollectorRegistry()
    memory = sa.create_engine("sqlite://")
    on_disk = sa.create_engine(f"sqlite:///{tmp_path / 'orders.db'}")
    assert instrument_engine(memory, registry=registry).pool == "sqlite_memory"
    assert instrument_engine(on_disk, registry=registry).pool == "orders"
    memory.dispose()
    on_disk.dispose()


def test_engine_level_execution_options_name_statements() -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine("sqlite://")
    instrument_engine(engine, registry=registry, name="m")
    reporting = engine.execution_options(statement_name="report")
    assert instrument_engine(reporting, registry=registry, name="other").pool == "m"  # not twice
    with reporting.connect() as conn:
        conn.execute(sa.text("SELECT 1")).all()
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).all()
    labels = {"pool": "m", "operation": "SELECT"}
    assert registry.get_sample_value("db_query_duration_seconds_count", {**labels, "statement": "report"}) == 1
    assert registry.get_sample_value("db_query_duration_seconds_count", {**labels, "statement": ""}) == 1
    engine.dispose()


def test_callable_statement_names() -> None:
    registry = CollectorRegistry()
    engine = sa.create_engine("sqlite://")
    instrument_engine(engine, registry=registry, name="c",
                      statement_name=lambda sql, context: "one" if "1" in sql else None)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).all()
        conn.execute(sa.text("SELECT 2")).all()
    assert registry.get_sample_value("db_query_duration_seconds_count",
                                     {"pool": "c", "operation": "SELECT", "statement": "one"}) == 1
    assert registry.get_sample_value("db_query_duration_seconds_count",
                                     {"pool": "c", "operation": "SELECT", "statement": ""}) == 1
    engine.dispose()


@pytest.mark.parametrize("kwargs", [{"statement_name": ""}, {"statement_name": 3}, {"max_connections": 0},
                                    {"name": ""}, {"slow_query_seconds": -1}])
def test_bad_options_are_refused(kwargs: dict) -> None:
    from surefoot.errors import ConfigurationError

    engine = sa.create_engine("sqlite://")
    with pytest.raises(ConfigurationError):
        instrument_engine(engine, registry=CollectorRegistry(), **kwargs)
    with pytest.raises(ConfigurationError, match="Engine or AsyncEngine"):
        instrument_engine(object())
    engine.dispose()


def test_declared_kpis_lists_declarations() -> None:
    kpi = KPI("compat_listed", description="listed")
    assert kpi in declared_kpis()


def test_pending_sums_stay_bounded_without_scrapes() -> None:
    child = Histogram("h", "h", registry=CollectorRegistry(), buckets=BUCKETS)
    observe = fast_observer(child)
    for i in range(100_000):
        observe((i % 7) * 0.3)
    assert len(child._sum.pending) <= FOLD_MASK * (len(BUCKETS) + 1)


def test_children_prometheus_client_cannot_rewire_use_the_public_api() -> None:
    class Odd:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    odd = Odd()
    fast_observer(odd)(0.25)
    nexts, bounds, append, mask, fold = observer_parts(odd)
    append(0.5)
    assert nexts[0]() & mask != mask
    assert odd.seen == [0.25, 0.5]
