"""Registering tenants from code (the demo and the tests use it; the API has POST /admin/tenants)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from . import schema as db
from .config import ServiceSettings


async def add_tenant(tenant_id: str, phone: str, *, business_name: str = "Acme Plumbing",
                     template: str = "Sorry we missed your call! {business_name} will text you here shortly.",
                     compliance: str = "approved", engine: Any = None) -> None:
    """Insert (or update) a tenant and its number."""
    if not db.E164.match(phone):
        raise ValueError(f"phone must be E.164 (+14155550100), got {phone!r}")
    own = engine is None
    engine = engine or create_async_engine(ServiceSettings().async_database_url)
    try:
        async with engine.begin() as conn:
            exists = (await conn.execute(sa.select(db.tenants.c.tenant_id).where(
                db.tenants.c.tenant_id == tenant_id))).first()
            values = {"business_name": business_name, "first_reply_template": template, "compliance_status": compliance}
            if exists:
                await conn.execute(db.tenants.update().where(db.tenants.c.tenant_id == tenant_id).values(**values))
            else:
                await conn.execute(db.tenants.insert().values(tenant_id=tenant_id, **values))
            await conn.execute(db.insert_ignore(conn, db.tenant_numbers, phone=phone, tenant_id=tenant_id))
    finally:
        if own:
            await engine.dispose()
