"""Outbox throughput and latency: surefoot vs procrastinate vs a raw SQL floor.

Run (local PostgreSQL and SQLite, one run, ratios first)::

    python benchmarks/outbox_throughput.py
    python benchmarks/outbox_throughput.py --events 20000 --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Measures, on PostgreSQL and on SQLite:

* events/s written with ``outbox.add()``: one event per transaction, and 100 per transaction;
  beside them a plain INSERT of the same row (SQLAlchemy ``text()`` on the same connection, and
  the bare driver);
* events/s dispatched to a no-op async handler from a pre-filled table (batch 100,
  concurrency 2), beside a raw ``LIMIT 100 ... FOR UPDATE SKIP LOCKED`` claim loop (the floor)
  and, on PostgreSQL, procrastinate's worker (concurrency 10) draining the same number of jobs;
* commit → handler latency P50/P95/P99 at a steady offered load of 200 events/s (PostgreSQL:
  LISTEN/NOTIFY; SQLite: the ``PRAGMA data_version`` watch), beside procrastinate's
  defer → task start. Polling is set to 1 s, so it plays no part.

A scratch PostgreSQL database is created and dropped; the SQLite file lives in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sqlalchemy as sa  # noqa: E402

from surefoot import outbox  # noqa: E402
from surefoot.outbox import Dispatcher, OutboxSettings  # noqa: E402

NO_RETENTION = OutboxSettings(retention_interval_seconds=0)

# The plain baseline writes the same envelope a hand-written outbox would (same columns as
# outbox_events minus the dispatcher's bookkeeping), so add() is compared like for like.
PLAIN_DDL = {
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS plain_events (id BIGSERIAL PRIMARY KEY, event_id VARCHAR(36) UNIQUE, "
        "event_name VARCHAR(255), schema_version INT, key VARCHAR(255), tenant_id VARCHAR(128), "
        "correlation_id VARCHAR(128), causation_id VARCHAR(128), payload JSONB, headers JSONB, "
        "occurred_at TIMESTAMPTZ, created_at TIMESTAMPTZ DEFAULT now(), done BOOLEAN NOT NULL DEFAULT false)"
    ),
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS plain_events (id INTEGER PRIMARY KEY, event_id VARCHAR(36) UNIQUE, "
        "event_name VARCHAR(255), schema_version INT, key VARCHAR(255), tenant_id VARCHAR(128), "
        "correlation_id VARCHAR(128), causation_id VARCHAR(128), payload JSON, headers JSON, "
        "occurred_at TIMESTAMP, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, done BOOLEAN NOT NULL DEFAULT 0)"
    ),
}
PAYLOAD = {"call_sid": "CA0123456789abcdef", "from": "+15550001111", "to": "+15550002222", "status": "no-answer"}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def reset(engine: sa.Engine) -> None:
    outbox.create_tables(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(PLAIN_DDL[engine.dialect.name])
        # the floor gets the index any claim loop needs: pending rows only
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_plain_pending ON plain_events (id) WHERE NOT done")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("TRUNCATE outbox_events, outbox_dead_letters, plain_events RESTART IDENTITY")
        else:
            for t in ("outbox_events", "outbox_dead_letters", "plain_events"):
                conn.exec_driver_sql(f"DELETE FROM {t}")
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE outbox_events")
            conn.exec_driver_sql("VACUUM ANALYZE plain_events")


PLAIN_COLS = ("event_id", "event_name", "schema_version", "key", "tenant_id", "correlation_id",
              "causation_id", "payload", "headers", "occurred_at")
PLAIN_INSERT = sa.text(
    f"INSERT INTO plain_events ({', '.join(PLAIN_COLS)}) VALUES ({', '.join(':' + c for c in PLAIN_COLS)})"
)


def plain_row(i: int) -> dict[str, Any]:
    """What a hand-written outbox insert computes per event: id, JSON, timestamp."""
    import datetime as dt

    import orjson

    return {"event_id": str(uuid.uuid4()), "event_name": "CallDetected", "schema_version": 1,
            "key": f"k{i % 50}", "tenant_id": None, "correlation_id": None, "causation_id": None,
            "payload": orjson.dumps(PAYLOAD).decode(), "headers": None,
            "occurred_at": dt.datetime.now(dt.UTC)}


def bench_writes(engine: sa.Engine, n: int, *, blocks: int = 10) -> dict[str, float]:
    """add() vs a plain INSERT of the same row, in alternating blocks so that load changes on
    a shared machine hit both alike; returns events/s for each way of writing."""
    import orjson

    reset(engine)
    per_tx = 100
    block = max(per_tx, n // blocks)
    spent = {k: 0.0 for k in ("add_1_per_tx", "plain_1_per_tx", "add_100_per_tx", "plain_100_per_tx", "raw_100_per_tx")}
    counter = [0]

    def one_per_tx(use_add: bool) -> float:
        t = time.perf_counter()
        for _ in range(block // 10):  # commits are slow: a tenth as many
            i = counter[0] = counter[0] + 1
            with engine.begin() as conn:
                if use_add:
                    outbox.add(conn, "CallDetected", PAYLOAD, key=f"k{i % 50}")
                else:
                    conn.execute(PLAIN_INSERT, plain_row(i))
        return time.perf_counter() - t

    def many_per_tx(use_add: bool) -> float:
        t = time.perf_counter()
        for _ in range(block // per_tx):
            with engine.begin() as conn:
                for _ in range(per_tx):
                    i = counter[0] = counter[0] + 1
                    if use_add:
                        outbox.add(conn, "CallDetected", PAYLOAD, key=f"k{i % 50}")
                    else:
                        conn.execute(PLAIN_INSERT, plain_row(i))
        return time.perf_counter() - t

    raw = engine.raw_connection()
    ph = "%s" if engine.dialect.name == "postgresql" else "?"
    raw_sql = f"INSERT INTO plain_events ({', '.join(PLAIN_COLS)}) VALUES ({', '.join([ph] * len(PLAIN_COLS))})"

    def driver() -> float:
        cur = raw.cursor()
        t = time.perf_counter()
        for _ in range(block // per_tx):
            for _ in range(per_tx):
                i = counter[0] = counter[0] + 1
                row = plain_row(i)
                if engine.dialect.name == "sqlite":
                    row["occurred_at"] = row["occurred_at"].strftime("%Y-%m-%d %H:%M:%S.%f")
                cur.execute(raw_sql, tuple(row[c] for c in PLAIN_COLS))
            raw.commit()
        return time.perf_counter() - t

    try:
        for b in range(blocks):
            first, second = (True, False) if b % 2 == 0 else (False, True)
            for use_add in (first, second):
                spent["add_1_per_tx" if use_add else "plain_1_per_tx"] += one_per_tx(use_add)
                spent["add_100_per_tx" if use_add else "plain_100_per_tx"] += many_per_tx(use_add)
            spent["raw_100_per_tx"] += driver()
    finally:
        raw.close()
    del orjson
    out = {}
    for key, seconds in spent.items():
        count = blocks * ((block // 10) if "1_per" in key else (block // per_tx) * per_tx)
        out[key] = count / seconds
    return out


def prefill(engine: sa.Engine, n: int, *, keys: int | None = None) -> None:
    reset(engine)
    rows = []
    for i in range(n):
        rows.append(i)
    with engine.begin() as conn:
        for i in range(n):
            outbox.add(conn, "CallDetected", PAYLOAD, key=(f"k{i % keys}" if keys else None))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE outbox_events")


def bench_dispatch(url: str, engine: sa.Engine, n: int, *, keys: int | None = None) -> float:
    prefill(engine, n, keys=keys)
    done = asyncio.Event()
    count = 0

    async def noop(event: outbox.Event) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    async def main() -> float:
        import prometheus_client

        d = Dispatcher(url, handlers={"CallDetected": noop}, listen=False, poll_interval=0.01,
                       registry=prometheus_client.CollectorRegistry(), settings=NO_RETENTION)
        t = time.perf_counter()
        await d.start()
        await done.wait()
        # every event delivered; wait for the last acks too
        while d.delivered < n:
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - t
        await d.stop()
        return n / elapsed

    return asyncio.run(main())


def bench_raw_claim(engine: sa.Engine, n: int) -> float:
    import orjson

    reset(engine)
    pg = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        ph = "%s" if pg else "?"
        cur.executemany(
            f"INSERT INTO plain_events (event_id, event_name, key, payload) VALUES ({ph}, {ph}, {ph}, {ph})",
            [(str(uuid.uuid4()), "CallDetected", None, orjson.dumps(PAYLOAD).decode()) for _ in range(n)],
        )
        raw.commit()
        if pg:
            sql = ("WITH c AS (SELECT id FROM plain_events WHERE NOT done ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED) "
                   "UPDATE plain_events p SET done = true FROM c WHERE p.id = c.id RETURNING p.id, p.event_id, p.payload")
        else:
            sql = ("UPDATE plain_events SET done = 1 WHERE id IN (SELECT id FROM plain_events WHERE NOT done "
                   "ORDER BY id LIMIT 100) RETURNING id, event_id, payload")
        got = 0
        t = time.perf_counter()
        while True:
            cur.execute(sql)
            rows = cur.fetchall()
            raw.commit()
            if not rows:
                break
            got += len(rows)
        return got / (time.perf_counter() - t)
    finally:
        raw.close()


def bench_latency(url: str, engine: sa.Engine, *, rate: float, seconds: float, poll: float) -> list[float]:
    """Commit → handler start at a steady offered load. The writer is an async task on the
    dispatcher's event loop (as procrastinate's deferrer is below), writing one event per
    transaction with ``await outbox.add(conn, ...)``."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from surefoot.outbox._urls import async_url

    reset(engine)
    committed: dict[str, float] = {}
    started: dict[str, float] = {}
    total = int(rate * seconds)

    async def handler(event: outbox.Event) -> None:
        started[event.event_id] = time.perf_counter()

    async def writer() -> None:
        aengine = create_async_engine(async_url(url))
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for _ in range(total):
            next_at += interval
            async with aengine.begin() as conn:
                ev = await outbox.add(conn, "CallDetected", PAYLOAD)
            committed[ev.event_id] = time.perf_counter()
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await aengine.dispose()

    async def main() -> None:
        import prometheus_client

        d = Dispatcher(url, handlers={"CallDetected": handler}, poll_interval=poll,
                       registry=prometheus_client.CollectorRegistry(), settings=NO_RETENTION)
        async with d.running():
            await asyncio.sleep(0.5)
            await writer()
            deadline = time.perf_counter() + 30
            while len(started) < total and time.perf_counter() < deadline:
                await asyncio.sleep(0.01)

    asyncio.run(main())
    return [(started[k] - committed[k]) * 1000 for k in committed if k in started]


