"""Process and pool saturation summed over real gunicorn workers (PROMETHEUS_MULTIPROC_DIR)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from surefoot.metrics._process import available_memory_bytes

from tests.integration.test_metrics_multiworker import free_port, wait_ready

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os
    import sqlalchemy as sa
    from fastapi import FastAPI
    import surefoot
    from surefoot.metrics import instrument_engine

    engine = sa.create_engine("sqlite:///" + os.environ["SAT_DB"], pool_size=2, max_overflow=1)
    instrument_engine(engine, name="app")
    app = FastAPI()
    HELD = []

    @app.get("/me")
    def me():
        return {"pid": os.getpid(), "held": len(HELD)}

    @app.get("/hold")
    def hold():
        # Hold up to the pool's maximum (2 + 1 overflow), never wait for a fourth: requests
        # keep arriving here until one reaches the other worker.
        if len(HELD) < 3:
            HELD.append(engine.connect())
        return {"pid": os.getpid(), "held": len(HELD)}

    surefoot.install(app, logging=False)
    """
)


def _value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def _poll(base: str, predicate, what: str, deadline: float = 20.0) -> str:
    end = time.monotonic() + deadline
    text = ""
    while time.monotonic() < end:
        text = httpx.get(base + "/metrics", timeout=5).text
        if predicate(text):
            return text
        time.sleep(0.1)  # waiting for the workers' next samples
    raise AssertionError(f"{what} never held; last scrape:\n{text}")


def _rss(pid: int) -> float:
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return float(pages * os.sysconf("SC_PAGE_SIZE"))


@pytest.fixture
def gunicorn(tmp_path: Path, subprocess_env: dict[str, str]):
    (tmp_path / "satapp.py").write_text(APP)
    (tmp_path / "gunicorn.conf.py").write_text(
        "from surefoot.metrics.multiprocess import on_starting, child_exit  # noqa: F401\n"
    )
    prom = tmp_path / "prom"
    prom.mkdir()
    env = dict(subprocess_env)
    env.update({
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
        "SAT_DB": str(tmp_path / "sat.sqlite3"),
        "SUREFOOT_METRICS_PROCESS_INTERVAL": "0.1",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), env["PYTHONPATH"]]),
    })
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(tmp_path / "gunicorn.conf.py"),
         "-k", "uvicorn.workers.UvicornWorker", "-w", "2", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "satapp:app"],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(base, proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{(tmp_path / 'gunicorn.log').read_text()}") from None
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_saturation_is_summed_over_workers(gunicorn: str) -> None:
    base = gunicorn
    held: dict[int, int] = {}
    for _ in range(400):
        with httpx.Client(base_url=base, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            body = client.get("/hold").json()
        held[body["pid"]] = body["held"]
        if len(held) == 2:
            break
    assert len(held) == 2, f"requests never reached both workers: {held}"
    total_held = sum(held.values())
    assert total_held <= 6, "each worker's pool allows 3 connections"

    # two workers x (pool_size 2 + max_overflow 1)
    text = _poll(base, lambda t: _value(t, 'db_connections_max{pool="app"}') == 6.0
                 and _value(t, 'db_connections_in_use{pool="app"}') == total_held,
                 "pool gauges summed over both workers")
    assert _value(text, 'db_connections_idle{pool="app"}') is not None
    most = max(held.values())
    assert _value(text, 'db_connections_utilization_percent{pool="app"}') == pytest.approx(100.0 * most / 3)

    assert _value(text, "cpu_utilization_percent") is not None
    assert _value(text, "event_loop_lag_seconds") is not None
    assert _value(text, "process_max_file_descriptors") > 0
    # memory: the sum of both workers' resident memory, as a share of the machine
    expected = 100.0 * sum(_rss(pid) for pid in held) / available_memory_bytes()
    assert _value(text, "memory_utilization_percent") == pytest.approx(expected, rel=0.25)
    one_worker = 100.0 * _rss(next(iter(held))) / available_memory_bytes()
    assert _value(text, "memory_utilization_percent") > one_worker * 1.5
