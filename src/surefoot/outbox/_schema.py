"""The outbox tables: ``outbox_events`` and ``outbox_dead_letters`` (SQLAlchemy Core).

Both live on :data:`surefoot._sql.metadata`, so Alembic picks them up when its
``target_metadata`` includes that metadata. :func:`create_tables` (and the CLI
``surefoot outbox migrate``) creates them directly, plus the PostgreSQL wake-up trigger.

Column layout and change data capture: the columns map one to one onto Debezium's outbox
event router, configured with ``table.field.event.id=event_id``,
``table.field.event.key=key``, ``table.field.event.type=event_name``,
``table.field.event.payload=payload`` and ``route.by.field=event_name``; a team can switch
from the dispatcher to CDC without a migration. The view ``outbox_events_debezium`` also
exposes the default names (``id``, ``aggregatetype``, ``aggregateid``, ``type``, ``payload``).

Lifecycle of a row: pending (``dispatched_at IS NULL``), claimed (``claim_token`` set and
``available_at`` pushed to the end of the lease), then dispatched (``dispatched_at`` set, kept
for the retention period) or moved to ``outbox_dead_letters``.
"""

from __future__ import annotations

from typing import Any

from .._core.extras import require

require("sqlalchemy", "sql")

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402
from sqlalchemy.ext.compiler import compiles  # noqa: E402
from sqlalchemy.sql.functions import FunctionElement  # noqa: E402

from .._sql import dialect_name, metadata  # noqa: E402

__all__ = [
    "events_table",
    "dead_letters_table",
    "paused_table",
    "create_tables",
    "drop_tables",
    "NOTIFY_CHANNEL",
    "db_now",
]

NOTIFY_CHANNEL = "surefoot_outbox"
"""The PostgreSQL ``LISTEN``/``NOTIFY`` channel the insert trigger notifies."""


class db_now(FunctionElement[Any]):  # noqa: N801  (reads like a SQL function)
    """The database clock with sub-second precision.

    PostgreSQL: ``clock_timestamp()`` (the time of the insert, not the start of the
    transaction, so commit → delivery durations are not inflated by long transactions).
    SQLite: ``strftime`` with milliseconds in UTC, in the text form SQLAlchemy reads back.
    """

    type = sa.DateTime(timezone=True)
    inherit_cache = True


@compiles(db_now)
def _db_now_default(element: Any, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(db_now, "postgresql")
def _db_now_pg(element: Any, compiler: Any, **kw: Any) -> str:
    return "clock_timestamp()"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"


_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY = rowid
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
_TS = sa.DateTime(timezone=True)


def _envelope_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_name", sa.String(255), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("key", sa.String(255), nullable=True),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("causation_id", sa.String(128), nullable=True),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("headers", _JSON, nullable=True),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False, server_default=db_now()),
    ]


