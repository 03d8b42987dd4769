"""Lazy imports of optional backends with an error that names the extra to install."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from ..errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``surefoot[extra]``.

    Args:
        module: the dotted module name, e.g. ``"nats"``.
        extra: the surefoot extra that installs it, e.g. ``"nats"``.

    Raises:
        MissingExtraError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra) from exc


def lazy_exports(
    namespace: dict[str, Any], exports: Mapping[str, str | tuple[str, str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build a package's ``__getattr__`` and ``__dir__`` that import names on first use.

    Keeps ``import surefoot.<area>`` free of optional backends: each name is imported from
    its private module (relative to the package) the first time it is read, then cached in
    the package namespace.

    Args:
        namespace: the package's ``globals()``.
        exports: public name → ``".module"``, or ``(".module", "attribute")`` when the
            attribute has another name there.

    Returns:
        ``(__getattr__, __dir__)`` to assign in the package.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = (target, name) if isinstance(target, str) else target
        value = getattr(importlib.import_module(module, package), attribute)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
