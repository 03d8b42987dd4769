"""The layering docs/architecture.md promises, read from the source (every import, lazy ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "surefoot"

#: The bottom layers: they import nothing of surefoot but each other.
CORE = {"_core", "_compat", "errors", "context"}
#: The face: may use any layer's internals.
FACE = {"__init__", "__main__", "_install", "cli", "demo", "testing"}

#: Private modules of one capability that another may use, and why. A new entry needs a reason.
ALLOWED_PRIVATE = {
    # the request path inlines the access line and the server span (the hot path)
    ("http", "surefoot.logging._setup"),
    ("http", "surefoot.tracing._api"),
    ("http", "surefoot.tracing._asgi"),
    ("http", "surefoot.tracing._exemplars"),
    # trace context travels in event, webhook and client headers: one set of hooks
    ("outbox", "surefoot.tracing._api"),
    ("outbox", "surefoot.tracing._hooks"),
    ("resilience", "surefoot.tracing._api"),
    ("resilience", "surefoot.tracing._hooks"),
    ("webhooks", "surefoot.tracing._hooks"),
    # a logged LLM or DB call also counts in its metrics
    ("logging", "surefoot.metrics._llm"),
}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_pkg)
    return found


def _imports() -> list[tuple[str, str]]:
    """(importing module, imported surefoot module) for every import statement."""
    modules = _modules()
    edges = []
    for name, (path, is_pkg) in modules.items():
        package = name if is_pkg else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.startswith("surefoot"):
                    # ``from .. import context`` imports the module surefoot.context
                    for alias in node.names:
                        sub = f"{module}.{alias.name}"
                        edges.append((name, sub if sub in modules else module))
            elif isinstance(node, ast.Import):
                edges.extend((name, alias.name) for alias in node.names if alias.name.startswith("surefoot"))
    return edges


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


EDGES = _imports()
MODULES = _modules()


def test_the_import_graph_is_read() -> None:
    assert len(MODULES) > 100
    assert ("surefoot.http._middleware", "surefoot._core.problem") in EDGES


@pytest.mark.parametrize("layer", sorted(CORE))
def test_the_core_imports_nothing_above_it(layer: str) -> None:
    above = sorted(
        f"{src} -> {dst}" for src, dst in EDGES
        if _area(src) == layer and _area(dst) not in CORE and dst in MODULES
    )
    assert above == []


def test_compat_imports_nothing_of_surefoot() -> None:
    assert [(s, d) for s, d in EDGES if _area(s) == "_compat" and _area(d) != "_compat"] == []


def test_no_cycle_between_capability_folders() -> None:
    graph: dict[str, set[str]] = {}
    for src, dst in EDGES:
        a, b = _area(src), _area(dst)
        if a != b and a not in FACE and b not in FACE and dst in MODULES:
            graph.setdefault(a, set()).add(b)
    # depth-first search for a back edge
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_production_code_never_imports_the_test_doubles() -> None:
    assert [(s, d) for s, d in EDGES if _area(d) == "testing" and _area(s) not in {"testing", "demo"}] == []


def test_private_modules_of_another_capability_only_where_documented() -> None:
    used = set()
    for src, dst in EDGES:
        a, b = _area(src), _area(dst)
        parts = dst.split(".")
        if (
            a != b and a not in FACE and b not in CORE and dst in MODULES
            and len(parts) > 2 and parts[2].startswith("_") and not parts[2].startswith("__")
        ):
            used.add((a, ".".join(parts[:3])))
    assert sorted(used - ALLOWED_PRIVATE) == []
