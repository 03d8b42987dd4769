"""Outbox settings, read from ``SUREFOOT_OUTBOX_*`` environment variables."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["OutboxSettings"]


class OutboxSettings(BaseSettings):
    """Knobs of the outbox dispatcher (seed runbook: batch 100, concurrency 2).

    Attributes:
        batch_size: events claimed per statement (``SUREFOOT_OUTBOX_BATCH_SIZE``).
        concurrency: batches in flight at once per dispatcher process.
        lease_seconds: how long a claim is held; a crashed dispatcher's events come back
            after this.
        max_attempts: attempts before an event moves to the dead-letter table.
        backoff_base_seconds / backoff_cap_seconds: exponential backoff with full jitter.
        poll_interval_seconds: safety-net polling when no notification arrives.
        listen: wake up at once on new events: PostgreSQL ``LISTEN/NOTIFY``; SQLite by
            watching the file's ``PRAGMA data_version``.
        sqlite_watch_interval_seconds: how often that SQLite watch looks (0 turns it off).
        ordering: deliver events that share a ``key`` one at a time, in order.
        paused_events: event names (``*`` wildcards) not dispatched: the kill switch, e.g.
            ``["SendSms"]`` (JSON list or comma-separated).
        retention_days: dispatched events are deleted this long after dispatch.
        retention_batch_size: rows deleted per short transaction.
        retention_interval_seconds: how often a running dispatcher applies retention
            (0 turns it off).
        stats_interval_seconds: how often the lag and pending gauges are refreshed.
        shutdown_timeout_seconds: how long a stopping dispatcher lets in-flight batches
            finish before releasing them.
        handler_timeout_seconds: how long one delivery may take before it fails (default:
            80 % of ``lease_seconds``).
        cancel_grace_seconds: how long a cancelled delivery (timed out, or cut by
            ``stop()``) may take to end before it is abandoned.
        handler_threads: size of the thread pool that runs sync handlers.
        db_timeout_seconds: the longest one database operation of the dispatcher may take
            (claim, settle, stats, LISTEN probe, connect); beyond it the connection is
            dropped, the failure logged and the operation retried on a fresh connection.
        listen_check_interval_seconds: how often the ``LISTEN`` connection must answer a
            probe.
        watchdog_interval_seconds: how often the supervisor checks the workers and sets the
            heartbeat.
    """

    model_config = SettingsConfigDict(env_prefix="SUREFOOT_OUTBOX_", extra="ignore")

    batch_size: int = Field(100, ge=1, le=10_000)
    concurrency: int = Field(2, ge=1, le=256)
    lease_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(10, ge=1)
    backoff_base_seconds: float = Field(1.0, ge=0)
    backoff_cap_seconds: float = Field(600.0, ge=0)
    poll_interval_seconds: float = Field(1.0, gt=0)
    listen: bool = True
    sqlite_watch_interval_seconds: float = Field(0.01, ge=0)
    ordering: bool = True
    paused_events: Annotated[list[str], NoDecode] = Field(default_factory=list)
    retention_days: float = Field(30.0, gt=0)
    retention_batch_size: int = Field(1000, ge=1)
    retention_interval_seconds: float = Field(3600.0, ge=0)
    stats_interval_seconds: float = Field(5.0, gt=0)
    shutdown_timeout_seconds: float = Field(10.0, ge=0)
    handler_timeout_seconds: float | None = Field(None, gt=0)
    cancel_grace_seconds: float = Field(2.0, ge=0)
    handler_threads: int = Field(8, ge=1, le=1024)
    db_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    listen_check_interval_seconds: float = Field(10.0, gt=0)
    watchdog_interval_seconds: float = Field(1.0, gt=0)

    @field_validator("paused_events", mode="before")
    @classmethod
    def _split_patterns(cls, value: Any) -> Any:
        # accept the JSON list form and the comma-separated form ops type by hand
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return orjson.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
