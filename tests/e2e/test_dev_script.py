"""dev.py: stopping it stops the server it started; switching demo and test never reinstalls."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from .conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _dev():
    spec = importlib.util.spec_from_file_location("surefoot_dev_script", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_switching_between_demo_and_test_installs_once():
    dev = _dev()
    digest = "d" * 64
    stamp: list[str] = []
    installs = []
    for task in ("demo", "test", "demo", "test", "demo"):
        wanted = dev.to_install(stamp, digest, dev.EXTRAS[task])
        if wanted is not None:
            installs.append(wanted)
            stamp = [f"{digest} {','.join(sorted(wanted))}"]
    assert len(installs) == 1
    # bench needs more: one more install, and it keeps what was there
    wanted = dev.to_install(stamp, digest, dev.EXTRAS["bench"])
    assert wanted is not None and {"all", "test", "bench"} <= wanted
    stamp = [f"{digest} {','.join(sorted(wanted))}"]
    assert all(dev.to_install(stamp, digest, dev.EXTRAS[t]) is None for t in ("demo", "test", "bench"))
    # a changed pyproject.toml reinstalls
    assert dev.to_install(stamp, "e" * 64, dev.EXTRAS["test"]) is not None


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a starting server
    pytest.fail("server did not start:\n" + log.read_text())


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _stop_and_check(proc: subprocess.Popen, sig: int, url: str) -> None:
    children = _children(proc.pid)
    assert children, "the wrapper started no process"
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(c) for c in children), "the server outlived the script that started it"
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/livez", timeout=1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_reach_the_server(tmp_path, subprocess_env, sig):
    port = free_port()
    (tmp_path / "svc.py").write_text(textwrap.dedent(
        """
        from fastapi import FastAPI
        import surefoot
        app = FastAPI()
        surefoot.install(app)
        """
    ))
    launcher = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("dev", {str(ROOT / "dev.py")!r})
        dev = importlib.util.module_from_spec(spec); spec.loader.exec_module(dev)
        sys.exit(dev.run_forwarding_signals([sys.executable, "-m", "uvicorn", "svc:app", "--port", "{port}"]))
        """
    )
    env = dict(subprocess_env, PYTHONPATH=os.pathsep.join([str(tmp_path), subprocess_env["PYTHONPATH"]]))
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", launcher], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc, log)
        _stop_and_check(proc, sig, f"http://127.0.0.1:{port}")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Application shutdown complete" in log.read_text()  # a clean stop, not a kill


def test_stopping_dev_py_demo_stops_the_demo_server(tmp_path, subprocess_env):
    dev = _dev()
    venv = Path(sys.prefix)
    stamp = venv / dev.STAMP_FILE
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    lines = stamp.read_text().splitlines() if stamp.exists() else []
    if dev.to_install(lines, digest, dev.EXTRAS["demo"]) is not None:
        pytest.skip("this environment was not made by dev.py: `dev.py demo` would install into it")
    port = free_port()
    env = dict(subprocess_env, SUREFOOT_VENV=str(venv), SUREFOOT_LOG_FORMAT="json",
               SUREFOOT_DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}")
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "dev.py"), "demo", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc, log)
        assert "installing" not in log.read_text()
        _stop_and_check(proc, signal.SIGTERM, f"http://127.0.0.1:{port}")
    finally:
        if proc.poll() is None:
            proc.kill()
