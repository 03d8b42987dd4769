#!/usr/bin/env python3
"""Set up and run surefoot's development tasks with nothing but Python.

    python3 dev.py demo              # start the demo service
    python3 dev.py test [ARGS...]    # run the whole test suite (ARGS go to pytest)
    python3 dev.py bench NAME [...]  # run benchmarks/NAME.py against the comparison libraries

Each task creates (once) a virtual environment in .venv and installs surefoot into it
in editable mode with the extras the task needs; it reinstalls when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SUREFOOT_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")

EXTRAS = {"demo": "all,test", "test": "all,test", "bench": "all,test,bench"}
STAMP_FILE = ".surefoot-installed"


def to_install(stamp_lines: list[str], digest: str, extras: str) -> set[str] | None:
    """The extras to install, or ``None`` when an install for ``digest`` already covers them.

    ``demo`` and ``test`` need the same environment, and an install keeps the extras of the
    previous ones for the same pyproject.toml (the union), so switching tasks never reinstalls.
    """
    needed = {e for e in extras.split(",") if e}
    installed: set[str] = set()
    for line in stamp_lines:
        if line.startswith(digest):  # "<sha256> extra,extra" (older stamps had no space)
            installed |= {e for e in line[len(digest):].strip().split(",") if e}
    if needed <= installed:
        return None
    return needed | installed


def _ensure_env(extras: str) -> None:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = VENV / STAMP_FILE
    lines = stamp.read_text().splitlines() if stamp.exists() else []
    wanted = to_install(lines, digest, extras) if PY.exists() else {e for e in extras.split(",") if e}
    if wanted is None:
        return
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        subprocess.run([PY, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        lines = []
    union = ",".join(sorted(wanted))
    print(f"installing surefoot[{union}] (editable)", flush=True)
    subprocess.run([PY, "-m", "pip", "install", "-q", "-e", f"{ROOT}[{union}]"], check=True)
    stamp.write_text(f"{digest} {union}\n")


def _terminal_delivers_sigint() -> bool:
    """True when Ctrl-C on a terminal reaches the child by itself (same foreground group)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, AttributeError, ValueError):
        return False  # no terminal (CI, a supervisor, an IDE)


def run_forwarding_signals(cmd: list[str]) -> int:
    """Run ``cmd`` and pass SIGINT/SIGTERM on to it; return its exit status.

    Stopping this script (``kill``, a supervisor, an IDE's stop button) stops the server or
    test run it started instead of leaving it running. Ctrl-C on a terminal already reaches
    the child (it is in the terminal's foreground process group, so it can also read the
    terminal, e.g. ``--pdb``): that SIGINT is not sent a second time.
    """
    child = subprocess.Popen(cmd)

    def forward(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT and _terminal_delivers_sigint():
            return
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            child.kill()
            child.wait()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__, file=sys.stderr)
        return 2
    task, rest = argv[0], argv[1:]
    _ensure_env(EXTRAS[task])
    os.chdir(ROOT)
    if task == "demo":
        cmd = [BIN / "surefoot", "demo", *rest]
    elif task == "test":
        cmd = [PY, "-m", "pytest", *rest]
    else:
        if not rest:
            names = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_"))
            print("benchmarks: " + ", ".join(names), file=sys.stderr)
            return 2
        cmd = [PY, str(ROOT / "benchmarks" / f"{rest[0]}.py"), *rest[1:]]
    code = run_forwarding_signals([str(c) for c in cmd])
    if task == "test" and code == 5:
        print("pytest collected no tests: that is a failure, not a pass", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
