"""Cost per query of database instrumentation: surefoot versus OpenTelemetry, on SQLite.

    python3 dev.py bench db_instrumentation [--rounds 41] [-n 2000]

Each variant runs the same trivial statement (``SELECT 1`` through ``Connection.execute``,
result fetched) on its own in-memory SQLite engine, so the database does as little as
possible and the instrumentation's share is as large as it can be:

* ``uninstrumented`` — a bare engine: the floor;
* ``surefoot, metrics off`` — ``instrument_engine`` with ``SUREFOOT_METRICS_ENABLED=false``;
* ``surefoot`` — ``surefoot.metrics.instrument_engine`` (duration histogram by operation,
  error counter, slow-query check; pool gauges cost nothing per query);
* ``surefoot, named statement`` — the same, the statement named through an execution option
  (compared with ``uninstrumented, named statement``: SQLAlchemy itself pays for merging a
  statement's execution options);
* ``OpenTelemetry`` — ``opentelemetry-instrumentation-sqlalchemy`` with the SDK's tracer
  provider (a span per query, no exporter: the cheapest set-up that records anything).

Variants run in interleaved rounds (A, B, C, ..., then B, C, ..., A) so machine noise hits all
alike; the table reports the median CPU µs per query and the added cost: the median over rounds
of the variant's time minus the baseline's in the same round (drift cancels, disturbed rounds
drop out), also as a share of the bare query. Finally the cost of surefoot's own code per
statement, measured around a no-op driver call without SQLAlchemy.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import sqlalchemy as sa
from _bench import fmt, table
from prometheus_client import CollectorRegistry

STATEMENT = sa.text("SELECT 1")
NAMED = sa.text("SELECT 1").execution_options(statement_name="ping")


def _runner(engine: sa.Engine, statement: Any) -> Callable[[int], None]:
    conn = engine.connect()

    def run(n: int) -> None:
        execute = conn.execute
        for _ in range(n):
            execute(statement).scalar()

    run(500)  # warm the compiled cache and the label children
    return run


def _bare(statement: Any = STATEMENT) -> Callable[[int], None]:
    return _runner(sa.create_engine("sqlite://"), statement)


def _surefoot(statement: Any = STATEMENT, *, enabled: bool = True) -> Callable[[int], None]:
    import surefoot
    from surefoot.metrics import instrument_engine

    surefoot.configure(metrics_enabled=enabled)
    engine = sa.create_engine("sqlite://")
    instrument_engine(engine, registry=CollectorRegistry(), name="bench")
    surefoot.configure(metrics_enabled=True)
    return _runner(engine, statement)


def _otel() -> Callable[[int], None] | None:
    try:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        print("opentelemetry-instrumentation-sqlalchemy is not installed (the bench extra): skipped")
        return None
    engine = sa.create_engine("sqlite://")
    # skip_dep_check: the instrumentor's declared range stops below the installed SQLAlchemy
    # 2.1, yet its event hooks work on it; without the flag it silently instruments nothing.
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=TracerProvider(), skip_dep_check=True)
    return _runner(engine, STATEMENT)


def _wrapper_ns(n: int = 200_000) -> float:
    """Nanoseconds surefoot adds around one driver call, measured on its own (no SQLAlchemy)."""
    from surefoot.metrics._db import EngineInstrumentation

    engine = sa.create_engine("sqlite://")
    inst = EngineInstrumentation(
        engine, pool="bench", registry=CollectorRegistry(), statement_name="statement_name",
        slow_query_seconds=0.5, max_label_values=1000, max_connections=None, enabled=True,
    )

    class Context:
        execution_options: dict[str, Any] = {}

    def driver(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        return None

    wrapped = inst._timed(driver, 3)
    context, statement = Context(), "SELECT 1"
    timings = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            driver(None, statement, (), context)
        bare = time.process_time() - start
        start = time.process_time()
        for _ in range(n):
            wrapped(None, statement, (), context)
        timings.append((time.process_time() - start - bare) * 1e9 / n)
    inst.remove()
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("-n", type=int, default=2000, help="queries per variant per round")
    args = parser.parse_args()

    variants: dict[str, Callable[[int], None]] = {
        "uninstrumented": _bare(),
        "surefoot, metrics off": _surefoot(enabled=False),
        "surefoot": _surefoot(),
        "uninstrumented, named statement": _bare(NAMED),
        "surefoot, named statement": _surefoot(NAMED),
    }
    otel = _otel()
    if otel is not None:
        variants["OpenTelemetry"] = otel
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(args.rounds):
        # rotate the order so no variant always runs right after another
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            gc.collect()
            start = time.process_time()
            variants[name](args.n)
            samples[name].append((time.process_time() - start) * 1e6 / args.n)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    rows = []
    for name in variants:
        # a statement carrying execution options costs SQLAlchemy more to run: compare like with like
        base = "uninstrumented, named statement" if "named" in name else "uninstrumented"
        # the added cost of each round against the baseline of the same round: slow drift on a
        # shared machine cancels out, and the median drops the rounds another process disturbed
        paired = [v - b for v, b in zip(samples[name], samples[base], strict=True)]
        added = statistics.median(paired)
        rows.append([name, fmt(medians[name], 2), fmt(added, 2), f"{100.0 * added / medians[base]:+.1f} %"])
    print(f"\nSQLite in-memory, `SELECT 1`, {args.n} queries x {args.rounds} interleaved rounds "
          f"(CPU µs per query; added = median over rounds of variant − baseline of the same round)\n")
    print(table(["variant", "median µs/query", "added µs", "added / bare query"], rows))
    print(f"\nsurefoot's own code per query, around a no-op driver call: {fmt(_wrapper_ns(), 0)} ns")


if __name__ == "__main__":
    main()
