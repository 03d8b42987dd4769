"""Several workers without the shared metrics directory: a loud error at start-up, not silence."""

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

from surefoot.metrics.multiprocess import _argv_workers, worker_count

from .test_metrics_multiworker import free_port

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    from fastapi import FastAPI
    import surefoot

    app = FastAPI()
    surefoot.install(app)

    @app.get("/ping")
    async def ping():
        return {"ok": True}
    """
)


def _serve(tmp_path: Path, env: dict[str, str], args: list[str]) -> str:
    (tmp_path / "svc.py").write_text(APP)
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "svc:app", "--port", str(port), *args],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            end = time.monotonic() + 40
            while time.monotonic() < end:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)  # polling a starting server
            time.sleep(1.0)  # let the second worker finish its start-up too
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return log_path.read_text()


def _env(subprocess_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = dict(subprocess_env, SUREFOOT_LOG_FORMAT="json")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("WEB_CONCURRENCY", None)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    return env


def test_two_uvicorn_workers_without_the_directory_warn_loudly(tmp_path, subprocess_env):
    out = _serve(tmp_path, _env(subprocess_env, tmp_path), ["--workers", "2"])
    warnings = [line for line in out.splitlines() if "metrics_not_shared_between_workers" in line]
    assert len(warnings) == 2, out  # one per worker
    assert '"level":"error"' in warnings[0] and "PROMETHEUS_MULTIPROC_DIR" in warnings[0]
    assert "run_uvicorn" in warnings[0]


def test_one_worker_does_not_warn(tmp_path, subprocess_env):
    out = _serve(tmp_path, _env(subprocess_env, tmp_path), [])
    assert "metrics_not_shared_between_workers" not in out
    assert "Application startup complete" in out


def test_workers_with_the_shared_directory_do_not_warn(tmp_path, subprocess_env):
    env = _env(subprocess_env, tmp_path)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom")
    (tmp_path / "prom").mkdir()
    out = _serve(tmp_path, env, ["--workers", "2"])
    assert "metrics_not_shared_between_workers" not in out
    assert out.count("Application startup complete") == 2, out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["uvicorn", "app:app", "--workers", "4"], 4),
        (["uvicorn", "app:app", "--workers=3"], 3),
        (["gunicorn", "-w", "5", "app:app"], 5),
        (["gunicorn", "-w2", "app:app"], 2),
        (["uvicorn", "app:app", "--port", "8000"], 1),
    ],
)
def test_worker_count_reads_the_command_line(monkeypatch, argv, expected):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert _argv_workers(argv) == expected
    assert worker_count(argv) == expected


def test_worker_count_reads_web_concurrency(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert worker_count(["uvicorn", "app:app"]) == 3
