"""Lazy imports of optional backends with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError


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
