from __future__ import annotations

from collections.abc import Iterator

import pytest


def _reset(url: str) -> None:
    import sqlalchemy as sa

    from surefoot.outbox import create_tables

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            create_tables(conn)
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("TRUNCATE outbox_events, outbox_dead_letters, outbox_paused RESTART IDENTITY")
            else:
                conn.exec_driver_sql("DELETE FROM outbox_events")
                conn.exec_driver_sql("DELETE FROM outbox_dead_letters")
                conn.exec_driver_sql("DELETE FROM outbox_paused")
    finally:
        engine.dispose()


@pytest.fixture
def outbox_url(db_url: str) -> Iterator[str]:
    """A sync URL whose outbox tables exist and are empty (SQLite and PostgreSQL)."""
    _reset(db_url)
    yield db_url


@pytest.fixture
def pg_outbox_url(pg_url: str) -> Iterator[str]:
    """Like ``outbox_url``, on PostgreSQL only (LISTEN/NOTIFY, SKIP LOCKED specifics)."""
    _reset(pg_url)
    yield pg_url


@pytest.fixture
def engine(outbox_url: str):
    import sqlalchemy as sa

    eng = sa.create_engine(outbox_url)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def _fresh_catalogue():
    from surefoot.outbox import default_catalogue

    default_catalogue.clear()
    yield
    default_catalogue.clear()
