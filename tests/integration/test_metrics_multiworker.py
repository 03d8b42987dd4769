"""Exact metric totals across real worker processes (uvicorn --workers, gunicorn)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse
    from surefoot.http import install_http
    from surefoot.metrics import metrics_app

    app = FastAPI()

    @app.get("/jobs/{n}")
    async def work(n: int):
        return {"pid": os.getpid(), "n": n}

    @app.get("/fail")
    async def fail():
        return PlainTextResponse("down", status_code=500)

    install_http(app, access_log=False)
    app.add_route("/metrics", metrics_app(), include_in_schema=False)
    """
)

UVICORN = textwrap.dedent(
    """
    import sys
    from surefoot.metrics.multiprocess import run_uvicorn

    if __name__ == "__main__":  # uvicorn spawns workers, which re-import this file
        run_uvicorn("mwapp:app", workers=2, host="127.0.0.1", port=int(sys.argv[1]),
                    multiproc_dir=sys.argv[2], app_dir=sys.argv[3], log_level="warning")
    """
)

GUNICORN_CONF = "from surefoot.metrics.multiprocess import on_starting, child_exit  # noqa: F401\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}; see its log in {proc.args}")
        try:
            httpx.get(base + "/metrics", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)  # polling a starting server, not timing a result
    raise AssertionError("server did not start")


async def hit(base: str, path: str, n: int) -> set[int]:
    """Send exactly ``n`` requests, each on a new connection (so the kernel spreads them)."""
    pids: set[int] = set()
    limits = httpx.Limits(max_keepalive_connections=0, max_connections=8)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10.0) as client:
        responses = await asyncio.gather(*(client.get(path.format(i=i)) for i in range(n)))
    for resp in responses:
        if resp.headers.get("content-type", "").startswith("application/json"):
            pids.add(resp.json()["pid"])
    return pids


async def until_both_workers(base: str, limit: int = 400) -> tuple[int, set[int]]:
    sent, pids = 0, set()
    while len(pids) < 2 and sent < limit:
        pids |= await hit(base, "/jobs/{i}", 20)
        sent += 20
    return sent, pids


def scrape(base: str) -> tuple[dict, str]:
    summary = httpx.get(base + "/metrics?format=json", timeout=10).json()
    text = httpx.get(base + "/metrics", timeout=10).text
    return summary, text


def count_line(text: str, route: str, status: str) -> float:
    needle = f'http_route="{route}",url_scheme="http"}}'
    total = 0.0
    for line in text.splitlines():
        if line.startswith("http_server_request_duration_seconds_count{") and needle in line \
                and f'http_response_status_code="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.fixture
def served(tmp_path: Path, subprocess_env: dict[str, str]):
    (tmp_path / "mwapp.py").write_text(APP)
    procs: list[subprocess.Popen] = []
    with contextlib.ExitStack() as logs:  # closed after the processes are gone

        def start(kind: str) -> tuple[str, subprocess.Popen, Path]:
            port = free_port()
            prom = tmp_path / f"prom-{kind}"
            prom.mkdir()
            (prom / "counter_1.db").write_bytes(b"stale")  # a previous run's leftovers
            env = dict(subprocess_env)
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            if kind == "uvicorn":
                (tmp_path / "launch.py").write_text(UVICORN)
                cmd = [sys.executable, str(tmp_path / "launch.py"), str(port), str(prom), str(tmp_path)]
            else:
                (tmp_path / "gunicorn.conf.py").write_text(GUNICORN_CONF)
                env["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
                env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
                cmd = [sys.executable, "-m", "gunicorn", "-c", str(tmp_path / "gunicorn.conf.py"),
                       "-k", "uvicorn.workers.UvicornWorker", "-w", "2", "-b", f"127.0.0.1:{port}",
                       "--log-level", "warning", "mwapp:app"]
            log = logs.enter_context(open(tmp_path / f"{kind}.log", "w"))  # a file, never a pipe nobody drains
            proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
            procs.append(proc)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_ready(base, proc)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{(tmp_path / f'{kind}.log').read_text()}") from None
            return base, proc, prom

        yield start
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
async def test_exact_totals_across_workers_and_restarts(served, kind):
    base, proc, prom = served(kind)
    assert not (prom / "counter_1.db").exists(), "the directory is cleared at start"

    sent, pids = await until_both_workers(base)
    assert len(pids) == 2, f"requests never reached both workers ({pids})"
    await hit(base, "/fail", 7)

    summary, text = scrape(base)
    assert count_line(text, "/jobs/{n}", "200") == sent
    assert count_line(text, "/fail", "500") == 7
    # every 200 is a /jobs request: scrapes of /metrics are not request traffic
    assert summary["status_codes"]["200"] == sent
    assert count_line(text, "/metrics", "200") == 0
    assert summary["errors_total"] == 7
    assert summary["mode"] == "multiprocess"
    assert {r["path"]: r["count"] for r in summary["top_routes"]}["/jobs/{n}"] == sent

    # A worker dies; the supervisor replaces it. Its counts must stay in the totals and
    # its live gauges must go.
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        children = worker_pids(proc.pid)
        if victim not in children and len(children) >= 2:
            break
        time.sleep(0.2)  # waiting for the supervisor to restart the worker
    else:
        pytest.fail("the killed worker was not replaced")
    more, _ = await until_both_workers(base)
    _summary, text = scrape(base)
    assert count_line(text, "/jobs/{n}", "200") == sent + more
    assert count_line(text, "/fail", "500") == 7
    assert not list(prom.glob(f"gauge_live*_{victim}.db"))
    active = [line for line in text.splitlines() if line.startswith("http_server_active_requests{")]
    # nothing is in flight (the scrape itself is not request traffic)
    assert sum(float(line.rsplit(" ", 1)[1]) for line in active) == 0.0
