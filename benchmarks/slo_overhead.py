"""Per-event cost of recording an SLO, against prometheus_client and an autometrics-style decorator.

    python3 dev.py bench slo_overhead            # about half a minute
    python3 dev.py bench slo_overhead --quick

Cases, each a tight loop over pre-computed durations (half above the threshold), median CPU
ns per event over interleaved rounds:

* ``prometheus_client Histogram.observe``: the yardstick (a labelled child, 15 buckets);
* ``surefoot Latency.observe``: one good/bad decision and one counter increment;
* ``autometrics-style decorator``: what autometrics does per call (two clock reads, a
  ``function_calls_total{function,module,result}`` counter and a duration histogram) around a
  trivial function, minus the bare call;
* ``surefoot EventPair start+finish, in memory``: the counting a pair costs in the process
  that counts it (good/bad counter and the duration histogram); the start and finish
  themselves are database writes in the caller's transaction, measured separately:
* ``EventPair start+finish on SQLite``: ``start`` + ``finish`` in one transaction on an
  in-memory database, against the same INSERT + UPDATE written by hand with SQLAlchemy Core.

Targets: Latency.observe ≤ 1× Histogram.observe; pair start+finish (in memory) ≤ 3×.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from _bench import fmt, median_rounds, table
from prometheus_client import CollectorRegistry, Counter, Histogram

from surefoot import slo

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def autometrics_style(registry: CollectorRegistry) -> Any:
    """The per-call work of autometrics' Prometheus tracker, written out."""
    calls = Counter("function_calls", "calls", ["function", "module", "result", "caller"], registry=registry)
    duration = Histogram("function_calls_duration", "seconds", ["function", "module"], registry=registry)

    def decorator(fn: Any) -> Any:
        ok = calls.labels(fn.__name__, fn.__module__, "ok", "")
        error = calls.labels(fn.__name__, fn.__module__, "error", "")
        hist = duration.labels(fn.__name__, fn.__module__)
        perf = time.perf_counter

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = perf()
            try:
                result = fn(*args, **kwargs)
            except Exception:
                error.inc()
                hist.observe(perf() - start)
                raise
            ok.inc()
            hist.observe(perf() - start)
            return result

        return wrapper

    return decorator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, n = (5, 20_000) if args.quick else (9, 50_000)
    registry = CollectorRegistry()
    durations = [0.1, 0.9] * (n // 2)

    hist = Histogram("bench_seconds", "d", ["route"], buckets=BUCKETS, registry=registry).labels("/bookings")
    booking = slo.Latency("booking_post", target=0.95, threshold=0.5)
    pair = slo.EventPair("first_sms", target=0.95, deadline=5.0)
    slo.Tracker([booking, pair], registry=registry)  # binds both to the registry, as install() does

    def trivial() -> int:
        return 1

    decorated = autometrics_style(registry)(trivial)

    def run_hist(k: int) -> None:
        observe = hist.observe
        for seconds in itertools.islice(durations, k):
            observe(seconds)

    def run_latency(k: int) -> None:
        observe = booking.observe
        for seconds in itertools.islice(durations, k):
            observe(seconds)

    def run_bare(k: int) -> None:
        for _ in itertools.repeat(None, k):
            trivial()

    def run_auto(k: int) -> None:
        for _ in itertools.repeat(None, k):
            decorated()

    def run_pair(k: int) -> None:
        record = pair.record
        for seconds in itertools.islice(durations, k):
            record(seconds * 5, seconds < 0.5)

    results = median_rounds(
        {"hist": run_hist, "latency": run_latency, "bare": run_bare, "auto": run_auto, "pair": run_pair},
        rounds=rounds, n=n,
    )
    ns = {k: v * 1000 for k, v in results.items()}
    auto = ns["auto"] - ns["bare"]
    base = ns["hist"]

    engine = sa.create_engine("sqlite://")
    slo.migrate(engine)
    t = sa.table("surefoot_slo_pairs", sa.column("slo"), sa.column("key"), sa.column("started_at"),
                 sa.column("deadline_at"), sa.column("finished_at"), sa.column("outcome"))
    counter = itertools.count()
    db_n = max(500, n // 20)

    def run_db_surefoot(k: int) -> None:
        with engine.begin() as conn:
            for _ in range(k):
                key = f"s{next(counter)}"
                pair.start(conn, key)
                pair.finish(conn, key)

    def run_db_core(k: int) -> None:
        with engine.begin() as conn:
            for _ in range(k):
                key = f"c{next(counter)}"
                now = time.time()
                conn.execute(sa.insert(t).values(slo="first_sms", key=key, started_at=now, deadline_at=now + 5))
                conn.execute(sa.update(t).where(t.c.slo == "first_sms", t.c.key == key, t.c.outcome.is_(None))
                             .values(finished_at=time.time(), outcome="good"))

    db = median_rounds({"surefoot": run_db_surefoot, "core": run_db_core}, rounds=max(3, rounds // 2), n=db_n)

    print(f"slo_overhead — Python {platform.python_version()}, {platform.machine()}, "
          f"{rounds} rounds × {n:,} events (machine shared with other jobs: ratios matter, not ns)")
    print(table(
        ["case", "ns/event", "× Histogram.observe", "target"],
        [
            ["prometheus_client Histogram.observe", fmt(base), "1.00", "—"],
            ["surefoot Latency.observe", fmt(ns["latency"]), f"{ns['latency'] / base:.2f}", "≤ 1.00"],
            ["autometrics-style decorator (minus bare call)", fmt(auto), f"{auto / base:.2f}", "—"],
            ["surefoot EventPair start+finish, in memory", fmt(ns["pair"]), f"{ns['pair'] / base:.2f}", "≤ 3.00"],
        ],
    ))
    print()
    print(table(
        ["database writes (SQLite in memory, one transaction)", "µs/pair", "× hand-written Core"],
        [
            ["surefoot EventPair.start + finish", fmt(db["surefoot"], 2), f"{db['surefoot'] / db['core']:.2f}"],
            ["SQLAlchemy Core INSERT + UPDATE", fmt(db["core"], 2), "1.00"],
        ],
    ))


if __name__ == "__main__":
    main()
