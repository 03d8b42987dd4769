"""An outbox kept in memory, on which the real :class:`Dispatcher` runs.

:class:`MemoryStore` implements the store protocol of :mod:`._stores` with the same
semantics as the SQL store: claims are leases guarded by a token, attempts are counted at
claim time, failures wait in backoff, dead letters leave the table, ordering per ``key`` holds
a key's later events until the earlier ones are done, paused patterns are never claimed. It
is for tests and for processes that need no durability; nothing survives the process.

It implements :class:`~surefoot.outbox.Store`. ``outbox.add(store, ...)`` writes into it
(any object with ``add_event(event, available_at=None)`` stands in for a connection), and a
running dispatcher on it is woken at once by each new event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

from .._core.clock import SYSTEM_CLOCK, Clock
from ._event import Event
from ._store_types import Claimed, Stats

__all__ = ["MemoryStore", "MemoryRow"]


@dataclasses.dataclass
class MemoryRow:
    """One event in a :class:`MemoryStore` (the columns of ``outbox_events``)."""

    id: int
    event: Event
    created_at: dt.datetime
    available_at: dt.datetime
    attempts: int = 0
    claim_token: str | None = None
    claimed_until: dt.datetime | None = None
    dispatched_at: dt.datetime | None = None
    last_error: str | None = None


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class _Statements:
    """The claim/settle operations for one name filter (the SQL store's ``SqlStatements``)."""

    def __init__(self, *, include: Sequence[str] | None, exclude: Sequence[str], ordering: bool) -> None:
        self.include = None if include is None or "*" in include else list(include)
        self.exclude = list(exclude)
        self.ordering = ordering

    def _wanted(self, name: str) -> bool:
        if self.include is not None and not _matches(name, self.include):
            return False
        return not (self.exclude and _matches(name, self.exclude))

    def claim(self, conn: MemoryStore, *, now: dt.datetime, lease_seconds: float, limit: int, token: str) -> list[Any]:
        until = now + dt.timedelta(seconds=lease_seconds)
        blocked: set[str] = set()
        due: list[MemoryRow] = []
        for row in conn.rows.values():  # in id order
            if row.dispatched_at is not None:
                continue
            key = row.event.key
            if self.ordering and key is not None:
                if key in blocked:
                    continue
                blocked.add(key)  # only the oldest pending event of a key may go
            if row.available_at <= now and self._wanted(row.event.event_name):
                due.append(row)
        due.sort(key=lambda r: (r.available_at, r.id))
        out = []
        for row in sorted(due[:limit], key=lambda r: r.id):
            row.claim_token, row.claimed_until, row.available_at = token, until, until
            row.attempts += 1
            event = dataclasses.replace(row.event, outbox_id=row.id, attempts=row.attempts - 1)
            out.append(Claimed(event, row.created_at))
        return out

    @staticmethod
    def _owned(conn: MemoryStore, ids: Sequence[int], token: str) -> list[MemoryRow]:
        rows = (conn.rows.get(i) for i in ids)
        return [r for r in rows if r is not None and r.claim_token == token]

    def ack(self, conn: MemoryStore, ids: Sequence[int], *, token: str, now: dt.datetime) -> int:
        rows = self._owned(conn, ids, token)
        for row in rows:
            row.dispatched_at, row.claim_token, row.claimed_until, row.last_error = now, None, None, None
            conn.journal.append(("delivered", dataclasses.replace(row.event, outbox_id=row.id,
                                                                   attempts=row.attempts - 1)))
        return len(rows)

    def release(self, conn: MemoryStore, ids: Sequence[int], *, token: str, now: dt.datetime) -> int:
        rows = self._owned(conn, ids, token)
        for row in rows:
            row.claim_token, row.claimed_until, row.available_at = None, None, now
            row.attempts = max(0, row.attempts - 1)
        if rows:
            conn.notify()
        return len(rows)

    def fail(self, conn: MemoryStore, failures: Sequence[tuple[int, dt.datetime, str]], *, token: str) -> int:
        n = 0
        for i, at, error in failures:
            for row in self._owned(conn, [i], token):
                row.claim_token, row.claimed_until, row.available_at = None, None, at
                row.last_error = error[:4000]
                n += 1
        return n

    def dead_letter(self, conn: MemoryStore, failures: Sequence[tuple[int, str]], *, token: str,
                    now: dt.datetime) -> int:
        n = 0
        for i, error in failures:
            for row in self._owned(conn, [i], token):
                del conn.rows[row.id]
                row.claim_token, row.claimed_until, row.last_error = None, None, error[:4000]
                event = dataclasses.replace(row.event, outbox_id=row.id, attempts=row.attempts)
                conn.dead_letters.append((event, row.last_error, now))
                conn.journal.append(("dead", event))
                n += 1
        return n


class _Ops:
    """The operations the dispatcher runs besides claiming (stats, kill switch, retention)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def stats(self, conn: MemoryStore) -> Any:
        now = conn.clock.time()
        pending = [r for r in conn.rows.values() if r.dispatched_at is None]
        oldest = min((r.created_at.timestamp() for r in pending), default=now)
        leased = sum(
            1 for r in pending if r.claim_token is not None and r.claimed_until is not None
            and r.claimed_until.timestamp() > now
        )
        return Stats(pending=len(pending), lag_seconds=max(0.0, now - oldest), in_flight=leased,
                     dead_letters=len(conn.dead_letters))

    def paused_patterns(self, conn: MemoryStore) -> list[tuple[str, str | None]]:
        return sorted(conn.paused.items())

    def delete_dispatched_batch(self, conn: MemoryStore, *, before: dt.datetime, limit: int) -> int:
        old = [r.id for r in conn.rows.values() if r.dispatched_at is not None and r.dispatched_at < before]
        for i in old[:limit]:
            del conn.rows[i]
        return min(len(old), limit)


class _Connection:
    """A worker's "connection": calls go straight to the store (no I/O, no thread)."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.store, *args)

    async def settle_after_cancel(self) -> Any:
        return None

    async def reset(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _Database:
    """The store seen as the dispatcher's database."""

    dialect = "memory"
    url = None
    write_lock = None
    disposed = False
    is_async = True

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.timeout = float("inf")

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(self.store, *args, **kwargs)

    def dedicated(self) -> _Connection:
        return _Connection(self.store)

    async def watch(self, dispatcher: Any) -> None:
        """Wake ``dispatcher`` on every new event until cancelled (the store's NOTIFY)."""
        self.store._listeners.append(dispatcher.wake)
        try:
            await asyncio.Event().wait()
        finally:
            self.store._listeners.remove(dispatcher.wake)

    async def dispose(self) -> None:
        return None


class MemoryStore:
    """An outbox in memory that the real :class:`Dispatcher` runs on.

    Example::

        store = outbox.MemoryStore()
        outbox.add(store, "CallDetected", {"call_sid": "CA1"})
        dispatcher = outbox.Dispatcher(store, handlers={"CallDetected": send_first_sms})
        await dispatcher.drain()          # or: async with dispatcher.running(): ...

    Args:
        clock: the clock of ``created_at`` and of the lag (default: the system clock).

    Attributes:
        rows: pending and dispatched events by outbox id (:class:`MemoryRow`).
        dead_letters: ``(event, last_error, failed_at)`` of dead-lettered events.
        paused: the shared kill switch, ``{pattern: reason}``.
    """

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.rows: dict[int, MemoryRow] = {}
        self.dead_letters: list[tuple[Event, str, dt.datetime]] = []
        self.paused: dict[str, str | None] = {}
        self.journal: list[tuple[str, Event]] = []
        """``("delivered" | "dead", event)`` in the order they happened."""
        self._next_id = 1
        self._listeners: list[Callable[[], None]] = []
        self.database = _Database(self)
        self.ops = _Ops(self)

    def statements(self, *, include: list[str], exclude: list[str], ordering: bool) -> _Statements:
        return _Statements(include=include, exclude=exclude, ordering=ordering)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.time(), dt.UTC)

    def add_event(self, event: Event, *, available_at: dt.datetime | None = None) -> Event:
        """Store an event built by :func:`surefoot.outbox.build_event`; returns it with its
        ``outbox_id`` (what :func:`surefoot.outbox.add` does with a store as ``conn``)."""
        now = self._now()
        if any(r.event.event_id == event.event_id for r in self.rows.values()):
            raise ValueError(f"event_id {event.event_id!r} is already in the outbox")
        stored = dataclasses.replace(event, outbox_id=self._next_id, attempts=0)
        self.rows[self._next_id] = MemoryRow(
            id=self._next_id, event=stored, created_at=now, available_at=available_at or now
        )
        self._next_id += 1
        self.notify()
        return stored

    def notify(self) -> None:
        """Wake the dispatchers running on this store."""
        for wake in list(self._listeners):
            wake()

    @property
    def pending(self) -> list[Event]:
        """Events not yet dispatched nor dead-lettered, in id order."""
        return [r.event for r in self.rows.values() if r.dispatched_at is None]

    def clear(self) -> None:
        """Forget every event and dead letter."""
        self.rows.clear()
        self.dead_letters.clear()
        self.journal.clear()
