"""The request path behind a real uvicorn server: disconnects (499), envelopes, ids."""

from __future__ import annotations

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

from .test_metrics_multiworker import count_line, free_port

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import asyncio
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse
    from surefoot.http import install_http
    from surefoot.metrics import metrics_app

    app = FastAPI()

    @app.get("/wait")
    async def wait(request: Request):
        # gives up when the client goes away
        while not await request.is_disconnected():
            await asyncio.sleep(0.01)
        return {"late": True}

    @app.get("/crash")
    async def crash():
        raise RuntimeError("do not leak me")

    @app.get("/stream-crash")
    async def stream_crash():
        async def body():
            yield b"first chunk\\n"
            raise RuntimeError("broke mid-stream")
        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/endless")
    async def endless():
        async def body():
            while True:
                yield b"x" * 1024 + b"\\n"
                await asyncio.sleep(0.01)
        return StreamingResponse(body(), media_type="text/plain")

    install_http(app, access_log=False)
    app.add_route("/metrics", metrics_app(), include_in_schema=False)
    """
)


@pytest.fixture
def server(tmp_path: Path, subprocess_env: dict[str, str]):
    (tmp_path / "oneapp.py").write_text(APP)
    port = free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - a file, never a pipe nobody drains
    env = dict(subprocess_env)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "oneapp:app", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/metrics", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > end or proc.poll() is not None:
                raise AssertionError("uvicorn did not start: " + (tmp_path / "server.log").read_text()) from None
            time.sleep(0.1)  # polling a starting server
    yield base, port
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)
    log.close()


def test_client_disconnect_is_recorded_as_499(server):
    base, port = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /wait HTTP/1.1\r\nHost: t\r\nX-Correlation-ID: gone-1\r\n\r\n")
        # hang up before any response
    end = time.monotonic() + 20
    while time.monotonic() < end:
        text = httpx.get(base + "/metrics", timeout=5).text
        if count_line(text, "/wait", "499"):
            break
        time.sleep(0.05)  # waiting for the server to notice the disconnect
    assert count_line(text, "/wait", "499") == 1
    assert count_line(text, "/wait", "200") == 0


def test_unhandled_error_over_http(server):
    base, _ = server
    resp = httpx.get(base + "/crash", headers={"X-Request-ID": "real-1"}, timeout=5)
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["x-correlation-id"] == "real-1"
    assert resp.json()["correlation_id"] == "real-1"
    assert "leak" not in resp.text


def _error_type_line(text: str, route: str) -> str:
    return next(
        line for line in text.splitlines()
        if line.startswith("http_server_request_duration_seconds_count{") and f'http_route="{route}"' in line
    )


def test_error_after_streaming_started_aborts_the_response(server):
    base, _ = server
    received = b""
    # the server aborts the half-sent body
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", base + "/stream-crash", timeout=5) as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_raw():
            received += chunk
    assert b"problem" not in received and b"Internal" not in received  # nothing more was sent
    text = httpx.get(base + "/metrics", timeout=5).text
    assert count_line(text, "/stream-crash", "200") == 1
    assert 'error_type="RuntimeError"' in _error_type_line(text, "/stream-crash")


def test_client_gone_mid_stream_is_499(server):
    base, port = server
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        # hang up while the body is still streaming
    end = time.monotonic() + 20
    while time.monotonic() < end:
        text = httpx.get(base + "/metrics", timeout=5).text
        if count_line(text, "/endless", "499"):
            break
        time.sleep(0.05)  # waiting for the server to notice the disconnect
    assert count_line(text, "/endless", "499") == 1
    assert count_line(text, "/endless", "200") == 0
