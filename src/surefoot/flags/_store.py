"""Flag overrides in the service's own database, and the thread that keeps each process current."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from .._core.extras import require
from ..errors import ConfigurationError, NotFoundError
from ..logging import get_logger
from . import _flag
from ._flag import FLAG_CHANGES, _state

__all__ = [
    "FlagStore",
    "clear_flag",
    "configure",
    "create_tables",
    "flag_changes_table",
    "flags_table",
    "refresh",
    "set_flag",
    "stop_refresher",
]

sa = require("sqlalchemy", "sql")

from .._sql import metadata  # noqa: E402

_log = get_logger("surefoot.flags")

flags_table = sa.Table(
    "feature_flags",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False, server_default=""),
)

flag_changes_table = sa.Table(
    "feature_flag_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(63), nullable=False, index=True),
    sa.Column("enabled", sa.Boolean, nullable=True),  # NULL: the override was cleared
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("changed_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False, server_default=""),
)

MAX_REASON = 500
MAX_ACTOR = 200


def _sync_engine(bind: Any) -> Any:
    """A sync Engine for a URL, an Engine, or an AsyncEngine (same database, sync driver)."""
    if isinstance(bind, str):
        try:
            url = sa.engine.make_url(bind)
        except sa.exc.ArgumentError:
            raise ConfigurationError(
                f"flags need a database URL like sqlite:///app.db or postgresql+psycopg://user@host/db; got {bind!r}"
            ) from None
    elif isinstance(bind, sa.engine.Engine):
        return bind
    elif hasattr(bind, "sync_engine"):
        url = bind.url
    else:
        raise ConfigurationError(f"flags need a database URL or a SQLAlchemy engine, not {bind!r}")
    driver = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}.get(url.drivername)
    if driver:
        url = url.set(drivername=driver)
    return sa.create_engine(url, pool_size=1, max_overflow=1) if url.get_backend_name() != "sqlite" else sa.create_engine(url)


def create_tables(bind: Any) -> None:
    """Create ``feature_flags`` and ``feature_flag_changes`` if missing (idempotent).

    Args:
        bind: a database URL, Engine, AsyncEngine or Connection.
    """
    if isinstance(bind, sa.engine.Connection):
        metadata.create_all(bind, tables=[flags_table, flag_changes_table])
        return
    engine = _sync_engine(bind)
    try:
        metadata.create_all(engine, tables=[flags_table, flag_changes_table])
    except sa.exc.DBAPIError:
        # Two processes creating the tables at once: the loser finds them on a second look.
        metadata.create_all(engine, tables=[flags_table, flag_changes_table])


class FlagStore:
    """Reads and writes flag overrides in ``feature_flags`` (any SQLAlchemy database).

    Args:
        bind: a database URL, Engine or AsyncEngine (an async one is reached through the
            matching sync driver).
    """

    def __init__(self, bind: Any) -> None:
        self.engine = _sync_engine(bind)

    def load(self) -> dict[str, dict[str, Any]]:
        """All overrides, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(flags_table)).mappings().all()
        return {
            row["name"]: {
                "enabled": bool(row["enabled"]),
                "updated_at": _iso(row["updated_at"]),
                "updated_by": row["updated_by"],
                "reason": row["reason"],
            }
            for row in rows
        }

    def write(self, name: str, enabled: bool | None, *, actor: str, reason: str) -> bool | None:
        """Set (or with ``None`` clear) one override; returns the previous override value."""
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            previous = conn.execute(
                sa.select(flags_table.c.enabled).where(flags_table.c.name == name)
            ).scalar_one_or_none()
            if enabled is None:
                conn.execute(flags_table.delete().where(flags_table.c.name == name))
            elif previous is None:
                try:
                    with conn.begin_nested():
                        conn.execute(flags_table.insert().values(
                            name=name, enabled=enabled, updated_at=now, updated_by=actor, reason=reason))
                except sa.exc.IntegrityError:  # set concurrently by another process: ours is the later write
                    conn.execute(flags_table.update().where(flags_table.c.name == name).values(
                        enabled=enabled, updated_at=now, updated_by=actor, reason=reason))
            else:
                conn.execute(flags_table.update().where(flags_table.c.name == name).values(
                    enabled=enabled, updated_at=now, updated_by=actor, reason=reason))
            conn.execute(flag_changes_table.insert().values(
                name=name, enabled=enabled, changed_at=now, changed_by=actor, reason=reason))
        return None if previous is None else bool(previous)

    def history(self, name: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The most recent flips, newest first."""
        query = sa.select(flag_changes_table).order_by(flag_changes_table.c.id.desc()).limit(limit)
        if name is not None:
            query = query.where(flag_changes_table.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            {"name": r["name"], "enabled": r["enabled"], "changed_at": _iso(r["changed_at"]),
             "changed_by": r["changed_by"], "reason": r["reason"]}
            for r in rows
        ]


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return str(value.isoformat())
    return str(value)


class _Refresher(threading.Thread):
    def __init__(self, interval: float) -> None:
        super().__init__(name="surefoot-flags", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()
        self.failing = False

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                refresh()
                if self.failing:
                    _log.info("flag_refresh_recovered")
                self.failing = False
            except Exception as exc:  # noqa: BLE001  (the database may be away: keep the last view)
                if not self.failing:
                    _log.warning("flag_refresh_failed", error_message=str(exc)[:200])
                self.failing = True


_refresher: _Refresher | None = None


def stop_refresher() -> None:
    """Stop the background refresher, if one runs."""
    global _refresher
    if _refresher is not None:
        _refresher.stopped.set()
        _refresher.join(5)
        _refresher = None


def configure(bind: Any, *, refresh_interval: float = 1.0, registry: Any = None, create: bool = True) -> FlagStore:
    """Share flag overrides through ``bind``'s database; keep this process current.

    Loads the overrides now, then refreshes them every ``refresh_interval`` seconds in a
    daemon thread (a change made by another process is seen within that time). Calling it
    again replaces the previous configuration.

    Args:
        bind: a database URL, Engine or AsyncEngine (the service's own database).
        refresh_interval: seconds between refreshes (``0``: load once, no thread).
        registry: Prometheus registry for the flag metrics (default: the process default).
        create: create the tables if they are missing.

    Returns:
        The :class:`FlagStore`.

    Raises:
        ConfigurationError: a negative interval or an unusable ``bind``.
    """
    global _refresher
    if refresh_interval < 0:
        raise ConfigurationError("refresh_interval must be >= 0 seconds")
    stop_refresher()
    store = FlagStore(bind)
    if create:
        create_tables(store.engine)
    with _state.lock:
        _state.store = store
        _state.registry = registry
    refresh()
    if refresh_interval > 0:
        _refresher = _Refresher(refresh_interval)
        _refresher.start()
    return store


def _require_store() -> FlagStore:
    store = _state.store
    if store is None:
        raise ConfigurationError(
            "flags are not connected to a database: call surefoot.flags.configure(engine_or_url) first"
        )
    return store  # type: ignore[no-any-return]


def refresh() -> dict[str, bool]:
    """Reload the overrides from the database now; returns them."""
    store = _require_store()
    _flag.apply_overrides(store.load(), source="remote")
    return dict(_state.overrides)


def _validated(name: str, actor: str, reason: str) -> None:
    if not _flag._NAME.match(name or ""):
        raise NotFoundError(resource="Flag", identifier=name)
    if not actor or len(actor) > MAX_ACTOR:
        raise ConfigurationError(f"actor must be 1 to {MAX_ACTOR} characters")
    if len(reason) > MAX_REASON:
        raise ConfigurationError(f"reason must be at most {MAX_REASON} characters")


def set_flag(name: str, enabled: bool, *, actor: str, reason: str = "", source: str = "api") -> dict[str, Any]:
    """Set a runtime override of flag ``name`` for every connected process.

    The flip is written to ``feature_flags`` (and the audit table ``feature_flag_changes``),
    logged at WARNING as ``flag_set`` with the actor and reason, counted in
    ``feature_flag_changes_total{flag,source}``, and applied in this process at once.

    Args:
        name: the flag (it need not be declared in this process, e.g. from the CLI).
        enabled: the new value.
        actor: who flips it (a user, ``cli:alice``, ``admin-endpoint``).
        reason: why (shown in logs, ``surefoot flags list`` and the status page).
        source: ``api``, ``cli`` or ``admin`` (the metric's label).

    Returns:
        ``{"name", "enabled", "previous"}``.

    Raises:
        ConfigurationError: flags are not configured, ``enabled`` is not a bool, or
            ``actor``/``reason`` is invalid.
        NotFoundError: ``name`` is not a valid flag name.
    """
    _validated(name, actor, reason)
    if not isinstance(enabled, bool):
        raise ConfigurationError(
            f"enabled must be True or False; got {enabled!r} (read text with surefoot.flags.parse_bool)"
        )
    store = _require_store()
    previous = store.write(name, enabled, actor=actor, reason=reason)
    _log.warning("flag_set", flag=name, enabled=bool(enabled), previous=previous, actor=actor,
                 reason=reason, source=source)
    FLAG_CHANGES.get(_state.registry).labels(flag=name, source=source).inc()
    _flag.apply_overrides(store.load(), source=source)
    return {"name": name, "enabled": bool(enabled), "previous": previous}


def clear_flag(name: str, *, actor: str, reason: str = "", source: str = "api") -> dict[str, Any]:
    """Remove the runtime override of ``name``: every process falls back to its default.

    Logged (``flag_cleared``) and counted like :func:`set_flag`.
    """
    _validated(name, actor, reason)
    store = _require_store()
    previous = store.write(name, None, actor=actor, reason=reason)
    _log.warning("flag_cleared", flag=name, previous=previous, actor=actor, reason=reason, source=source)
    FLAG_CHANGES.get(_state.registry).labels(flag=name, source=source).inc()
    _flag.apply_overrides(store.load(), source=source)
    return {"name": name, "enabled": None, "previous": previous}
