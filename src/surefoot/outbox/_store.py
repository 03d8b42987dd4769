"""Every SQL statement of the outbox, named and kept together; only this module issues them.

Functions take a sync SQLAlchemy ``Connection`` (async callers use ``AsyncConnection.run_sync``)
and run inside the caller's transaction. Times are passed in (UTC ``datetime``) so the
dispatcher's injected clock decides what is due; only ``created_at`` and lag come from the
database clock.

Commit order per key (PostgreSQL): ids come from a sequence when the row is inserted, not
when its transaction commits. A key's next event is claimable only when no older pending
event of that key is visible, so events are delivered in the order they become visible
(commit order); among events committed before a dispatcher looks, insertion order. Writers
that serialise on the business row of the key (the usual case) make both the same.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Sequence
from typing import Any

from .._core.extras import require

require("sqlalchemy", "sql")

import orjson  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from ._event import Event  # noqa: E402
from ._schema import _TS  # noqa: E402
from ._store_types import Claimed, Stats  # noqa: E402

__all__ = ["SqlStatements", "Claimed", "Stats"]

_EVENT_COLS = (
    "id, event_id, event_name, schema_version, key, tenant_id, correlation_id, causation_id, "
    "payload, headers, occurred_at, created_at, attempts"
)
_DL_COPY_COLS = (
    "event_id, event_name, schema_version, key, tenant_id, correlation_id, causation_id, "
    "payload, headers, occurred_at, created_at"
)


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _rowcount(result: Any) -> int:
    """The rows a statement matched (the driver's ``rowcount``)."""
    count: int = result.rowcount
    return count


def _ts(value: Any) -> dt.datetime:
    """A timestamp as the driver returns it (datetime, or SQLite's UTC text) → aware UTC."""
    parsed: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return _utc(parsed)


class SqlStatements:
    """The outbox statements for one dialect and one name filter.

    Args:
        dialect: ``"postgresql"`` or ``"sqlite"``.
        include: event name patterns this dispatcher handles (``None``: all).
        exclude: paused event name patterns (never claimed).
        ordering: claim only the oldest pending event of each key.
    """

    def __init__(
        self,
        dialect: str,
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        ordering: bool = True,
    ) -> None:
        if dialect not in ("postgresql", "sqlite"):
            from ..errors import ConfigurationError

            raise ConfigurationError(
                f"the outbox supports PostgreSQL and SQLite, not {dialect!r}"
            )
        self.dialect = dialect
        self.pg = dialect == "postgresql"
        self.include = None if include is None or "*" in include else sorted(set(include))
        self.exclude = sorted(set(exclude))
        self.ordering = ordering
        self._claim = self._build_claim()
        ids = "= ANY(:ids)" if self.pg else "IN :ids"
        expanding: tuple[Any, ...] = () if self.pg else (sa.bindparam("ids", expanding=True),)
        self._ack = sa.text(
            "UPDATE outbox_events SET dispatched_at = :now, claim_token = NULL, "
            f"claimed_until = NULL, last_error = NULL WHERE id {ids} AND claim_token = :token"
        ).bindparams(*expanding, sa.bindparam("now", type_=_TS))
        self._release = sa.text(
            "UPDATE outbox_events SET claim_token = NULL, claimed_until = NULL, "
            "available_at = :now, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END "
            f"WHERE id {ids} AND claim_token = :token"
        ).bindparams(*expanding, sa.bindparam("now", type_=_TS))
        self._fail = sa.text(
            "UPDATE outbox_events SET claim_token = NULL, claimed_until = NULL, "
            "available_at = :available_at, last_error = :error "
            "WHERE id = :id AND claim_token = :token"
        ).bindparams(sa.bindparam("available_at", type_=_TS))
        if self.pg:
            self._dead = [
                sa.text(
                    "WITH moved AS (DELETE FROM outbox_events WHERE id = :id AND claim_token = :token "
                    f"RETURNING id, {_DL_COPY_COLS}, attempts) "
                    f"INSERT INTO outbox_dead_letters (outbox_id, {_DL_COPY_COLS}, attempts, last_error, failed_at) "
                    f"SELECT id, {_DL_COPY_COLS}, attempts, :error, :now FROM moved"
                ).bindparams(sa.bindparam("now", type_=_TS))
            ]
        else:
            # SQLite serialises writers: the first statement takes the write lock, so nothing
            # can reclaim the row between the copy and the delete.
            self._dead = [
                sa.text(
                    f"INSERT INTO outbox_dead_letters (outbox_id, {_DL_COPY_COLS}, attempts, last_error, failed_at) "
                    f"SELECT id, {_DL_COPY_COLS}, attempts, :error, :now FROM outbox_events "
                    "WHERE id = :id AND claim_token = :token"
                ).bindparams(sa.bindparam("now", type_=_TS)),
                sa.text("DELETE FROM outbox_events WHERE id = :id AND claim_token = :token"),
            ]

    # -- claiming -----------------------------------------------------------------------

    def _filters(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        binds: list[Any] = []
        if self.include is not None:
            exact = [p for p in self.include if "*" not in p]
            likes = [p for p in self.include if "*" in p]
            parts = []
            if exact:
                parts.append("e.event_name IN :include_names")
                binds.append(sa.bindparam("include_names", value=exact, expanding=True))
            for i, pattern in enumerate(likes):
                parts.append(f"e.event_name LIKE :include_like_{i} ESCAPE '\\'")
                binds.append(sa.bindparam(f"include_like_{i}", value=_like(pattern)))
            clauses.append("(" + " OR ".join(parts) + ")" if parts else "1 = 0")
        if self.exclude:
            exact = [p for p in self.exclude if "*" not in p]
            likes = [p for p in self.exclude if "*" in p]
            if exact:
                clauses.append("e.event_name NOT IN :exclude_names")
                binds.append(sa.bindparam("exclude_names", value=exact, expanding=True))
            for i, pattern in enumerate(likes):
                clauses.append(f"e.event_name NOT LIKE :exclude_like_{i} ESCAPE '\\'")
                binds.append(sa.bindparam(f"exclude_like_{i}", value=_like(pattern)))
        if self.ordering:
            clauses.append(
                "(e.key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox_events p WHERE p.key = e.key "
                "AND p.dispatched_at IS NULL AND p.id < e.id))"
            )
        return "".join(f" AND {c}" for c in clauses), binds

    def _build_claim(self) -> Any:
        filters, binds = self._filters()
        pick = (
            "SELECT e.id FROM outbox_events e WHERE e.dispatched_at IS NULL "
            f"AND e.available_at <= :now{filters} ORDER BY e.available_at, e.id LIMIT :limit"
        )
        sets = (
            "claim_token = :token, claimed_until = :until, available_at = :until, "
            "attempts = attempts + 1"
        )
        if self.pg:
            sql = (
                f"WITH picked AS ({pick} FOR UPDATE SKIP LOCKED) "
                f"UPDATE outbox_events o SET {sets} FROM picked WHERE o.id = picked.id "
                "RETURNING " + ", ".join(f"o.{c.strip()}" for c in _EVENT_COLS.split(","))
            )
        else:
            sql = f"UPDATE outbox_events SET {sets} WHERE id IN ({pick}) RETURNING {_EVENT_COLS}"
        # result columns are left untyped and decoded in claim(): orjson and fromisoformat
        # are several times faster than the generic result processors, per row
        return sa.text(sql).bindparams(
            *binds, sa.bindparam("now", type_=_TS), sa.bindparam("until", type_=_TS)
        )

    def claim(
        self, conn: Any, *, now: dt.datetime, lease_seconds: float, limit: int, token: str
    ) -> list[Claimed]:
        """Claim up to ``limit`` due events in one statement, leasing them to ``token``."""
        until = now + dt.timedelta(seconds=lease_seconds)
        rows = conn.execute(
            self._claim, {"now": now, "until": until, "limit": limit, "token": token}
        ).all()
        rows.sort(key=lambda r: r[0])
        out = []
        for r in rows:
            payload, headers = r[8], r[9]
            event = Event(
                event_name=r[2],
                payload=(orjson.loads(payload) if isinstance(payload, (str, bytes)) else payload) or {},
                event_id=r[1],
                schema_version=r[3],
                occurred_at=_ts(r[10]),
                tenant_id=r[5],
                correlation_id=r[6],
                causation_id=r[7],
                key=r[4],
                headers=(orjson.loads(headers) if isinstance(headers, (str, bytes)) else headers) or {},
                outbox_id=r[0],
                attempts=r[12] - 1,
            )
            out.append(Claimed(event, _ts(r[11])))
        return out

    # -- settling -----------------------------------------------------------------------

    def ack(self, conn: Any, ids: Sequence[int], *, token: str, now: dt.datetime) -> int:
        """Mark delivered events dispatched (one statement); returns rows still ours."""
        if not ids:
            return 0
        return _rowcount(conn.execute(self._ack, {"ids": list(ids), "token": token, "now": now}))

    def release(self, conn: Any, ids: Sequence[int], *, token: str, now: dt.datetime) -> int:
        """Give claimed events back at once, undoing the attempt they were claimed for."""
        if not ids:
            return 0
        return _rowcount(conn.execute(self._release, {"ids": list(ids), "token": token, "now": now}))

    def fail(self, conn: Any, failures: Sequence[tuple[int, dt.datetime, str]], *, token: str) -> int:
        """Record failures ``(id, available_at, error)``: retried at ``available_at``."""
        if not failures:
            return 0
        params = [
            {"id": i, "available_at": at, "error": err[:4000], "token": token} for i, at, err in failures
        ]
        return _rowcount(conn.execute(self._fail, params))

    def dead_letter(
        self, conn: Any, failures: Sequence[tuple[int, str]], *, token: str, now: dt.datetime
    ) -> int:
        """Move events to ``outbox_dead_letters`` with their last error; returns rows moved."""
        if not failures:
            return 0
        params = [{"id": i, "error": err[:4000], "token": token, "now": now} for i, err in failures]
        moved: int = conn.execute(self._dead[0], params).rowcount
        for stmt in self._dead[1:]:
            conn.execute(stmt, params)
        return moved


# -- operations (CLI, retention, drain) ---------------------------------------------------


def stats(conn: Any) -> Stats:
    """Pending count, lag in seconds (database clock), in-flight count and dead letters."""
    if conn.dialect.name == "postgresql":
        lag = "EXTRACT(EPOCH FROM (clock_timestamp() - MIN(created_at)))"
        leased = "claimed_until > clock_timestamp()"
    else:
        lag = "(julianday('now') - julianday(MIN(created_at))) * 86400.0"
        leased = "claimed_until > strftime('%Y-%m-%d %H:%M:%f', 'now')"
    row = conn.exec_driver_sql(
        f"SELECT COUNT(*), {lag}, SUM(CASE WHEN claim_token IS NOT NULL AND {leased} THEN 1 ELSE 0 END) "
        "FROM outbox_events WHERE dispatched_at IS NULL"
    ).one()
    dead = conn.exec_driver_sql("SELECT COUNT(*) FROM outbox_dead_letters").scalar_one()
    return Stats(
        pending=int(row[0]),
        lag_seconds=max(0.0, float(row[1] or 0.0)),
        in_flight=int(row[2] or 0),
        dead_letters=int(dead),
    )


def pending_by_name(conn: Any) -> list[tuple[str, int, int, float]]:
    """``(event_name, pending, max attempts, lag seconds)`` per event name, most pending first."""
    if conn.dialect.name == "postgresql":
        lag = "EXTRACT(EPOCH FROM (clock_timestamp() - MIN(created_at)))"
    else:
        lag = "(julianday('now') - julianday(MIN(created_at))) * 86400.0"
    rows = conn.exec_driver_sql(
        f"SELECT event_name, COUNT(*), MAX(attempts), {lag} FROM outbox_events "
        "WHERE dispatched_at IS NULL GROUP BY event_name ORDER BY COUNT(*) DESC, event_name"
    ).all()
    return [(r[0], int(r[1]), int(r[2] or 0), max(0.0, float(r[3] or 0.0))) for r in rows]


def delete_dispatched_batch(conn: Any, *, before: dt.datetime, limit: int) -> int:
    """Delete up to ``limit`` events dispatched before ``before``; returns rows deleted.

    Called in a loop, each call in its own short transaction, so retention never holds
    long locks or bloats one transaction.
    """
    stmt = sa.text(
        "DELETE FROM outbox_events WHERE id IN (SELECT id FROM outbox_events "
        "WHERE dispatched_at IS NOT NULL AND dispatched_at < :before ORDER BY dispatched_at LIMIT :limit)"
    ).bindparams(sa.bindparam("before", type_=_TS))
    return _rowcount(conn.execute(stmt, {"before": before, "limit": limit}))


def delete_dead_batch(conn: Any, *, before: dt.datetime | None, limit: int) -> int:
    """Delete up to ``limit`` dead letters that failed before ``before`` (all when ``None``)."""
    where = "WHERE failed_at < :before" if before is not None else ""
    stmt = sa.text(
        f"DELETE FROM outbox_dead_letters WHERE id IN (SELECT id FROM outbox_dead_letters {where} "
        "ORDER BY id LIMIT :limit)"
    )
    if before is None:
        return _rowcount(conn.execute(stmt, {"limit": limit}))
    stmt = stmt.bindparams(sa.bindparam("before", type_=_TS))
    return _rowcount(conn.execute(stmt, {"before": before, "limit": limit}))


def count_dispatched_before(conn: Any, before: dt.datetime) -> int:
    stmt = sa.text(
        "SELECT COUNT(*) FROM outbox_events WHERE dispatched_at IS NOT NULL AND dispatched_at < :before"
    ).bindparams(sa.bindparam("before", type_=_TS))
    return int(conn.execute(stmt, {"before": before}).scalar_one())


def count_dead(conn: Any, before: dt.datetime | None = None) -> int:
    if before is None:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM outbox_dead_letters").scalar_one())
    stmt = sa.text("SELECT COUNT(*) FROM outbox_dead_letters WHERE failed_at < :before").bindparams(
        sa.bindparam("before", type_=_TS)
    )
    return int(conn.execute(stmt, {"before": before}).scalar_one())


def requeue_dead(
    conn: Any, *, ids: Sequence[int] | None = None, event_ids: Sequence[str] | None = None,
    event_name: str | None = None, limit: int = 1000, now: dt.datetime,
) -> int:
    """Move dead letters back into ``outbox_events`` as fresh pending events (attempts 0).

    Selects by dead-letter ``ids``, by ``event_ids``, by ``event_name`` pattern, or all (up
    to ``limit`` per call). Returns how many were requeued.
    """
    clauses = []
    binds: list[Any] = [sa.bindparam("now", type_=_TS)]
    params: dict[str, Any] = {"limit": limit, "now": now}
    if ids is not None:
        clauses.append("id IN :ids")
        binds.append(sa.bindparam("ids", expanding=True))
        params["ids"] = list(ids)
    if event_ids is not None:
        clauses.append("event_id IN :event_ids")
        binds.append(sa.bindparam("event_ids", expanding=True))
        params["event_ids"] = list(event_ids)
    if event_name is not None:
        clauses.append("event_name LIKE :pattern ESCAPE '\\'")
        params["pattern"] = _like(event_name)
    where = " AND ".join(clauses) or "1 = 1"
    picked = conn.execute(
        sa.text(f"SELECT id FROM outbox_dead_letters WHERE {where} ORDER BY id LIMIT :limit").bindparams(
            *[b for b in binds if b.key != "now"]
        ),
        params,
    ).scalars().all()
    if not picked:
        return 0
    stmt_ids: sa.BindParameter[Any] = sa.bindparam("picked", expanding=True)
    conn.execute(
        sa.text(
            f"INSERT INTO outbox_events ({_DL_COPY_COLS}, available_at, attempts, last_error) "
            f"SELECT {_DL_COPY_COLS}, :now, 0, last_error FROM outbox_dead_letters "
            "WHERE id IN :picked ORDER BY id"
        ).bindparams(stmt_ids, sa.bindparam("now", type_=_TS)),
        {"picked": list(picked), "now": now},
    )
    conn.execute(
        sa.text("DELETE FROM outbox_dead_letters WHERE id IN :picked").bindparams(
            sa.bindparam("picked", expanding=True)
        ),
        {"picked": list(picked)},
    )
    return len(picked)


def retry_now(conn: Any, *, event_ids: Sequence[str], now: dt.datetime) -> int:
    """Make pending events (e.g. waiting in backoff) due now and reset their attempts."""
    stmt = sa.text(
        "UPDATE outbox_events SET available_at = :now, attempts = 0, claim_token = NULL, "
        "claimed_until = NULL WHERE dispatched_at IS NULL AND event_id IN :event_ids"
    ).bindparams(sa.bindparam("event_ids", expanding=True), sa.bindparam("now", type_=_TS))
    return _rowcount(conn.execute(stmt, {"event_ids": list(event_ids), "now": now}))


def tail(conn: Any, *, limit: int = 20, dead: bool = False, after_id: int = 0) -> list[dict[str, Any]]:
    """The most recent events (or dead letters) with ``id > after_id``, oldest first."""
    if dead:
        cols = ("id, outbox_id, event_id, event_name, key, correlation_id, attempts, "
                "last_error, created_at, failed_at")
        table = "outbox_dead_letters"
    else:
        cols = ("id, event_id, event_name, key, correlation_id, attempts, last_error, "
                "created_at, available_at, dispatched_at")
        table = "outbox_events"
    rows = conn.execute(
        sa.text(
            f"SELECT * FROM (SELECT {cols} FROM {table} WHERE id > :after ORDER BY id DESC LIMIT :limit) t "
            "ORDER BY id"
        ),
        {"after": after_id, "limit": limit},
    ).mappings().all()
    return [dict(r) for r in rows]


def matches(name: str, patterns: Sequence[str]) -> bool:
    """True when ``name`` matches one of the ``*`` patterns."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


# -- kill switch shared by every dispatcher -------------------------------------------------


def paused_patterns(conn: Any) -> list[tuple[str, str | None]]:
    """The paused event name patterns stored in ``outbox_paused``, with their reasons."""
    rows = conn.exec_driver_sql("SELECT pattern, reason FROM outbox_paused ORDER BY pattern").all()
    return [(r[0], r[1]) for r in rows]


def pause(conn: Any, pattern: str, *, reason: str | None = None) -> bool:
    """Pause ``pattern`` for every dispatcher sharing the table; False if already paused."""
    exists = conn.execute(
        sa.text("SELECT 1 FROM outbox_paused WHERE pattern = :p"), {"p": pattern}
    ).first()
    if exists:
        return False
    conn.execute(
        sa.text("INSERT INTO outbox_paused (pattern, reason) VALUES (:p, :r)"), {"p": pattern, "r": reason}
    )
    return True


def resume(conn: Any, pattern: str | None = None) -> int:
    """Remove ``pattern`` (every pattern when ``None``) from the kill switch; returns how many."""
    if pattern is None:
        return _rowcount(conn.exec_driver_sql("DELETE FROM outbox_paused"))
    return _rowcount(conn.execute(sa.text("DELETE FROM outbox_paused WHERE pattern = :p"), {"p": pattern}))
