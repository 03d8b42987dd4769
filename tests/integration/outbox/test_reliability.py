"""Reliability on real databases: SIGKILLed dispatchers, competing dispatchers, rollbacks."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from surefoot import outbox
from surefoot.outbox import Dispatcher, events_table

WORKER = Path(__file__).with_name("_crash_worker.py")
CRASHES = 20
BATCH = 10
LEASE = 1.0


def _read(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            n, pid = line.split()
            out.append((int(n), int(pid)))
    return out


class _Writer(threading.Thread):
    """Writes one event per transaction until stopped; remembers what committed."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = sa.create_engine(url)
        self.stop = threading.Event()
        self.written: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                with self.engine.begin() as conn:
                    outbox.add(conn, "Crash", {"n": n})
                self.written.append(n)
                n += 1
                self.stop.wait(0.004)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_mid_batch_twenty_times_loses_nothing(outbox_url, tmp_path, subprocess_env):
    deliveries = tmp_path / "deliveries.txt"
    rng = random.Random(20)
    writer = _Writer(outbox_url)
    writer.start()
    killed: list[int] = []
    started = time.monotonic()

    launcher = subprocess.Popen(
        [sys.executable, str(WORKER), outbox_url, str(deliveries), str(BATCH), str(LEASE)],
        env=subprocess_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )

    def ask(command: str) -> int:
        launcher.stdin.write(command + "\n")
        launcher.stdin.flush()
        line = launcher.stdout.readline()
        if not line:
            pytest.fail(f"crash launcher died: {launcher.stderr.read()[-2000:]}")
        return int(line)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    try:
        for _ in range(CRASHES):
            before = len(_read(deliveries))
            pid = ask("spawn")
            deadline = time.monotonic() + 20
            # wait until this process has delivered something, then kill it at a random
            # moment, usually in the middle of a batch
            while pid not in {p for _, p in _read(deliveries)[before:]}:
                if time.monotonic() > deadline:
                    pytest.fail("dispatcher process made no progress in 20 s")
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        writer.stop.set()
        writer.join()
        assert writer.error is None, writer.error
        written = set(writer.written)
        # a last, well-behaved dispatcher finishes the work (killed leases expire meanwhile)
        final = ask("spawn")
        deadline = time.monotonic() + 30
        check = sa.create_engine(outbox_url)

        def pending() -> int:
            with check.connect() as conn:
                return conn.execute(
                    sa.select(sa.func.count()).select_from(events_table)
                    .where(events_table.c.dispatched_at.is_(None))
                ).scalar_one()

        # done when everything was delivered and acked (events that killed processes
        # delivered but never acked come back after their lease and are delivered again)
        while {n for n, _ in _read(deliveries)} != written or pending():
            assert alive(final), launcher.stderr.read()[-2000:]
            assert time.monotonic() < deadline, f"missing: {sorted(written - {n for n, _ in _read(deliveries)})[:20]}"
            time.sleep(0.02)
        check.dispose()
        os.kill(final, signal.SIGTERM)
        assert ask(f"wait {final}") == 0, "the last dispatcher did not stop cleanly on SIGTERM"
    finally:
        writer.stop.set()
        launcher.stdin.close()
        launcher.wait(timeout=20)

    records = _read(deliveries)
    delivered = collections.Counter(n for n, _ in records)
    assert set(delivered) == written, "an event was lost"
    # a duplicate is a redelivery of an event whose previous delivery was never acked: it is
    # charged to the process that made that previous delivery (and must have been killed)
    last_by: dict[int, int] = {}
    dup_per_crash: collections.Counter[int] = collections.Counter()
    for n, pid in records:
        if n in last_by:
            dup_per_crash[last_by[n]] += 1
        last_by[n] = pid
    duplicates = sum(delivered.values()) - len(delivered)
    assert set(dup_per_crash) <= set(killed), "a process that was not killed caused duplicates"
    assert max(dup_per_crash.values(), default=0) <= BATCH, dup_per_crash
    print(
        f"\n{CRASHES} SIGKILLs, {len(written)} events written and delivered, {duplicates} duplicates "
        f"(max {max(dup_per_crash.values(), default=0)} per crash, bound {BATCH}), "
        f"{time.monotonic() - started:.1f} s"
    )
    with sa.create_engine(outbox_url).connect() as conn:
        assert conn.execute(
            sa.select(sa.func.count()).select_from(events_table).where(events_table.c.dispatched_at.is_(None))
        ).scalar_one() == 0


