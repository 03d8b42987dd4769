"""The reference service is the model users copy: it may import only surefoot's public API."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[3] / "examples" / "missed_call"


def _guarded(tree: ast.AST) -> set[int]:
    """Ids of import nodes inside ``try: ... except ImportError`` (optional parts of surefoot)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            ids |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return ids


def _surefoot_imports() -> list[tuple[str, str, str | None, bool]]:
    found = []
    for path in sorted(SERVICE.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        guarded = _guarded(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "surefoot":
                found += [(path.name, node.module, alias.name, id(node) in guarded) for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [(path.name, alias.name, None, id(node) in guarded) for alias in node.names
                          if alias.name.split(".")[0] == "surefoot"]
    return found


def test_only_public_modules_and_names() -> None:
    imports = _surefoot_imports()
    assert imports, "the service must use surefoot"
    for filename, module, name, optional in imports:
        assert not any(part.startswith("_") for part in module.split(".")), f"{filename}: private module {module}"
        if name is None:
            continue
        assert not name.startswith("_"), f"{filename}: private name {module}.{name}"
        imported = importlib.import_module(module)
        public = getattr(imported, "__all__", None)
        is_submodule = importlib.util.find_spec(f"{module}.{name}") is not None if hasattr(imported, "__path__") else False
        exists = hasattr(imported, name) or is_submodule
        if optional and not exists:
            continue  # a part of surefoot this installation does not have yet; the import is guarded
        assert public is None or name in public or is_submodule, f"{filename}: {module}.{name} is not public"
