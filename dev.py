#!/usr/bin/env python3
"""Set up and run surefoot's development tasks with nothing but Python.

    python3 dev.py demo              # start the demo service
    python3 dev.py test [ARGS...]    # run the whole test suite (ARGS go to pytest)
    python3 dev.py bench NAME [...]  # run benchmarks/NAME.py against the comparison libraries
    python3 dev.py lint              # ruff over the package, tests, benchmarks and examples
    python3 dev.py types             # mypy over the package (strict on its public face)
    python3 dev.py test-no-extras    # the suite in a second environment without any extra

Each task creates (once) a virtual environment in .venv and installs surefoot into it
in editable mode with the extras the task needs; it reinstalls when pyproject.toml changes.
``SUREFOOT_COVERAGE=1 python3 dev.py test`` measures line and branch coverage of the package
and fails under the gate (85 % of lines, 75 % of branches); CI runs it that way.
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

EXTRAS = {
    "demo": "all,test",
    "test": "all,test",
    "bench": "all,test,bench",
    "lint": "all,test,lint",
    "types": "all,test,lint",
    "test-no-extras": "test-core",
}
CORE_VENV = Path(os.environ.get("SUREFOOT_CORE_VENV", ROOT / ".venv-core"))
COVERAGE_GATE = ("85", "75")  # lines, branches (percent)
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


def _ensure_env(extras: str, venv_dir: Path = VENV) -> None:
    bin_dir = venv_dir / ("Scripts" if os.name == "nt" else "bin")
    py = bin_dir / ("python.exe" if os.name == "nt" else "python")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = venv_dir / STAMP_FILE
    lines = stamp.read_text().splitlines() if stamp.exists() else []
    wanted = to_install(lines, digest, extras) if py.exists() else {e for e in extras.split(",") if e}
    if wanted is None:
        return
    if not py.exists():
        print(f"creating virtual environment in {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
        subprocess.run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        lines = []
    union = ",".join(sorted(wanted))
    print(f"installing surefoot[{union}] (editable)", flush=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "-e", f"{ROOT}[{union}]"], check=True)
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
    if task == "test-no-extras":
        return _test_no_extras(rest)
    _ensure_env(EXTRAS[task])
    os.chdir(ROOT)
    if task == "demo":
        cmd = [BIN / "surefoot", "demo", *rest]
    elif task == "test":
        if os.environ.get("SUREFOOT_COVERAGE", "") not in ("", "0", "false", "no"):
            return _test_with_coverage(rest)
        cmd = [PY, "-m", "pytest", *rest]
    elif task == "lint":
        cmd = [BIN / "ruff", "check", "src", "tests", "benchmarks", "dev.py", *(["examples"] if (ROOT / "examples").exists() else []), *rest]
    elif task == "types":
        cmd = [BIN / "mypy", *rest]
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


def _test_with_coverage(args: list[str]) -> int:
    """The suite under coverage (lines and branches of the package), then the gate."""
    data = ROOT / ".coverage"
    data.unlink(missing_ok=True)
    code = run_forwarding_signals([str(PY), "-m", "coverage", "run", "-m", "pytest", *args])
    if code == 5:
        print("pytest collected no tests: that is a failure, not a pass", file=sys.stderr)
    if code != 0:
        return code
    report = ROOT / "coverage.json"
    subprocess.run([PY, "-m", "coverage", "json", "-q", "-o", str(report)], check=True)
    lines, branches = COVERAGE_GATE
    return subprocess.call(
        [PY, str(ROOT / ".ci" / "coverage_gate.py"), str(report), "--lines", lines, "--branches", branches]
    )


def _test_no_extras(args: list[str]) -> int:
    """The suite in an environment with surefoot and its test tools but no optional extra.

    What needs an extra is skipped by name (``tests/_no_extras.py``); the core must import
    and work without any.
    """
    _ensure_env(EXTRAS["test-no-extras"], CORE_VENV)
    os.chdir(ROOT)
    py = CORE_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = dict(os.environ, SUREFOOT_NO_EXTRAS="1")
    code = subprocess.call([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], env=env)
    if code == 5:
        print("pytest collected no tests: that is a failure, not a pass", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
