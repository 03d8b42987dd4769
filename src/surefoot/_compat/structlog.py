"""structlog: importing it without rich (or greenlet); the two reads of its state the access
line's direct path needs.

The access line skips structlog's processor chain only when that chain is exactly surefoot's
and no context variable is bound; structlog exposes neither fact publicly, so
:func:`structlog_config` returns its global configuration object (``structlog._config._CONFIG``)
and :func:`structlog_context_vars` its table of bound context variables
(``structlog.contextvars._CONTEXT_VARS``). Either returns ``None`` when a release lays them
out otherwise, and every line then takes structlog's public chain (slower, never wrong).

``import structlog`` imports ``structlog.dev`` and ``structlog.tracebacks``, which import
rich when it is installed (typer, surefoot's CLI dependency, installs it), for their
optional pretty tracebacks. That is about half of ``import surefoot``'s time and 4 MiB of
memory, for a feature surefoot does not use: its console lines render tracebacks with
``structlog.dev.plain_traceback`` and its JSON lines with the stdlib formatter.

:func:`import_structlog` therefore imports structlog, when nothing has imported it yet,
while ``import rich`` is made to fail (``sys.modules["rich"] = None``, the documented way to
block an import); rich stays importable for everything else afterwards. The only visible
effect is on structlog features surefoot does not use: a ``structlog.dev.ConsoleRenderer``
of your own renders plain tracebacks instead of rich ones. To keep rich there, import
structlog before surefoot or set ``SUREFOOT_STRUCTLOG_RICH=1``. The same is done for
greenlet (installed with SQLAlchemy's asyncio extra), which only the deprecated
``structlog.threadlocal`` would use; SQLAlchemy imports it normally when it needs it.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

__all__ = ["import_structlog", "structlog_config", "structlog_context_vars"]

# optional imports of structlog that surefoot does not use (already imported ones are kept)
_OPTIONAL = ("rich", "greenlet")


def import_structlog() -> ModuleType:
    """Return structlog, imported without rich unless something imported either already."""
    existing = sys.modules.get("structlog")
    if existing is not None:
        return existing
    if os.environ.get("SUREFOOT_STRUCTLOG_RICH", "").lower() in ("1", "true", "yes"):
        import structlog

        return structlog
    blocked = [name for name in _OPTIONAL if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import structlog
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return structlog


def structlog_config() -> Any:
    """structlog's global configuration (``default_processors`` ...), or ``None``."""
    structlog = import_structlog()
    config = getattr(getattr(structlog, "_config", None), "_CONFIG", None)
    return config if hasattr(config, "default_processors") else None


def structlog_context_vars() -> dict[str, Any] | None:
    """structlog's bound context variables by key (``Ellipsis`` = unbound), or ``None``."""
    structlog = import_structlog()
    table = getattr(getattr(structlog, "contextvars", None), "_CONTEXT_VARS", None)
    return table if isinstance(table, dict) else None
