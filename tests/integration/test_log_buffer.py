"""Buffered log lines in real processes: every line on a clean stop, at most the bound on a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from surefoot.logging._sink import MAX_BUFFER

from .test_metrics_multiworker import free_port

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import surefoot
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    surefoot.install(app)
    """
)


def _env(subprocess_env: dict[str, str]) -> dict[str, str]:
    env = dict(subprocess_env)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["SUREFOOT_ENV"] = "production"  # JSON lines, as a log shipper reads them
    env["SUREFOOT_LOG_BUFFER_MS"] = "10000"  # only a clean stop can have written them
    return env


def test_sigterm_under_uvicorn_writes_every_access_line(tmp_path: Path, subprocess_env: dict[str, str]):
    (tmp_path / "bufapp.py").write_text(APP)
    port = free_port()
    out = open(tmp_path / "stdout.log", "w")  # noqa: SIM115 - a file, as a log shipper's pipe is
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bufapp:app", "--port", str(port), "--log-level", "info"],
        cwd=tmp_path, env=_env(subprocess_env), stdout=out, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/livez", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise AssertionError("uvicorn did not start: " + (tmp_path / "stdout.log").read_text()) from None
                time.sleep(0.1)  # polling a starting server
        with httpx.Client(base_url=base, timeout=5) as client:
            ids = [f"req-{i}" for i in range(25)]
            for i, cid in enumerate(ids):
                assert client.get(f"/items/{i}", headers={"X-Correlation-ID": cid}).status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        out.close()
    lines = [json.loads(line) for line in (tmp_path / "stdout.log").read_text().splitlines()
             if line.startswith("{")]
    access = [line["correlation_id"] for line in lines if line["event"] == "http_request"]
    assert access == ids
    # uvicorn's own lines (through the same sink) are there too, the shutdown ones included.
    assert any("Finished server process" in line["event"] for line in lines)


CRASH = textwrap.dedent(
    """
    import os, sys
    from surefoot.logging import configure_logging
    from surefoot.logging._setup import AccessLogger

    configure_logging(fmt="json", buffer_ms=10000)
    access = AccessLogger()
    for i in range(int(sys.argv[1])):
        access.write("GET", "/items/{item_id}", 200, 0.5, i)
    os._exit(0)  # no flush: what a SIGKILL or an OOM kill does
    """
)


def test_a_crash_loses_at_most_the_buffer_bound(tmp_path: Path, subprocess_env: dict[str, str]):
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    total = 100
    with open(tmp_path / "out.log", "w") as out:
        subprocess.run([sys.executable, str(script), str(total)], env=_env(subprocess_env), stdout=out,
                       check=True, timeout=60)
    text = (tmp_path / "out.log").read_text()
    written = [json.loads(line) for line in text.splitlines()]  # every written line is whole
    assert [line["bytes"] for line in written] == list(range(len(written)))  # in order, none skipped
    lost = total - len(written)
    line_size = len(text.splitlines()[0]) + 1
    assert 0 < lost <= MAX_BUFFER // line_size  # the documented bound: at most 4 KiB of lines
