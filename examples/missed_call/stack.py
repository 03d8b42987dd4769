"""Run the whole service locally: migrate, web (uvicorn) and worker as separate processes.

The demo, the end-to-end tests and the benchmark start the service this way, the way seed
004's runbook deploys it (one web process with N uvicorn workers, one worker process).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

EXAMPLES_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """The service's processes with one configuration.

    Args:
        database_url: ``sqlite:///path.db`` or ``postgresql://...``.
        twilio_url: the Messages API base URL (a :class:`surefoot.testing.TwilioFake`'s ``url``).
        account_sid, auth_token: the Twilio credentials (the fake's).
        port: web port (default: a free one).
        web_workers: uvicorn workers of the web process.
        env: more environment variables for both processes.
        log_dir: where each process writes its output (default: inherit the terminal).
    """

    database_url: str
    twilio_url: str
    account_sid: str
    auth_token: str
    port: int = 0
    web_workers: int = 1
    admin_token: str = "admin-secret"
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    host: str = "127.0.0.1"
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH", "")
        return {
            **os.environ,
            "PYTHONPATH": str(EXAMPLES_DIR) + (os.pathsep + path if path else ""),
            "DATABASE_URL": self.database_url,
            "PUBLIC_BASE_URL": self.base_url,
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_API_BASE_URL": self.twilio_url,
            "TWILIO_FROM_NUMBER": os.environ.get("TWILIO_FROM_NUMBER", "+15005550006"),
            "ADMIN_TOKEN": self.admin_token,
            "SUREFOOT_SERVICE_NAME": "missed-call",
            **self.env,
        }

    def _output(self, name: str) -> Any:
        if self.log_dir is None:
            return None
        handle = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115  (closed by stop())
        self._logs.append(handle)
        return handle

    def output(self, name: str) -> str:
        """What process ``name`` (``web``/``worker``) wrote so far (with ``log_dir``)."""
        if self.log_dir is None:
            return ""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def run(self, *args: str) -> None:
        """Run ``python -m missed_call ARGS`` to completion (e.g. ``migrate``)."""
        subprocess.run([sys.executable, "-m", "missed_call", *args], env=self.environment(), check=True,
                       stdout=self._output("cli"), stderr=subprocess.STDOUT)

    def start_web(self) -> None:
        self.processes["web"] = subprocess.Popen(
            [sys.executable, "-m", "missed_call", "web", "--host", self.host, "--port", str(self.port),
             "--workers", str(self.web_workers)],
            env=self.environment(), stdout=self._output("web"), stderr=subprocess.STDOUT,
        )

    def start_worker(self) -> None:
        self.processes["worker"] = subprocess.Popen(
            [sys.executable, "-m", "missed_call", "worker"],
            env=self.environment(), stdout=self._output("worker"), stderr=subprocess.STDOUT,
        )

    def start(self, timeout: float = 60.0) -> Stack:
        """Migrate, start web and worker, wait until the web answers ready and a worker beats."""
        self.run("migrate")
        self.start_web()
        self.start_worker()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.output(name)[-4000:]}")
            try:
                ready = httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200
                if ready and httpx.get(self.base_url + "/status.json", timeout=5).json()["workers"]:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not become ready in {timeout:g} s:\n"
                                   f"{self.output('web')[-3000:]}\n{self.output('worker')[-3000:]}")
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL one process (crash test)."""
        process = self.processes.pop(name)
        process.kill()
        process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every process, SIGKILL what is still running after ``timeout``."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    def admin(self) -> httpx.Client:
        """A client for the admin routes (bearer token set)."""
        return httpx.Client(base_url=self.base_url, timeout=10,
                            headers={"Authorization": f"Bearer {self.admin_token}"})

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