@pytest.mark.timeout(60)
async def test_three_dispatchers_never_deliver_twice_without_crashes(pg_url, registry):
    from tests.integration.outbox.conftest import _reset

    _reset(pg_url)
    total = 600
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        for i in range(total):
            outbox.add(conn, "Share", {"n": i}, key=f"k{i % 17}" if i % 3 == 0 else None)
    engine.dispose()
    seen: list[tuple[int, int]] = []
    done = asyncio.Event()

    def make(idx: int) -> Dispatcher:
        async def handle(event):
            seen.append((event.payload["n"], idx))
            await asyncio.sleep(0)
            if len(seen) >= total:
                done.set()

        return Dispatcher(
            pg_url, handlers={"Share": handle}, batch_size=7, concurrency=2,
            poll_interval=0.05, registry=registry,
        )

    dispatchers = [make(i) for i in range(3)]
    for d in dispatchers:
        await d.start()
    try:
        await asyncio.wait_for(done.wait(), 45)
    finally:
        for d in dispatchers:
            await d.stop()
    counts = collections.Counter(n for n, _ in seen)
    assert len(counts) == total
    assert max(counts.values()) == 1, [n for n, c in counts.items() if c > 1][:10]
    assert len({i for _, i in seen}) == 3, "all three dispatchers took part"


async def test_rolled_back_event_is_never_delivered(outbox_url, registry):
    engine = sa.create_engine(outbox_url)
    with engine.connect() as conn:
        outbox.add(conn, "RB", {"n": "rolled-back"})
        conn.rollback()
    with engine.begin() as conn:
        outbox.add(conn, "RB", {"n": "committed"})
    got = []
    d = Dispatcher(engine, handlers={"RB": lambda e: got.append(e.payload["n"])}, listen=False, registry=registry)
    assert await d.drain() == 1
    assert got == ["committed"]
    engine.dispose()


@pytest.mark.timeout(30)
async def test_listen_notify_wakes_the_dispatcher_long_before_the_poll(pg_url, registry):
    from tests.integration.outbox.conftest import _reset

    _reset(pg_url)
    got = asyncio.Event()
    d = Dispatcher(
        pg_url, handlers={"Ping": lambda e: got.set()}, poll_interval=30, registry=registry
    )
    async with d.running():
        await asyncio.sleep(0.3)  # let the listener connect; polling would take 30 s
        engine = sa.create_engine(pg_url)
        with engine.begin() as conn:
            outbox.add(conn, "Ping", {})
        engine.dispose()
        loop_start = time.monotonic()
        await asyncio.wait_for(got.wait(), 10)
        assert time.monotonic() - loop_start < 5


@pytest.mark.timeout(30)
async def test_sqlite_commit_wakes_the_dispatcher_long_before_the_poll(sqlite_url, registry):
    outbox.create_tables(sqlite_url)
    got = asyncio.Event()
    d = Dispatcher(sqlite_url, handlers={"Ping": lambda e: got.set()}, poll_interval=30, registry=registry)
    async with d.running():
        await asyncio.sleep(0.1)
        engine = sa.create_engine(sqlite_url)
        with engine.begin() as conn:
            outbox.add(conn, "Ping", {})
        engine.dispose()
        start = time.monotonic()
        await asyncio.wait_for(got.wait(), 10)
        assert time.monotonic() - start < 5