events_table = sa.Table(
    "outbox_events",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    *_envelope_columns(),
    sa.Column("available_at", _TS, nullable=False, server_default=db_now()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("claim_token", sa.String(36), nullable=True),
    sa.Column("claimed_until", _TS, nullable=True),
    sa.Column("dispatched_at", _TS, nullable=True),
    sa.UniqueConstraint("event_id", name="uq_outbox_events_event_id"),
    comment="surefoot transactional outbox: pending, in-flight and recently dispatched events",
    # room on each page for the updates a row goes through (claim, ack)
    postgresql_with={"fillfactor": 80},
)

# Only pending rows are ever scanned by dispatchers: partial indexes keep the claim cheap
# however many dispatched rows wait for retention. The claim takes due rows oldest first
# (available_at, then id) as a range scan, so rows leased to a dispatcher or waiting in
# backoff (available_at in the future) are never even visited, even in an outage with a
# large backlog of failing events.
sa.Index(
    "ix_outbox_events_pending",
    events_table.c.available_at,
    events_table.c.id,
    postgresql_where=events_table.c.dispatched_at.is_(None),
    sqlite_where=events_table.c.dispatched_at.is_(None),
)
sa.Index(
    "ix_outbox_events_pending_key",
    events_table.c.key,
    events_table.c.id,
    postgresql_where=sa.and_(events_table.c.dispatched_at.is_(None), events_table.c.key.is_not(None)),
    sqlite_where=sa.and_(events_table.c.dispatched_at.is_(None), events_table.c.key.is_not(None)),
)
sa.Index(
    "ix_outbox_events_dispatched",
    events_table.c.dispatched_at,
    postgresql_where=events_table.c.dispatched_at.is_not(None),
    sqlite_where=events_table.c.dispatched_at.is_not(None),
)

dead_letters_table = sa.Table(
    "outbox_dead_letters",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("outbox_id", sa.BigInteger, nullable=False),
    *_envelope_columns(),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("failed_at", _TS, nullable=False, server_default=db_now()),
    sa.UniqueConstraint("event_id", name="uq_outbox_dead_letters_event_id"),
    comment="surefoot outbox events that exhausted their attempts or were refused for good",
)
sa.Index("ix_outbox_dead_letters_failed_at", dead_letters_table.c.failed_at)

paused_table = sa.Table(
    "outbox_paused",
    metadata,
    sa.Column("pattern", sa.String(255), primary_key=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("paused_at", _TS, nullable=False, server_default=db_now()),
    comment="surefoot outbox kill switch: event name patterns no dispatcher delivers",
)

_PG_NOTIFY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION surefoot_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- One notification per inserting statement; PostgreSQL folds identical notifications
    -- of one transaction into one, so a batch insert wakes dispatchers once.
    PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    RETURN NULL;
END $$
"""
_PG_NOTIFY_TRIGGER_DROP = "DROP TRIGGER IF EXISTS surefoot_outbox_notify ON outbox_events"
_PG_NOTIFY_TRIGGER = (
    "CREATE TRIGGER surefoot_outbox_notify AFTER INSERT ON outbox_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION surefoot_outbox_notify()"
)
_DEBEZIUM_VIEW = (
    "CREATE VIEW outbox_events_debezium AS SELECT event_id AS id, event_name AS aggregatetype, "
    "key AS aggregateid, event_name AS type, payload, created_at AS timestamp FROM outbox_events"
)


def _sync_bind(bind: Any) -> Any:
    if isinstance(bind, str):
        return sa.create_engine(bind)
    return bind


def create_tables(bind: Any, *, notify_trigger: bool = False) -> None:
    """Create the outbox tables, indexes and (PostgreSQL) wake-up trigger if missing.

    Idempotent: safe to run at every start-up or from a release phase. With Alembic, include
    :data:`surefoot._sql.metadata` in ``target_metadata`` instead and call this only for the
    trigger (or copy its SQL into a migration).

    Args:
        bind: a sync ``Engine`` or ``Connection``, or a URL. For an ``AsyncEngine`` use
            ``async with engine.begin() as conn: await conn.run_sync(create_tables)``.
        notify_trigger: on PostgreSQL, also install a statement-level trigger that sends
            ``NOTIFY surefoot_outbox`` on every insert. :func:`surefoot.outbox.add` already
            notifies once per transaction in its own insert statement; the trigger is for
            writers that bypass it (raw SQL, other languages). Without it (the default) the
            trigger is removed if present.

    Raises:
        TypeError: ``bind`` is an async engine or connection.
    """
    owned = isinstance(bind, str)
    bind = _sync_bind(bind)
    if type(bind).__name__.startswith("Async"):
        raise TypeError(
            "create_tables needs a sync engine or connection; with an AsyncEngine use "
            "`async with engine.begin() as conn: await conn.run_sync(create_tables)`"
        )
    try:
        if isinstance(bind, sa.engine.Engine):
            with bind.begin() as conn:
                _create(conn, notify_trigger)
        else:
            _create(bind, notify_trigger)
    finally:
        if owned:
            bind.dispose()


def _create(conn: Any, notify: bool) -> None:
    dialect = dialect_name(conn)
    metadata.create_all(conn, tables=[events_table, dead_letters_table, paused_table])
    inspector = sa.inspect(conn)
    if "outbox_events_debezium" not in inspector.get_view_names():
        conn.exec_driver_sql(_DEBEZIUM_VIEW)
    if dialect == "postgresql":
        # touch the trigger only when it must change: dropping or creating one locks the
        # table, and create_tables may run at every start-up next to working dispatchers
        present = conn.exec_driver_sql(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'surefoot_outbox_notify' "
            "AND tgrelid = 'outbox_events'::regclass"
        ).first() is not None
        if notify and not present:
            conn.exec_driver_sql(_PG_NOTIFY_FUNCTION)
            conn.exec_driver_sql(_PG_NOTIFY_TRIGGER)
        elif present and not notify:
            conn.exec_driver_sql(_PG_NOTIFY_TRIGGER_DROP)
    elif dialect == "sqlite":
        database = conn.engine.url.database
        if database and database != ":memory:" and not database.startswith("file::memory"):
            # WAL lets the application write while a dispatcher reads; it is a property of
            # the database file, so setting it once here is enough.
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def drop_tables(bind: Any) -> None:
    """Drop the outbox tables, view and trigger (for tests and teardown scripts)."""
    owned = isinstance(bind, str)
    bind = _sync_bind(bind)
    try:
        ctx = bind.begin() if isinstance(bind, sa.engine.Engine) else _nullcontext(bind)
        with ctx as conn:
            conn.exec_driver_sql("DROP VIEW IF EXISTS outbox_events_debezium")
            metadata.drop_all(conn, tables=[events_table, dead_letters_table, paused_table])
            if dialect_name(conn) == "postgresql":
                conn.exec_driver_sql("DROP FUNCTION IF EXISTS surefoot_outbox_notify() CASCADE")
    finally:
        if owned:
            bind.dispose()


class _nullcontext:  # noqa: N801
    def __init__(self, value: Any) -> None:
        self.value = value

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, *exc: Any) -> None:
        return None
