"""/slo under uvicorn with two worker processes: every worker reports every worker's events."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from surefoot import outbox, slo

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_slo_is_the_same_whichever_worker_answers(tmp_path, subprocess_env):
    db = f"sqlite:///{tmp_path / 'svc.sqlite3'}"
    engine = sa.create_engine(db)
    slo.migrate(engine)
    outbox.create_tables(engine)
    engine.dispose()
    port = _port()
    env = {**subprocess_env, "SLO_TEST_DB": db, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.integration.slo._service:app", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "service.log", "w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        pids: set[int] = set()
        while len(pids) < 2:
            assert time.monotonic() < deadline, "both workers never answered"
            try:
                with httpx.Client(base_url=base, timeout=2) as fresh:  # a new connection each time
                    pids.add(fresh.get("/pid").json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.2)
        for i in range(60):
            with httpx.Client(base_url=base, timeout=5) as fresh:
                fresh.get("/work", params={"fail": True} if i % 3 == 0 else {})
        seen: set[int] = set()
        agreeing = 0
        deadline = time.monotonic() + 30
        while agreeing < 6 or len(seen) < 2:
            assert time.monotonic() < deadline, f"workers never agreed on 60 events (seen pids {seen})"
            with httpx.Client(base_url=base, timeout=5) as fresh:
                body = fresh.get("/slo").json()
                seen.add(fresh.get("/pid").json()["pid"])
            entry = next(o for o in body["objectives"] if o["name"] == "api_availability")
            window = entry["windows"]["5m"]
            if body["shared"] and window["total"] == 60:
                assert (window["good"], window["bad"]) == (40, 20)
                agreeing += 1
            else:
                agreeing = 0
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(30)
