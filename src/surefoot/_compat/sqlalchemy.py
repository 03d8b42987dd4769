"""The one place surefoot reads something SQLAlchemy does not expose publicly.

``QueuePool`` answers ``size()``, ``checkedin()``, ``checkedout()`` and ``overflow()``, but
not its ``max_overflow``; the pool's maximum (needed for "connections in use > 80 % of the
maximum") is ``size() + max_overflow``. :func:`max_overflow` reads it from the pool's private
attribute and returns ``None`` when a SQLAlchemy release lays the pool out otherwise, in which
case ``instrument_engine(..., max_connections=N)`` supplies the maximum.
"""

from __future__ import annotations

from typing import Any

__all__ = ["max_overflow"]


def max_overflow(pool: Any) -> int | None:
    """Return the pool's ``max_overflow`` (``-1`` = unlimited) or ``None`` if unknown."""
    value = getattr(pool, "_max_overflow", None)
    return value if isinstance(value, int) else None


EXECUTE_METHODS: tuple[str, ...] = ("do_execute", "do_executemany", "do_execute_no_params")


def wrap_dialect(dialect: Any, wrappers: dict[str, Any]) -> Any:
    """Shadow the dialect instance's execute methods with ``wrappers[name](original)``.

    SQLAlchemy calls ``self.dialect.do_execute(...)`` (and its two siblings) for every
    statement; a wrapper on the one dialect instance of an engine times them without the
    dispatch that a ``DialectEvents`` listener costs on each execution (about 0.3 µs, a third of
    the instrumentation's budget on a trivial SQLite query). Listeners that other code registers
    for these events still run first, exactly as before.

    Returns:
        A function undoing the change (it leaves alone a method someone replaced after us), or
        ``None`` when the dialect does not allow it; the caller then uses ``DialectEvents``.
    """
    installed: list[tuple[str, Any, bool, Any]] = []
    try:
        for name in EXECUTE_METHODS:
            original = getattr(dialect, name)
            had_own = name in getattr(dialect, "__dict__", {})
            wrapper = wrappers[name](original)
            setattr(dialect, name, wrapper)
            installed.append((name, wrapper, had_own, original))
    except (AttributeError, TypeError):
        _undo(dialect, installed)
        return None

    def undo() -> None:
        _undo(dialect, installed)

    return undo


def _undo(dialect: Any, installed: list[tuple[str, Any, bool, Any]]) -> None:
    for name, wrapper, had_own, original in reversed(installed):
        if getattr(dialect, name, None) is not wrapper:
            continue
        if had_own:
            setattr(dialect, name, original)
        else:
            delattr(dialect, name)
    installed.clear()
