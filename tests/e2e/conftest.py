from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


@pytest.fixture
def start_demo(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Callable[..., Server]]:
    """Start ``python -m surefoot demo`` on a free loopback port; stopped at teardown."""
    servers: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Server:
        port = free_port()
        log_path = tmp_path / f"demo-{port}.log"
        full_env = {**subprocess_env, "SUREFOOT_LOG_FORMAT": "json", **(env or {})}
        full_env.pop("SUREFOOT_DATABASE_URL", None)
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "surefoot", "demo", "--tour", "--port", str(port), *args],
                cwd=tmp_path, env=full_env, stdout=log_file, stderr=subprocess.STDOUT,
            )
        server = Server(process, f"http://127.0.0.1:{port}", log_path)
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the demo exited with {process.returncode}:\n{server.output()}")
            try:
                if httpx.get(server.base_url + "/readyz", timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo did not become ready in 30 s:\n{server.output()}")
            time.sleep(0.05)

    yield start
    for server in servers:
        server.stop()
