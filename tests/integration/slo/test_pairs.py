"""Event pairs across processes on SQLite and PostgreSQL: first finish only, expiry exactly once,
crash of either process, shared windows."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from surefoot import slo
from surefoot.testing import FakeClock, expect_slo

WORKER = Path(__file__).with_name("_pair_worker.py")


def _run(subprocess_env, action, url, *keys, **env):
    proc = subprocess.run(
        [sys.executable, str(WORKER), action, url, *keys], env={**subprocess_env, **env},
        capture_output=True, text=True, timeout=60,
    )
    return proc


@pytest.fixture
def engine(db_url):
    from surefoot.slo._schema import drop

    eng = sa.create_engine(db_url)
    drop(eng)  # PostgreSQL: one database per session; every test starts from empty tables
    slo.migrate(eng)
    yield eng
    eng.dispose()


def test_start_in_one_process_finish_in_another_first_finish_only(engine, db_url, subprocess_env, registry):
    started = _run(subprocess_env, "start", db_url, "CA1", "CA2", "CA3", "CA1")
    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == ["CA1=True", "CA2=True", "CA3=True", "CA1=False"]
    finished = _run(subprocess_env, "finish", db_url, "CA1", "CA2", "CA1", "NEVER")
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["CA1=True", "CA2=True", "CA1=False", "NEVER=False"]
    # The worker's sweeper counts them (CA3 is still pending within its deadline).
    first_sms = slo.EventPair("first_sms", target=0.95, deadline=5.0)
    first_sms.bind(registry)
    result = slo.Sweeper(engine, [first_sms]).sweep()
    assert result.counted == {("first_sms", "good"): 2} and result.expired == 0
    assert slo.Sweeper(engine, [first_sms]).sweep().counted == {}
    expect_slo(first_sms, good=2, bad=0)


def test_crash_before_commit_records_nothing_and_after_commit_survives(engine, db_url, subprocess_env):
    crashed = _run(subprocess_env, "start", db_url, "LOST", CRASH_BEFORE_COMMIT="1")
    assert crashed.returncode == 3
    kept = _run(subprocess_env, "start", db_url, "KEPT", CRASH_AFTER_COMMIT="1")
    assert kept.returncode == 4
    with engine.connect() as conn:
        keys = set(conn.execute(sa.text("SELECT key FROM surefoot_slo_pairs")).scalars())
    assert keys == {"KEPT"}
    # A worker that crashes between finish and commit leaves the pair pending...
    assert _run(subprocess_env, "finish", db_url, "KEPT", CRASH_BEFORE_COMMIT="1").returncode == 3
    # ... and the restarted worker finishes it once.
    assert _run(subprocess_env, "finish", db_url, "KEPT").stdout.split() == ["KEPT=True"]


def test_overdue_pairs_become_bad_exactly_once_with_concurrent_sweepers(engine, db_url, subprocess_env, registry):
    clock = FakeClock(start=1_000.0)
    pair = slo.EventPair("first_sms", target=0.95, deadline=5.0, clock=clock)
    pair.bind(registry)
    with engine.begin() as conn:
        for i in range(40):
            pair.start(conn, f"call-{i}")
    clock.advance(2)
    with engine.begin() as conn:
        for i in range(10):
            assert pair.finish(conn, f"call-{i}")
    # Real time is far past the fake deadline: sweepers in other processes expire the rest.
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), "sweep", db_url], env=subprocess_env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    local = []
    sweeper = slo.Sweeper(engine, [pair])
    thread = threading.Thread(target=lambda: local.append(sweeper.sweep()))
    thread.start()
    outputs = [p.communicate(timeout=60) for p in procs]
    thread.join(60)
    assert all(p.returncode == 0 for p in procs), [e for _, e in outputs]
    bad_elsewhere = sum(int(out.strip().splitlines()[-1]) for out, _ in outputs)
    bad_here = local[0].counted.get(("first_sms", "bad"), 0)
    assert bad_elsewhere + bad_here == 30
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT series, sum(value) FROM surefoot_slo_counts WHERE series IN ('good', 'bad') "
            "GROUP BY series ORDER BY series")).all()
    # Each pair counted once in the shared per-minute counts (the real-time sweepers also purged
    # the counted rows: their clock is far past the fake one plus the retention).
    assert [tuple(r) for r in rows] == [("bad", 30), ("good", 10)]
    # A late finish of an expired pair changes nothing.
    with engine.begin() as conn:
        assert not pair.finish(conn, "call-39")


def test_finish_rolled_back_is_not_counted(engine, registry):
    clock = FakeClock(start=5_000.0)
    pair = slo.EventPair("first_sms", target=0.95, deadline=5.0, clock=clock)
    pair.bind(registry)
    with engine.begin() as conn:
        pair.start(conn, "k")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert pair.finish(conn, "k")
        raise RuntimeError("the SMS send failed")
    assert slo.Sweeper(engine, [pair], clock=clock).sweep().counted == {}
    with engine.begin() as conn:
        assert pair.finish(conn, "k")
    assert slo.Sweeper(engine, [pair], clock=clock).sweep().counted == {("first_sms", "good"): 1}


async def test_async_twins(db_url, registry, tmp_path):
    from sqlalchemy.ext.asyncio import create_async_engine

    from surefoot.outbox._urls import async_url
    from surefoot.slo._schema import drop

    drop(sa.create_engine(db_url))
    engine = create_async_engine(async_url(db_url))
    try:
        await slo.amigrate(engine)
        clock = FakeClock(start=9_000.0)
        pair = slo.EventPair("first_sms_async", target=0.9, deadline=5.0, clock=clock)
        pair.bind(registry)
        async with engine.begin() as conn:
            assert await pair.astart(conn, "a")
            assert await pair.astart(conn, "b")
        clock.advance(1)
        async with engine.begin() as conn:
            assert await pair.afinish(conn, "a")
            assert not await pair.afinish(conn, "a")
        clock.advance(10)
        tracker = slo.Tracker([pair], engine=engine, clock=clock, registry=registry)
        result = await slo.Sweeper(engine, [pair], clock=clock).asweep()
        assert result.expired == 1
        report = await tracker.atick()
        assert report["objectives"][0]["windows"]["5m"] == {
            "good": 1, "bad": 1, "total": 2, "sli": 0.5, "burn_rate": 5.0}
    finally:
        await engine.dispose()


def test_shared_counts_across_processes(engine, registry):
    """Two trackers on one database (two worker processes) both see every event."""
    from prometheus_client import CollectorRegistry

    clock = FakeClock(start=1_700_000_000.0)
    web1 = slo.Ratio("api", target=0.99)
    tracker1 = slo.Tracker([web1], engine=engine, clock=clock, registry=registry)
    other_registry = CollectorRegistry()
    web2 = slo.Ratio("api", target=0.99)
    tracker2 = slo.Tracker([web2], engine=engine, clock=clock, registry=other_registry)
    for _ in range(50):
        web1.good()
    for _ in range(48):
        web2.good()
    web2.bad()
    web2.bad()
    tracker1.tick()
    report = tracker2.tick()
    assert report["shared"] is True
    assert report["objectives"][0]["windows"]["1h"] == {
        "good": 98, "bad": 2, "total": 100, "sli": 0.98, "burn_rate": 2.0}
    assert tracker1.tick()["objectives"][0]["windows"]["1h"]["total"] == 100


def test_worker_loop_sweeps_and_fires_burn_hooks(sqlite_url, registry):
    engine = sa.create_engine(sqlite_url)
    slo.migrate(engine)
    clock = FakeClock(start=2_000_000_000.0)
    pair = slo.EventPair("first_sms", target=0.95, deadline=5.0, clock=clock)
    tracker = slo.Tracker([pair], engine=engine, clock=clock, registry=registry)
    fired = []
    tracker.on_burn(fired.append, tier="page")
    with engine.begin() as conn:
        for i in range(5):
            pair.start(conn, f"never-{i}")
    stop = threading.Event()
    sweeper = slo.Sweeper(engine, [pair], interval=1.0, tracker=tracker)
    original_sleep = clock.sleep

    def sleep_then_stop(seconds):
        original_sleep(seconds)
        if clock.time() > 2_000_000_010.0:
            stop.set()

    clock.sleep = sleep_then_stop  # the loop sleeps on the injected clock
    sweeper.run(stop=stop)
    assert [(e.objective, e.firing) for e in fired] == [("first_sms", True)]
    report = tracker.report()
    assert report["objectives"][0]["windows"]["5m"]["bad"] == 5
    assert report["objectives"][0]["p95_seconds"] is not None and report["objectives"][0]["p95_seconds"] > 5.0


async def test_sync_call_on_an_async_session_says_what_to_use(sqlite_url, registry):
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from surefoot.outbox._urls import async_url

    engine = create_async_engine(async_url(sqlite_url))
    try:
        await slo.amigrate(engine)
        pair = slo.EventPair("first_sms", target=0.95, deadline=5.0)
        async with AsyncSession(engine) as session, session.begin():
            with pytest.raises(Exception, match="astart"):
                pair.start(session, "k")
            assert await pair.astart(session, "k")
            assert await pair.afinish(session, "k")
    finally:
        await engine.dispose()


async def test_async_twins_accept_a_sync_connection(sqlite_url, registry):
    """An async handler may hold a sync Connection (the webhook inbox on a sync engine)."""
    engine = sa.create_engine(sqlite_url)
    slo.migrate(engine)
    pair = slo.EventPair("first_sms", target=0.95, deadline=5.0)
    with engine.begin() as conn:
        assert await pair.astart(conn, "k")
        assert await pair.afinish(conn, "k")
        assert not await pair.afinish(conn, "k")


def test_slo_counts_pairs_the_sweeper_has_not_counted_yet(engine, registry):
    """/slo is exact at read time: finished and overdue pairs count before any sweep, once."""
    clock = FakeClock(start=1_800_000_000.0)
    pair = slo.EventPair("first_sms", target=0.95, deadline=5.0, clock=clock)
    tracker = slo.Tracker([pair], engine=engine, clock=clock, registry=registry)
    with engine.begin() as conn:
        for i in range(4):
            pair.start(conn, f"k{i}")
    clock.advance(1)
    with engine.begin() as conn:
        pair.finish(conn, "k0")
        pair.finish(conn, "k1")
    window = tracker.tick()["objectives"][0]["windows"]["5m"]
    assert (window["good"], window["bad"]) == (2, 0)  # k2, k3 still within their deadline
    clock.advance(10)
    window = tracker.tick()["objectives"][0]["windows"]["5m"]
    assert (window["good"], window["bad"]) == (2, 2)  # overdue: bad before the sweeper ran
    slo.Sweeper(engine, [pair], clock=clock).sweep()
    window = tracker.tick()["objectives"][0]["windows"]["5m"]
    assert (window["good"], window["bad"]) == (2, 2)  # and not twice after it ran


async def test_async_hooks_with_a_sync_engine(engine, registry):
    clock = FakeClock(start=1_900_000_000.0)
    avail = slo.Ratio("api", target=0.99)
    tracker = slo.Tracker([avail], engine=engine, clock=clock, registry=registry)
    seen = []

    async def hook(event):
        seen.append((event.tier, event.firing))

    tracker.on_burn(hook, tier="page")
    for _ in range(5):
        avail.bad()
    await tracker.atick()
    assert seen == [("page", True)]


@pytest.mark.parametrize("key", [None, "", "x" * 256, True])
def test_a_key_that_names_no_event_is_refused(sqlite_url, registry, key):
    from surefoot.errors import ConfigurationError

    engine = sa.create_engine(sqlite_url)
    slo.migrate(engine)
    pair = slo.EventPair("keyed", target=0.9, deadline=5.0)
    with engine.begin() as conn, pytest.raises(ConfigurationError, match="pair key"):
        pair.start(conn, key)
    with engine.begin() as conn:
        assert conn.execute(sa.text("select count(*) from surefoot_slo_pairs")).scalar() == 0
        assert pair.start(conn, "CA42") is True and pair.start(conn, 42) is True  # any identifier, as text
    engine.dispose()
