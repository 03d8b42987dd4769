"""Where a dispatcher keeps its events: the SQL store (PostgreSQL, SQLite) or a custom one.

The dispatcher talks to a store through one small protocol, :class:`Store`:

* ``database``: runs ``fn(conn, *args)`` in one short transaction (``run``), gives each worker
  a connection of its own (``dedicated``), and has ``dialect``, ``url``, ``write_lock``,
  ``disposed`` and ``dispose()``;
* ``statements(include=, exclude=, ordering=)``: the claim/ack/fail/dead-letter/release
  operations for one name filter, each taking the ``conn`` the database hands out;
* ``ops``: ``stats``, ``paused_patterns`` and ``delete_dispatched_batch`` over a ``conn``.

:class:`SqlStore` is :mod:`._database` plus :mod:`._store`;
:class:`~surefoot.outbox.MemoryStore` keeps the same operations in memory, so the real
dispatcher runs in tests without a database.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ._settings import OutboxSettings

__all__ = ["Store", "SqlStore", "open_store"]


@runtime_checkable
class Store(Protocol):
    """What a dispatcher needs from the place its events live."""

    database: Any
    ops: Any

    def statements(self, *, include: list[str], exclude: list[str], ordering: bool) -> Any: ...


class SqlStore:
    """The SQL store: a database URL, ``Engine`` or ``AsyncEngine``."""

    def __init__(self, bind: Any, settings: OutboxSettings) -> None:
        from . import _store
        from ._database import Database

        self.database = Database(bind, timeout=settings.db_timeout_seconds, threads=settings.concurrency + 2)
        self.ops = _store

    def statements(self, *, include: list[str], exclude: list[str], ordering: bool) -> Any:
        return self.ops.SqlStatements(self.database.dialect, include=include, exclude=exclude, ordering=ordering)


def open_store(bind: Any, settings: OutboxSettings) -> Any:
    """The backend for ``bind``: a store object as is, anything else as a SQL database."""
    if isinstance(bind, Store):
        return bind
    return SqlStore(bind, settings)
