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
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SUREFOOT_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")

EXTRAS = {"demo": "all", "test": "all,test", "bench": "all,test,bench"}


def _ensure_env(extras: str) -> None:
    stamp_text = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest() + extras
    stamp = VENV / ".surefoot-installed"
    if stamp.exists() and stamp_text in stamp.read_text().splitlines():
        return
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        subprocess.run([PY, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    print(f"installing surefoot[{extras}] (editable)", flush=True)
    subprocess.run([PY, "-m", "pip", "install", "-q", "-e", f"{ROOT}[{extras}]"], check=True)
    lines = stamp.read_text().splitlines() if stamp.exists() else []
    lines = [line for line in lines if not line.startswith(stamp_text[:64])]
    stamp.write_text("\n".join([*lines, stamp_text]) + "\n")


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
    code = subprocess.call([str(c) for c in cmd])
    if task == "test" and code == 5:
        print("pytest collected no tests: that is a failure, not a pass", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
