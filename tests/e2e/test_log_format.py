"""One log format for the whole process, through a real uvicorn server."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _wait_ready(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(base_url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"server not ready in 30 s:\n{log_path.read_text()}")


def test_uvicorn_cli_stdlib_and_structlog_lines_are_all_json(tmp_path, subprocess_env) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**subprocess_env, "SUREFOOT_LOG_FORMAT": "json"}
    env["PYTHONPATH"] = f"{ROOT}:{env['PYTHONPATH']}"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.e2e._cli_app:app", "--port", str(port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, process, log_path)
        assert httpx.get(base_url + "/ping", headers={"X-Request-ID": "cli-1"}).json() == {"pong": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    raw_lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    lines = [json.loads(line) for line in raw_lines]  # every single line is JSON
    events = [line["event"] for line in lines]
    assert any(e.startswith("Started server process") for e in events)
    assert any(e.startswith("Uvicorn running on") for e in events)
    assert any(e == "Shutting down" for e in events)
    stdlib = next(line for line in lines if line["module"] == "legacy.module")
    assert stdlib["event"] == "stdlib line for ***.com" and stdlib["correlation_id"] == "cli-1"
    pong = next(line for line in lines if line["event"] == "pong")
    assert pong["phone"] == "***5678" and pong["correlation_id"] == "cli-1"
    access = [line for line in lines if line["event"] == "http_request"]
    assert [line["route"] for line in access] == ["/ping"]  # probes skipped
    # uvicorn's own access line ('"GET /ping HTTP/1.1" 200') is replaced by surefoot's
    assert not any(re.search(r'"GET /ping HTTP/1\.1"', e) for e in events)
    assert all("color_message" not in line for line in lines)


def test_demo_console_format(start_demo) -> None:
    server = start_demo(env={"SUREFOOT_LOG_FORMAT": "console"})
    httpx.get(server.base_url + "/hello", params={"name": "Ada"}, headers={"X-Correlation-ID": "con-1"})
    server.stop()
    text = re.sub(r"\x1b\[[0-9;]*m", "", server.output())
    log_lines = [line for line in text.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]
    assert log_lines, text
    assert not any(line.lstrip().startswith("{") for line in text.splitlines())
    access = next(line for line in log_lines if "http_request" in line and "con-1" in line)
    assert "[info" in access and "route=/hello" in access and "status=200" in access
    assert any("module=uvicorn.error" in line for line in log_lines)