# -- procrastinate ------------------------------------------------------------------------


_SCHEMA_APPLIED: set[str] = set()


def bench_procrastinate(conninfo: str, n: int, *, rate: float, seconds: float, latency: bool = True) -> dict[str, Any]:
    import procrastinate

    out: dict[str, Any] = {}
    # a pool as large as the worker's concurrency (+ the deferrer), so nothing queues for a connection
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo, min_size=12, max_size=12))
    state = {"count": 0, "target": n}
    done = asyncio.Event()
    starts: dict[int, float] = {}

    @app.task(name="noop")
    async def noop(i: int) -> None:
        starts[i] = time.perf_counter()
        state["count"] += 1
        if state["count"] >= state["target"]:
            done.set()

    async def main() -> None:
        async with app.open_async():
            if conninfo not in _SCHEMA_APPLIED:  # once per scratch database
                await app.schema_manager.apply_schema_async()
                _SCHEMA_APPLIED.add(conninfo)
            # defer rate, one job per transaction (procrastinate's defer is its own transaction)
            t = time.perf_counter()
            for i in range(n):
                await noop.defer_async(i=i)
            out["defer_per_s"] = n / (time.perf_counter() - t)
            t = time.perf_counter()
            await app.run_worker_async(concurrency=10, wait=False, install_signal_handlers=False,
                                       listen_notify=False, fetch_job_polling_interval=0.01)
            out["drain_per_s"] = state["count"] / (time.perf_counter() - t)
            if not latency:
                return
            # latency at a steady offered load, worker listening
            starts.clear()
            state["count"] = 0
            total = int(rate * seconds)
            state["target"] = total
            done.clear()
            deferred: dict[int, float] = {}
            worker = asyncio.create_task(app.run_worker_async(concurrency=10, wait=True, install_signal_handlers=False,
                                                              listen_notify=True))
            await asyncio.sleep(0.5)
            interval = 1.0 / rate
            next_at = time.perf_counter()
            for i in range(total):
                next_at += interval
                await noop.defer_async(i=1_000_000 + i)
                deferred[1_000_000 + i] = time.perf_counter()
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await asyncio.wait_for(done.wait(), 30)
            worker.cancel()
            try:
                await worker
            except (asyncio.CancelledError, Exception):
                pass
            out["latency_ms"] = [(starts[k] - deferred[k]) * 1000 for k in deferred if k in starts]
            # leave the queue empty for the next round
            await app.job_manager.delete_old_jobs(nb_hours=0, include_failed=True)

    asyncio.run(main())
    return out


