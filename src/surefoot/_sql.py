"""Shared SQLAlchemy metadata for surefoot's tables (outbox, inbox, idempotency keys).

Point Alembic's ``target_metadata`` at :data:`metadata` (or include it in a list) to have
surefoot's tables in your migrations. SQLAlchemy is imported lazily by the areas that need it;
this module must only be imported by them.
"""

from __future__ import annotations

from ._core.extras import require

require("sqlalchemy", "sql")

import sqlalchemy as sa  # noqa: E402

__all__ = ["metadata", "dialect_name", "check_engine_kind"]

metadata = sa.MetaData()


def dialect_name(bind: object) -> str:
    """Return ``"postgresql"``, ``"sqlite"``, ... for an Engine, Connection or Session (sync or async)."""
    for attr in ("dialect",):
        dialect = getattr(bind, attr, None)
        if dialect is not None:
            name: str = dialect.name
            return name
    for attr in ("bind", "engine", "sync_engine", "sync_connection"):
        inner = getattr(bind, attr, None)
        if inner is not None and inner is not bind:
            return dialect_name(inner)
    get_bind = getattr(bind, "get_bind", None)
    if get_bind is not None:
        bound_name: str = get_bind().dialect.name
        return bound_name
    raise TypeError(f"cannot tell the SQL dialect of {bind!r}")


def check_engine_kind(engine: object, *, want_async: bool, sync_call: str, async_call: str) -> None:
    """Refuse an ``AsyncEngine`` given to a sync function (or the reverse), naming the twin.

    ``sync_call`` / ``async_call`` are the two forms as a user writes them, e.g.
    ``"run_retention(engine, rules)"``; the message names the function called and the right one.
    """
    from .errors import ConfigurationError

    is_async = hasattr(engine, "sync_engine")  # an AsyncEngine
    if want_async and not is_async:
        called = async_call.split("(")[0]
        raise ConfigurationError(f"{called} needs an AsyncEngine; with a sync Engine call {sync_call}")
    if not want_async and is_async:
        called = sync_call.split("(")[0]
        raise ConfigurationError(f"{called} needs a sync Engine; with an AsyncEngine use `await {async_call}`")
