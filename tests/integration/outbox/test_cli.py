"""`surefoot outbox ...` against real databases."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from surefoot import outbox
from surefoot.cli._outbox import register
from surefoot.outbox import Dispatcher, dead_letters_table, events_table


@pytest.fixture
def cli():
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """surefoot"""

    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(app, list(args), catch_exceptions=False, **kw)


def test_migrate_status_tail_requeue_purge(cli, db_url, registry):
    assert cli("outbox", "migrate", "--url", db_url).exit_code == 0
    assert cli("outbox", "migrate", "--url", db_url).exit_code == 0  # idempotent
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(events_table.delete())
        conn.execute(dead_letters_table.delete())
        for i in range(5):
            outbox.add(conn, "Good", {"n": i})
        poison = outbox.add(conn, "Poison", {"n": -1})
    result = cli("outbox", "status", "--url", db_url, "--json")
    data = json.loads(result.stdout)
    assert data["pending"] == 6 and data["dead_letters"] == 0
    assert {d["event_name"]: d["pending"] for d in data["by_event_name"]} == {"Good": 5, "Poison": 1}

    def poison_handler(event):
        raise RuntimeError("cannot parse")

    async def run() -> None:
        d = Dispatcher(engine, handlers={"Good": lambda e: None, "Poison": poison_handler},
                       max_attempts=1, listen=False, registry=registry)
        await d.drain()

    import asyncio

    asyncio.run(run())
    data = json.loads(cli("outbox", "status", "--url", db_url, "--json").stdout)
    assert data["pending"] == 0 and data["dead_letters"] == 1
    out = cli("outbox", "tail", "--url", db_url, "--dead").stdout
    assert "Poison" in out and "cannot parse" in out
    out = cli("outbox", "tail", "--url", db_url, "-n", "3").stdout
    assert out.count("dispatched") == 3

    # requeue by event id, and everything with --dead
    assert cli("outbox", "requeue", poison.event_id, "--url", db_url).exit_code == 0
    data = json.loads(cli("outbox", "status", "--url", db_url, "--json").stdout)
    assert data["pending"] == 1 and data["dead_letters"] == 0
    asyncio.run(run())
    result = cli("outbox", "requeue", "--dead", "--url", db_url)
    assert "requeued 1 events" in result.stdout
    result = cli("outbox", "requeue", "999999", "--url", db_url)
    assert result.exit_code == 1

    # purge: nothing old yet; then everything dispatched before "now + 1 day"
    assert "no dispatched events" in cli("outbox", "purge", "--url", db_url, "-y").stdout
    result = cli("outbox", "purge", "--url", db_url, "--older-than", "0s", "-y", "--batch-size", "2")
    assert "deleted 5 dispatched events" in result.stdout
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar_one() == 1
    engine.dispose()


def test_requeue_counts_an_event_named_twice_once(cli, db_url, registry):
    import asyncio

    assert cli("outbox", "migrate", "--url", db_url).exit_code == 0
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(events_table.delete())
        conn.execute(dead_letters_table.delete())
        first = outbox.add(conn, "Poison", {"n": 1})
        outbox.add(conn, "Poison", {"n": 2})
        outbox.add(conn, "Poison", {"n": 3})

    def poison_handler(event):
        raise RuntimeError("cannot parse")

    async def fail_all() -> None:
        d = Dispatcher(engine, handlers={"Poison": poison_handler}, max_attempts=1, listen=False,
                       registry=registry)
        await d.drain()

    asyncio.run(fail_all())
    with engine.connect() as conn:
        dead = dict(conn.execute(sa.select(dead_letters_table.c.event_id, dead_letters_table.c.id)).all())
    assert len(dead) == 3
    # the same dead letter by its id and by its event's UUID: one event requeued
    result = cli("outbox", "requeue", str(dead[first.event_id]), first.event_id, "--url", db_url)
    assert result.exit_code == 0 and "requeued 1 events" in result.stdout
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dead_letters_table)).scalar_one() == 2
    # ids together with --dead: the two dead letters left, each counted once
    others = [str(i) for e, i in dead.items() if e != first.event_id]
    result = cli("outbox", "requeue", others[0], "--dead", "--url", db_url)
    assert result.exit_code == 0 and "requeued 2 events" in result.stdout
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dead_letters_table)).scalar_one() == 0
        assert conn.execute(
            sa.select(sa.func.count()).select_from(events_table).where(events_table.c.dispatched_at.is_(None))
        ).scalar_one() == 3
    engine.dispose()


@pytest.mark.slow
def test_run_delivers_and_stops_gracefully_on_sigterm(sqlite_url, tmp_path, subprocess_env):
    out = tmp_path / "out.txt"
    outbox.create_tables(sqlite_url)
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        for i in range(3):
            outbox.add(conn, "CliEvent", {"n": i})
    engine.dispose()
    env = dict(subprocess_env, CLI_TEST_OUT=str(out), SUREFOOT_OUTBOX_POLL_INTERVAL_SECONDS="0.05")
    env["PYTHONPATH"] = env["PYTHONPATH"] + ":" + str(__import__("pathlib").Path(__file__).parents[3])
    proc = subprocess.Popen(
        [sys.executable, "-m", "surefoot", "outbox", "run", "--url", sqlite_url,
         "--import", "tests.integration.outbox._cli_handlers"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not (out.exists() and len(out.read_text().split()) == 3):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert "delivered 3 events" in stdout.decode()


async def test_shared_kill_switch_pauses_every_dispatcher(cli, db_url, registry):
    assert cli("outbox", "migrate", "--url", db_url).exit_code == 0
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(events_table.delete())
        conn.exec_driver_sql("DELETE FROM outbox_paused")
        outbox.add(conn, "SendSms", {})
        outbox.add(conn, "Other", {})
    assert "paused SendSms" in cli("outbox", "pause", "SendSms", "--url", db_url, "--reason", "Twilio 5xx").stdout
    data = json.loads(cli("outbox", "status", "--url", db_url, "--json").stdout)
    assert data["paused"] == [{"pattern": "SendSms", "reason": "Twilio 5xx"}]
    got = []
    d = Dispatcher(engine, handlers={"*": lambda e: got.append(e.event_name)}, listen=False, registry=registry)
    assert await d.drain() == 1 and got == ["Other"]
    assert d.paused == {"SendSms"}
    assert cli("outbox", "resume", "SendSms", "--url", db_url).exit_code == 0
    assert await d.drain() == 1 and got == ["Other", "SendSms"]
    assert cli("outbox", "resume", "--all", "--url", db_url).exit_code == 1  # nothing left
    engine.dispose()
