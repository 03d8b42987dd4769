"""Find (or fetch, through .ci/prometheus) Debian's promtool and prometheus binaries."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests._services import required

ROOT = Path(__file__).resolve().parents[3]


@functools.cache
def _bin_dir() -> tuple[Path | None, str]:
    env = os.environ.get("SUREFOOT_PROMETHEUS_BIN")
    candidates = [Path(env) if Path(env).is_absolute() else ROOT / env] if env else []
    candidates.append(ROOT / ".cache/prometheus/usr/bin")
    which = shutil.which("promtool")
    if which:
        candidates.append(Path(which).parent)
    for candidate in candidates:
        if (candidate / "promtool").exists() and (candidate / "prometheus").exists():
            return candidate, ""
    try:
        out = subprocess.run(["bash", str(ROOT / ".ci/prometheus")], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"could not run .ci/prometheus: {exc}"
    if out.returncode != 0:
        return None, f".ci/prometheus failed: {out.stderr.strip()[-300:]}"
    path = Path(out.stdout.strip().splitlines()[-1])
    path = path if path.is_absolute() else ROOT / path
    return (path, "") if (path / "promtool").exists() else (None, f"no promtool in {path}")


def prometheus_bin(name: str) -> Path:
    """Path of ``promtool`` or ``prometheus``; skip (fail under SUREFOOT_REQUIRE_SERVICES=1) without it."""
    directory, problem = _bin_dir()
    if directory is None:
        message = f"{name} is not available ({problem}); run .ci/prometheus"
        if required():
            pytest.fail(message + "; SUREFOOT_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(message)
    return directory / name
