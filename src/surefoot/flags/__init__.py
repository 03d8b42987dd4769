"""Runtime flags and kill switches shared by every process of a service.

    from surefoot import flags

    PAUSE = flags.Flag("pause_outbound_sms", default=False)   # default from PAUSE_OUTBOUND_SMS
    flags.configure(engine)                                    # overrides shared through the database
    if PAUSE.enabled: ...                                      # a dictionary lookup
    flags.set("pause_outbound_sms", True, actor="alice", reason="Twilio 5xx")

From the command line: ``surefoot flags list|set|clear|history --url URL``; over HTTP:
``app.mount("/admin/flags", flags.admin_app())`` (bearer token). Every flip is logged and
counted in ``feature_flag_changes_total{flag,source}``; ``feature_flag_enabled{flag}`` shows
each declared flag's value. Importing this package does not import SQLAlchemy.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from ._flag import Flag, declared, get_flag, parse_bool, reset

__all__ = [
    "Flag",
    "FlagStore",
    "admin_app",
    "clear",
    "configure",
    "create_tables",
    "declared",
    "get_flag",
    "history",
    "parse_bool",
    "refresh",
    "reset",
    "set",
]


def set(name: str, enabled: bool, *, actor: str, reason: str = "", source: str = "api") -> dict[str, Any]:
    """Set a shared runtime override (see :func:`surefoot.flags._store.set_flag`).

    Args:
        name: the flag's name.
        enabled: the new value.
        actor: who flips it.
        reason: why.
        source: the metric label (``api``, ``cli``, ``admin``).

    Returns:
        ``{"name", "enabled", "previous"}``.

    Raises:
        ConfigurationError: :func:`configure` was not called, or the actor/reason is invalid.
        NotFoundError: the name is not a valid flag name.
    """
    from ._store import set_flag

    return set_flag(name, enabled, actor=actor, reason=reason, source=source)


def clear(name: str, *, actor: str, reason: str = "", source: str = "api") -> dict[str, Any]:
    """Remove the override of ``name``; every process returns to its default."""
    from ._store import clear_flag

    return clear_flag(name, actor=actor, reason=reason, source=source)


def history(name: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest flips (newest first) from the audit table ``feature_flag_changes``.

    Raises:
        ConfigurationError: :func:`configure` was not called, or ``limit`` is not at least 1.
    """
    from ._store import _require_store

    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"limit must be a whole number >= 1; got {limit!r}")
    return _require_store().history(name, limit)


_LAZY = {
    "configure": "._store",
    "refresh": "._store",
    "create_tables": "._store",
    "FlagStore": "._store",
    "admin_app": "._admin",
}

from .._core.extras import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
