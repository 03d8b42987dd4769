"""The outbox tables work with Alembic: autogenerate sees them, and finds nothing to change
once create_tables() built them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from surefoot import outbox

OURS = {"outbox_events", "outbox_dead_letters", "outbox_paused"}


def _table_of(diff) -> str | None:
    op = diff[0] if isinstance(diff, tuple) else diff[0][0]
    item = diff[1] if isinstance(diff, tuple) else diff[0][2]
    if op in ("add_table", "remove_table"):
        return item.name
    if op in ("add_index", "remove_index"):
        return item.table.name
    return str(item)


def test_autogenerate_sees_the_tables_and_no_drift(db_url):
    pytest.importorskip("alembic")
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from surefoot._sql import metadata

    engine = sa.create_engine(db_url)
    outbox.drop_tables(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_server_default": True})
        added = {_table_of(d) for d in compare_metadata(ctx, metadata)}
    assert added >= OURS
    outbox.create_tables(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_server_default": True, "compare_type": True})
        drift = [d for d in compare_metadata(ctx, metadata) if _table_of(d) in OURS]
    assert drift == []
    engine.dispose()
