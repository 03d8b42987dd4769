"""``surefoot demo`` (the README's ``python3 dev.py demo``): the service, its worker, the Twilio
fake and a call stream start; missed calls become SMS; Ctrl-C stops every process."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import psutil
import pytest

from surefoot.testing import CallSimulator

from .conftest import wait_until
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.slow


def test_demo_turns_missed_calls_into_sms_and_ctrl_c_stops_everything(tmp_path, subprocess_env) -> None:
    port = free_port()
    env = {**subprocess_env, "SUREFOOT_LOG_FORMAT": "json"}
    for name in ("DATABASE_URL", "SUREFOOT_DATABASE_URL"):
        env.pop(name, None)
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115  (closed after the process ends)
    demo = subprocess.Popen([sys.executable, "-m", "surefoot", "demo", "--port", str(port), "--rate", "4"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def status() -> dict | None:
        try:
            return httpx.get(base + "/status.json", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None

    try:
        first = wait_until(lambda: (s := status()) and s["first_sms"]["count"] >= 3 and s, timeout=60,
                           what="the demo's first SMS")
        assert first["breakers"][0]["name"] == "twilio" and first["kill_switch"]["name"] == "pause_outbound_sms"
        assert httpx.get(base + "/status").status_code == 200
        children = psutil.Process(demo.pid).children(recursive=True)
        assert len(children) >= 2  # web and worker run as processes of their own
        output = (tmp_path / "demo.log").read_text()
        assert f"{base}/status" in output and "Ctrl-C" in output
        # the banner gives what a signed missed call by hand needs: the fake's account and token
        printed = re.search(r'CallSimulator\("([^"]+)", \\\s*"([^"]+)", account_sid="(AC[0-9a-f]{32})"', output)
        assert printed and printed.group(1) == f"{base}/webhooks/twilio/voice", output[-2000:]
        by_hand = CallSimulator(printed.group(1), printed.group(2), account_sid=printed.group(3),
                                to=["+14155550100"]).call(status="no-answer")
        assert by_hand.status_code == 200, by_hand
        assert (tmp_path / "surefoot-demo.db").exists()  # embedded SQLite in the current folder
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(40)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()[-3000:]
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_demo_on_a_busy_port_says_which_port_and_starts_nothing(tmp_path, subprocess_env) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in subprocess_env.items() if k not in ("DATABASE_URL", "SUREFOOT_DATABASE_URL")}
        out = subprocess.run([sys.executable, "-m", "surefoot", "demo", "--port", str(port)], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr and "--port" in out.stderr
    assert list(tmp_path.iterdir()) == []  # no database, no process output
