"""Settings of the service, from the environment (the names of seed 004's runbook)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


class ServiceSettings(BaseSettings):
    """Everything the web and worker processes read at start-up (a bad value stops them)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str = Field("sqlite:///missed-call.db", description="SQLAlchemy URL (sqlite or postgresql)")
    public_base_url: str = Field("http://127.0.0.1:8000", description="URL Twilio calls (signatures, callbacks)")
    twilio_account_sid: str = Field("AC00000000000000000000000000000000", pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: str = Field("dev-auth-token", min_length=8)
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_from_number: str | None = Field(None, pattern=r"^\+[1-9]\d{6,14}$")
    twilio_messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")
    twilio_timeout_seconds: float = Field(5.0, gt=0, le=60)
    twilio_max_attempts: int = Field(3, ge=1, le=10)
    breaker_time_scale: float = Field(1.0, gt=0, le=1, description="shrinks the breaker's windows (tests)")
    admin_token: str = Field("", description="bearer token of /admin/*; empty disables the admin routes")
    short_call_seconds: int = Field(0, ge=0, description="completed calls shorter than this are missed (0: off)")
    outbox_batch_size: int = Field(100, ge=1, le=10_000)
    outbox_concurrency: int = Field(2, ge=1, le=64)
    retention_messages_days: int = Field(180, ge=1)
    retention_webhook_events_days: int = Field(90, ge=1)
    retention_outbox_days: int = Field(30, ge=1)
    retention_batch_size: int = Field(1000, ge=1)
    retention_interval_seconds: float = Field(3600.0, gt=0)
    worker_name: str = "worker"

    @property
    def async_database_url(self) -> str:
        """The URL with an async driver (aiosqlite, psycopg)."""
        url = make_url(self.database_url)
        driver = {"sqlite": "sqlite+aiosqlite", "sqlite+pysqlite": "sqlite+aiosqlite",
                  "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
                  "postgresql+psycopg2": "postgresql+psycopg"}.get(url.drivername)
        return url.set(drivername=driver).render_as_string(hide_password=False) if driver else self.database_url

    @property
    def sync_database_url(self) -> str:
        """The URL with a sync driver (pysqlite, psycopg)."""
        url = make_url(self.database_url)
        driver = {"sqlite+aiosqlite": "sqlite", "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
                  "postgresql+asyncpg": "postgresql+psycopg"}.get(url.drivername)
        return url.set(drivername=driver).render_as_string(hide_password=False) if driver else self.database_url
