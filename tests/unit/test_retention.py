"""surefoot.retention: bounded-batch deletes on any table, SQLite and PostgreSQL, sync and async."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from surefoot.errors import ConfigurationError
from surefoot.retention import RetentionRule, arun_retention, purge_batch, run_retention
from surefoot.testing import FakeClock

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _table(name: str) -> tuple[sa.MetaData, sa.Table]:
    metadata = sa.MetaData()
    table = sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
    )
    return metadata, table


def _fill(engine: sa.Engine, table: sa.Table) -> None:
    rows = [{"tenant_id": "a", "created_at": NOW - dt.timedelta(days=d), "done": d % 2 == 0}
            for d in range(0, 400, 2)] + [{"tenant_id": "b", "created_at": NOW - dt.timedelta(days=200), "done": True}] * 7
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def _at_now(clock: FakeClock) -> FakeClock:
    clock.set(NOW.timestamp())
    return clock


def test_rules_delete_only_old_rows_in_batches(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    metadata, table = _table("ret_" + uuid.uuid4().hex[:8])
    metadata.create_all(engine)
    try:
        _fill(engine, table)
        clock = _at_now(FakeClock())
        rule = RetentionRule(table, "created_at", days=180)
        expected = 0
        with engine.connect() as conn:
            expected = conn.execute(sa.select(sa.func.count()).where(
                table.c.created_at < NOW - dt.timedelta(days=180))).scalar_one()
        counts = run_retention(engine, [rule], batch_size=7, clock=clock)
        assert counts == {table.name: expected} and expected > 7  # several batches
        with engine.connect() as conn:
            oldest = conn.execute(sa.select(sa.func.min(table.c.created_at))).scalar_one()
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=dt.UTC)
        assert oldest >= NOW - dt.timedelta(days=180)
        assert run_retention(engine, [rule], batch_size=7, clock=clock) == {table.name: 0}
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_where_condition_and_max_batches(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    metadata, table = _table("ret_where")
    metadata.create_all(engine)
    _fill(engine, table)
    clock = _at_now(FakeClock())
    rule = RetentionRule(table, "created_at", days=30, where=table.c.tenant_id == "b", name="tenant_b")
    assert run_retention(engine, [rule], batch_size=3, max_batches=1, clock=clock) == {"tenant_b": 3}
    assert run_retention(engine, [rule], batch_size=3, clock=clock) == {"tenant_b": 4}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(table.c.tenant_id == "a")).scalar_one() == 200
        # one batch inside the caller's own transaction
        count = purge_batch(conn, RetentionRule(table, "created_at", days=300), batch_size=5, clock=clock)
        assert count == 5
    engine.dispose()


async def test_async_engine(tmp_path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    sync = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    metadata, table = _table("ret_async")
    metadata.create_all(sync)
    _fill(sync, table)
    sync.dispose()
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    counts = await arun_retention(engine, [RetentionRule(table, "created_at", days=365)], batch_size=4,
                                  clock=_at_now(FakeClock()))
    assert counts == {"ret_async": 17}
    async with engine.begin() as conn:
        assert await purge_batch(conn, RetentionRule(table, "created_at", days=1), batch_size=2,
                                 clock=_at_now(FakeClock())) == 2
    await engine.dispose()


def test_bad_rules_say_what_to_fix() -> None:
    _, table = _table("ret_bad")
    with pytest.raises(ConfigurationError, match="days must be positive"):
        RetentionRule(table, "created_at", days=0)
    with pytest.raises(ConfigurationError, match="no column 'nope'"):
        RetentionRule(table, "nope", days=1)
    with pytest.raises(ConfigurationError, match="batch_size"):
        run_retention(sa.create_engine("sqlite://"), [RetentionRule(table, "created_at", days=1)], batch_size=0)
    with pytest.raises(ConfigurationError, match="days must be positive"):
        RetentionRule(table, "created_at", days=float("nan"))
    with pytest.raises(ConfigurationError, match="days must be positive"):
        RetentionRule(table, "created_at", days="30")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="give the column's name, 'created_at'"):
        RetentionRule(table, table.c.created_at, days=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="SQLAlchemy Table"):
        RetentionRule("ret_bad", "created_at", days=1)


async def test_the_wrong_twin_says_which_one_to_use(tmp_path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    _, table = _table("ret_twin")
    rule = RetentionRule(table, "created_at", days=1)
    sync_engine = sa.create_engine(f"sqlite:///{tmp_path / 't.db'}")
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    try:
        with pytest.raises(ConfigurationError, match="await arun_retention"):
            run_retention(async_engine, [rule])
        with pytest.raises(ConfigurationError, match="call run_retention"):
            await arun_retention(sync_engine, [rule])
        with pytest.raises(ConfigurationError, match="batch_size"):
            run_retention(sync_engine, [rule], batch_size=2.5)  # type: ignore[arg-type]
    finally:
        sync_engine.dispose()
        await async_engine.dispose()


def test_rules_on_one_table_without_names_add_up(sqlite_url: str) -> None:
    engine = sa.create_engine(sqlite_url)
    metadata, table = _table("ret_twice")
    metadata.create_all(engine)
    _fill(engine, table)
    clock = _at_now(FakeClock())
    rules = [
        RetentionRule(table, "created_at", days=30, where=table.c.tenant_id == "a"),
        RetentionRule(table, "created_at", days=30, where=table.c.tenant_id == "b"),
    ]
    assert run_retention(engine, rules, clock=clock) == {"ret_twice": 184 + 7}
    engine.dispose()


def test_composite_primary_keys(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    metadata = sa.MetaData()
    table = sa.Table(
        "ret_pk_" + uuid.uuid4().hex[:8], metadata,
        sa.Column("tenant_id", sa.String(16), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [
                {"tenant_id": t, "seq": i, "created_at": NOW - dt.timedelta(days=i)} for t in ("a", "b") for i in range(20)
            ])
        counts = run_retention(engine, [RetentionRule(table, "created_at", days=10)], batch_size=3, clock=_at_now(FakeClock()))
        assert counts == {table.name: 18}  # seq 11..19 of each tenant
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.max(table.c.seq))).scalar_one() == 10
    finally:
        metadata.drop_all(engine)
        engine.dispose()
