"""The README tells a new user how to install, where every guide is, and only two set-up commands."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_guide_is_linked_and_every_link_resolves():
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)(?:#[^)]*)?\)", README))
    guides = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert guides <= linked, f"not linked from README: {sorted(guides - linked)}"
    assert all((ROOT / link).exists() for link in linked)


def test_install_line_and_every_extra_are_named():
    assert "pip install 'surefoot[fastapi]'" in README
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    install = README[README.index("## Install"):README.index("## Quickstart")]
    for extra in extras:
        if extra in ("test", "test-core", "bench", "lint"):
            continue  # development extras
        assert f"`{extra}`" in install, extra


def test_exactly_two_set_up_commands():
    setup = README[README.index("## Set-up"):]
    block = setup[setup.index("```") + 3:]
    block = block[:block.index("```")]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines() if line.strip()]
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]


def test_multi_worker_set_up_is_documented():
    assert "PROMETHEUS_MULTIPROC_DIR" in README and "run_uvicorn" in README and "on_starting" in README
