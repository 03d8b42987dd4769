"""The JSON log file beside the console: rotation by size and time, threads and processes."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import structlog

from surefoot.errors import ConfigurationError
from surefoot.logging import LogFile, configure_logging, reset_logging

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")


@pytest.fixture(autouse=True)
def _reset_logging() -> Any:
    yield
    reset_logging()


def _lines(directory: Path, stem: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(directory.glob(stem + "*")):
        if path.name.endswith(".lock"):
            continue
        for raw in path.read_text(encoding="utf-8").splitlines():
            out.append(json.loads(raw))  # a torn or interleaved line fails here
    return out


def test_json_file_beside_a_console_stream(tmp_path: Path) -> None:
    console = io.StringIO()
    configure_logging(stream=console, fmt="console", log_file=tmp_path / "app.log")
    structlog.get_logger("billing").info("invoice_sent", to="alice@example.com", amount=3)
    logging.getLogger("lib").warning("disk at %d%%", 91)
    lines = _lines(tmp_path, "app.log")
    assert [(line["event"], line["level"]) for line in lines] == [("invoice_sent", "info"), ("disk at 91%", "warning")]
    assert lines[0]["to"] != "alice@example.com" and lines[0]["to"].endswith(".com")  # redacted as on the console
    assert "invoice_sent" in console.getvalue() and not console.getvalue().lstrip().startswith("{")


def test_settings_turn_the_file_on(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("SUREFOOT_LOG_FILE", str(tmp_path / "svc.log"))
    monkeypatch.setenv("SUREFOOT_LOG_FILE_MAX_BYTES", "2048")
    monkeypatch.setenv("SUREFOOT_LOG_FILE_BACKUP_COUNT", "50")
    configure_logging(stream=io.StringIO(), fmt="json")
    log = structlog.get_logger("x")
    for i in range(100):
        log.info("tick", i=i)
    assert [line["i"] for line in _lines(tmp_path, "svc.log")] != []
    assert sorted(line["i"] for line in _lines(tmp_path, "svc.log")) == list(range(100))
    assert len([p for p in tmp_path.glob("svc.log.*") if not p.name.endswith(".lock")]) >= 2


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        LogFile(tmp_path / "missing" / "x.log")
    with pytest.raises(ConfigurationError, match="size' or 'time"):
        LogFile(tmp_path / "x.log", rotate="daily")
    with pytest.raises(ConfigurationError, match="SUREFOOT_LOG_FILE_WHEN.*fortnight"):
        LogFile(tmp_path / "x.log", rotate="time", when="fortnight")
    with pytest.raises(ConfigurationError, match="SUREFOOT_LOG_FILE_MAX_BYTES.*1024"):
        LogFile(tmp_path / "x.log", max_bytes=10)
    with pytest.raises(ConfigurationError, match="SUREFOOT_LOG_FILE_BACKUP_COUNT"):
        LogFile(tmp_path / "x.log", backup_count=-1)
    with pytest.raises(ConfigurationError, match="SUREFOOT_LOG_FILE_INTERVAL"):
        LogFile(tmp_path / "x.log", rotate="time", interval=0)
    for when in ("S", "m", "H", "D", "midnight", "W0", "w6"):
        LogFile(tmp_path / f"ok-{when}.log", rotate="time", when=when).close()


def test_a_bad_time_unit_in_the_environment_fails_at_once_and_exits_cleanly(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "from surefoot.logging import configure_logging\n"
        "try:\n"
        "    configure_logging(fmt='json')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {**__import__("os").environ, "SUREFOOT_LOG_FILE": str(tmp_path / "svc.log"),
           "SUREFOOT_LOG_FILE_ROTATE": "time", "SUREFOOT_LOG_FILE_WHEN": "fortnight"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "ConfigurationError" in done.stdout and "SUREFOOT_LOG_FILE_WHEN" in done.stdout
    assert "Traceback" not in done.stderr and "AttributeError" not in done.stderr


def test_size_rotation_under_threads_loses_and_repeats_nothing(tmp_path: Path) -> None:
    configure_logging(stream=io.StringIO(), fmt="json",
                      log_file=LogFile(tmp_path / "t.log", max_bytes=64 * 1024, backup_count=500))
    log = structlog.get_logger("load")

    def write(worker: int) -> None:
        for i in range(1500):
            log.info("line", worker=worker, i=i)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = Counter((line["worker"], line["i"]) for line in _lines(tmp_path, "t.log"))
    assert len(seen) == 8 * 1500 and set(seen.values()) == {1}
    assert len(list(tmp_path.glob("t.log.*"))) > 10  # it did rotate, many times (backups never ran out)


WRITER = textwrap.dedent(
    """
    import io, sys, threading, time
    import structlog
    from surefoot.logging import LogFile, configure_logging

    path, rotate, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    options = {"max_bytes": 64 * 1024} if rotate == "size" else {"rotate": "time", "when": "S"}
    configure_logging(stream=io.StringIO(), fmt="json", log_file=LogFile(path, backup_count=500, **options))
    log = structlog.get_logger("proc")

    def write(thread):
        for i in range(count):
            log.info("line", worker=worker, thread=thread, i=i)
            if rotate == "time":
                time.sleep(0.006)  # spread the writes over several seconds

    threads = [threading.Thread(target=write, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("rotate,count", [("size", 1500), ("time", 600)])
def test_rotation_across_processes_loses_and_repeats_nothing(
    tmp_path: Path, subprocess_env: dict[str, str], rotate: str, count: int
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    log_path = tmp_path / "p.log"
    procs = [
        subprocess.Popen([sys.executable, str(script), str(log_path), rotate, str(w), str(count)],
                         env=subprocess_env, stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    lines = _lines(tmp_path, "p.log")
    seen = Counter((line["worker"], line["thread"], line["i"]) for line in lines)
    assert len(seen) == 4 * 2 * count and set(seen.values()) == {1}
    rotated = [p for p in tmp_path.glob("p.log.*") if not p.name.endswith(".lock")]
    assert len(rotated) >= 2, sorted(p.name for p in tmp_path.iterdir())
