"""The demo service: a small FastAPI app with surefoot installed.

Routes show each part of surefoot at work: ids and JSON/console logs on every request, PII
masked in the log lines, RED metrics per route template, RFC 9457 errors for validation
failures, surefoot's own errors and unhandled exceptions, and health probes backed by a real
(SQLite) database check.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field

from .._core.settings import Settings, get_settings

__all__ = ["ContactIn", "create_app"]

MAX_SLOW_SECONDS = 10.0


class ContactIn(BaseModel):
    """A contact to create (validated: a bad body is a 400 problem+json)."""

    name: str = Field(min_length=1, max_length=100)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    phone: str | None = Field(default=None, pattern=r"^\+[1-9]\d{6,14}$")


def create_app(settings: Settings | None = None, *, drain_seconds: float | None = None) -> Any:
    """Build the demo FastAPI application (surefoot installed, routes registered).

    Args:
        settings: surefoot settings (default: from the environment).
        drain_seconds: readiness drain after SIGTERM (see :func:`surefoot.install`).

    Returns:
        The FastAPI application.
    """
    from .._core.extras import require

    require("fastapi", "fastapi")
    sa = require("sqlalchemy", "sql")
    from fastapi import FastAPI

    import surefoot
    from surefoot.errors import NotFoundError
    from surefoot.health import Health, sqlalchemy_check
    from surefoot.logging import log_business_event, log_db_query

    settings = settings if settings is not None else get_settings()
    engine = sa.create_engine(settings.database_url)
    metadata = sa.MetaData()
    contacts = sa.Table(
        "demo_contacts",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(32)),
    )
    log = surefoot.get_logger("demo")

    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        metadata.create_all(engine)
        log.info("demo_started", database=engine.url.render_as_string(hide_password=True))
        yield
        engine.dispose()

    app = FastAPI(title="surefoot demo", version=settings.service_version, lifespan=lifespan)

    @app.get("/")
    async def index() -> dict[str, Any]:
        """Where to look."""
        return {
            "service": settings.service_name,
            "try": [
                "/hello?name=Ada", "/slow?seconds=1", "/fail", "POST /contacts", "/contacts/1",
                "/metrics", "/metrics?format=json", "/health", "/readyz", "/livez",
            ],
        }

    @app.get("/hello")
    async def hello(name: str = "world") -> dict[str, str]:
        """A fast route that writes a business event (with PII masked in the log)."""
        log_business_event("greeted", name=name)
        return {"message": f"hello, {name}"}

    @app.get("/slow")
    async def slow(seconds: float = 1.0) -> dict[str, float]:
        """A slow route: watch its latency in the access log and the duration histogram."""
        if not 0 <= seconds <= MAX_SLOW_SECONDS:
            raise surefoot.ValidationError(
                f"seconds must be between 0 and {MAX_SLOW_SECONDS:g}", field="seconds"
            )
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/fail")
    async def fail() -> None:
        """An unhandled exception: a 500 problem+json for the client, the stack in the log."""
        raise RuntimeError("the demo failed on purpose")

    @app.post("/contacts", status_code=201)
    def create_contact(contact: ContactIn) -> dict[str, Any]:
        """Validated input: a bad body is a 400 problem+json listing each error."""
        with engine.begin() as conn:
            new_id = conn.execute(contacts.insert().values(**contact.model_dump())).inserted_primary_key[0]
        log.info("contact_created", contact_id=new_id, email=contact.email, phone=contact.phone)
        return {"id": new_id, **contact.model_dump()}

    @app.get("/contacts/{contact_id}")
    def get_contact(contact_id: int) -> dict[str, Any]:
        """surefoot's NotFoundError becomes a 404 problem+json."""
        import time

        started = time.perf_counter()
        with engine.connect() as conn:
            row = conn.execute(sa.select(contacts).where(contacts.c.id == contact_id)).mappings().first()
        log_db_query(
            "select_contact", table="demo_contacts", rows=int(row is not None),
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        if row is None:
            raise NotFoundError(resource="Contact", identifier=contact_id)
        return dict(row)

    health = Health(
        service=settings.service_name, version=settings.service_version, drain_seconds=drain_seconds
    )
    health.add("database", sqlalchemy_check(engine), timeout=2.0)
    surefoot.install(app, settings=settings, health=health)
    return app