def create_scratch_db(admin_url: str, name: str) -> str:
    eng = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    eng.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_scratch_db(admin_url: str, name: str) -> None:
    eng = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    eng.dispose()


def fmt(v: float) -> str:
    return f"{v:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("SUREFOOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--events", type=int, default=10_000, help="events per throughput measurement")
    parser.add_argument("--writes", type=int, default=3_000, help="events per write measurement")
    parser.add_argument("--rate", type=float, default=200.0, help="offered load for the latency runs (events/s)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each latency run")
    parser.add_argument("--only", choices=["postgresql", "sqlite"], default=None)
    parser.add_argument("--no-procrastinate", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per throughput measurement (best kept)")
    parser.add_argument("--procrastinate-jobs", type=int, default=3_000, help="jobs per procrastinate drain")
    args = parser.parse_args()

    import logging

    logging.disable(logging.WARNING)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    results: dict[str, dict[str, Any]] = {}
    scratch = f"surefoot_bench_{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="surefoot-bench-")
    targets = []
    if args.only in (None, "postgresql"):
        targets.append(("postgresql", create_scratch_db(args.pg_url, scratch)))
    if args.only in (None, "sqlite"):
        targets.append(("sqlite", f"sqlite:///{tmp}/bench.sqlite3"))
    try:
        for name, url in targets:
            engine = sa.create_engine(url)
            r: dict[str, Any] = {}

            def best(key: str, value: float, r: dict[str, Any] = r) -> None:
                r[key] = max(r.get(key, 0.0), value)

            # the machine is shared: repeat and interleave, keep the best of each
            for rep in range(args.repeat):
                print(f"[{name}] round {rep + 1}/{args.repeat}: writes, dispatch, claim floor ...", file=sys.stderr)
                for key, value in bench_writes(engine, args.writes).items():
                    best(key, value)
                best("dispatch", bench_dispatch(url, engine, args.events))
                best("raw_claim", bench_raw_claim(engine, args.events))
                best("dispatch_keyed", bench_dispatch(url, engine, args.events, keys=1000))
                if name == "postgresql" and not args.no_procrastinate:
                    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
                    pr = bench_procrastinate(conninfo, args.procrastinate_jobs, rate=args.rate,
                                             seconds=args.seconds, latency=(rep == 0))
                    prev = r.get("procrastinate")
                    if prev is None:
                        r["procrastinate"] = pr
                    else:
                        prev["defer_per_s"] = max(prev["defer_per_s"], pr["defer_per_s"])
                        prev["drain_per_s"] = max(prev["drain_per_s"], pr["drain_per_s"])
            print(f"[{name}] latency at {args.rate:g}/s ...", file=sys.stderr)
            r["latency"] = bench_latency(url, engine, rate=args.rate, seconds=args.seconds,
                                         poll=1.0)
            engine.dispose()
            results[name] = r
    finally:
        if any(n == "postgresql" for n, _ in targets):
            drop_scratch_db(args.pg_url, scratch)

    report(results, args)


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\n# outbox throughput — {args.events} events per dispatch run, {args.writes} per write run, "
          f"best of {args.repeat} interleaved rounds; latency at {args.rate:g} events/s for {args.seconds:g} s\n")
    for name, r in results.items():
        lat = r["latency"]
        print(f"## {name}\n")
        print("ratios (targets):")
        pr = r.get("procrastinate")
        if pr:
            print(f"  dispatch / procrastinate worker        {r['dispatch'] / pr['drain_per_s']:6.1f}x   (>= 10x)")
        print(f"  dispatch / raw SKIP LOCKED claim floor {r['dispatch'] / r['raw_claim'] * 100:6.1f}%   (>= 25 %)")
        if pr:
            p95, pp95 = pct(lat, 0.95), pct(pr["latency_ms"], 0.95)
            print(f"  commit->handler P95 / procrastinate    {p95 / pp95:6.2f}x   (<= 1.0)")
        print(f"  add() / plain INSERT, open transaction {r['plain_100_per_tx'] / r['add_100_per_tx']:6.2f}x   (<= 1.2; SQLAlchemy text() insert)")
        print(f"  add() / bare driver INSERT             {r['raw_100_per_tx'] / r['add_100_per_tx']:6.2f}x")
        print()
        print("| measurement | surefoot | plain / raw SQL | procrastinate |")
        print("|---|---:|---:|---:|")
        print(f"| write, 1 event per transaction (events/s) | {fmt(r['add_1_per_tx'])} | {fmt(r['plain_1_per_tx'])} | {fmt(pr['defer_per_s']) if pr else '–'} |")
        print(f"| write, 100 per transaction (events/s) | {fmt(r['add_100_per_tx'])} | {fmt(r['plain_100_per_tx'])} (driver {fmt(r['raw_100_per_tx'])}) | – |")
        print(f"| dispatch to no-op handler (events/s) | {fmt(r['dispatch'])} | {fmt(r['raw_claim'])} (claim floor) | {fmt(pr['drain_per_s']) if pr else '–'} |")
        print(f"| dispatch, 1000 ordering keys (events/s) | {fmt(r['dispatch_keyed'])} | – | – |")
        plat = pr["latency_ms"] if pr else []
        for q in (0.5, 0.95, 0.99):
            print(f"| commit → handler P{int(q * 100)} (ms) | {pct(lat, q):.2f} | – | {pct(plat, q):.2f} |" if pr else
                  f"| commit → handler P{int(q * 100)} (ms) | {pct(lat, q):.2f} | – | – |")
        print(f"| latency samples | {len(lat)} | – | {len(plat) if pr else '–'} |")
        print()


if __name__ == "__main__":
    main()
