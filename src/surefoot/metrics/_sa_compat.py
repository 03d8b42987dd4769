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
