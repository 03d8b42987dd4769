"""Lazy imports of optional backends with an error that names the extra to install; regular
expressions compiled on first use."""

from __future__ import annotations

import importlib
import re
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


def lazy_pattern(
    namespace: dict[str, Any], name: str, pattern: str, method: str, flags: int = 0
) -> Callable[..., Any]:
    """Stand in for ``re.compile(pattern, flags).<method>`` at ``namespace[name]`` until first use.

    The first call compiles the pattern, puts the compiled pattern's bound method in its
    place (later calls reach it directly, at no extra cost) and returns the call's result:
    a pattern the process never uses is never compiled. Callers must read ``name`` from the
    module when they call it, not keep the stand-in.

    Args:
        namespace: the module's ``globals()``.
        name: the global the stand-in is assigned to.
        pattern: the regular expression.
        method: ``"search"``, ``"match"``, ``"sub"``, ...
        flags: ``re`` flags.
    """

    def first_call(*args: Any, **kwargs: Any) -> Any:
        bound = getattr(re.compile(pattern, flags), method)
        namespace[name] = bound
        return bound(*args, **kwargs)

    return first_call
