"""structlog: importing it without rich (or greenlet), which surefoot's logging never uses.

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

__all__ = ["import_structlog"]

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
