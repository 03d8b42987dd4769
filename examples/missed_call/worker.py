"""The worker process: the outbox dispatcher running the conversation handlers, the kill
switch, the status heartbeat and retention (seed 004 §1 and §8)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import surefoot
from surefoot import flags, outbox, webhooks
from surefoot.logging import configure_logging
from surefoot.retention import RetentionRule, arun_retention

from . import observability as obs
from . import schema as db
from .config import ServiceSettings
from .conversation import Conversation
from .flags import PAUSE_OUTBOUND_SMS
from .messaging import TwilioClient

log = surefoot.get_logger("worker")


def _engine(settings: ServiceSettings) -> AsyncEngine:
    if settings.async_database_url.startswith("sqlite"):
        return create_async_engine(settings.async_database_url)
    # A batch runs up to OUTBOX_BATCH_SIZE handlers at once: keep enough connections open that
    # they do not churn through short-lived overflow connections.
    size = min(20, settings.outbox_concurrency * 5)
    return create_async_engine(settings.async_database_url, pool_size=size, max_overflow=2 * size)


class Worker:
    """Everything the worker runs, started and stopped together.

    Args:
        settings: the service settings.
        engine: an async engine (default: one for ``DATABASE_URL``).
        twilio_transport: an httpx transport for the Twilio client (tests).
    """

    def __init__(self, settings: ServiceSettings, *, engine: AsyncEngine | None = None,
                 twilio_transport: Any = None) -> None:
        self.settings = settings
        self.engine = engine or _engine(settings)
        db.register_events()
        self.twilio = TwilioClient(settings, transport=twilio_transport)
        self.conversation = Conversation(self.engine, settings, self.twilio)
        self.dispatcher = outbox.Dispatcher(
            self.engine, handlers=self.conversation.handlers(),
            batch_size=settings.outbox_batch_size, concurrency=settings.outbox_concurrency,
        )
        self.name = f"{settings.worker_name}@{socket.gethostname()}:{os.getpid()}"
        self._tasks: list[asyncio.Task[Any]] = []

    def retention_rules(self) -> list[RetentionRule]:
        """Seed 004 §8: messages 180 days, outbox events 30 days after dispatch."""
        events = outbox.events_table
        return [
            RetentionRule(db.messages, "created_at", days=self.settings.retention_messages_days),
            RetentionRule(db.message_sends, "seen_at", days=self.settings.retention_messages_days),
            RetentionRule(events, "dispatched_at", days=self.settings.retention_outbox_days,
                          where=events.c.dispatched_at.is_not(None), name="outbox_events"),
        ]

    async def run_retention(self) -> dict[str, int]:
        """One retention pass (bounded batches); returns the rows deleted per table."""
        counts = await arun_retention(self.engine, self.retention_rules(), batch_size=self.settings.retention_batch_size)
        counts["webhook_events"] = await webhooks.apurge_webhook_events(
            self.engine, older_than=dt.timedelta(days=self.settings.retention_webhook_events_days),
            batch_size=self.settings.retention_batch_size)
        log.info("retention_done", **counts)
        return counts

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.run_retention()
            except Exception:
                log.exception("retention_failed")
            await asyncio.sleep(self.settings.retention_interval_seconds)

    def _sync_kill_switch(self) -> None:
        paused = db.SMS_REQUESTED in self.dispatcher.paused
        if PAUSE_OUTBOUND_SMS.enabled and not paused:
            self.dispatcher.pause(db.SMS_REQUESTED)
            log.warning("outbound_sms_paused", flag=PAUSE_OUTBOUND_SMS.name)
        elif not PAUSE_OUTBOUND_SMS.enabled and paused:
            self.dispatcher.resume(db.SMS_REQUESTED)
            log.warning("outbound_sms_resumed", flag=PAUSE_OUTBOUND_SMS.name)

    async def _heartbeat_loop(self) -> None:
        while True:
            self._sync_kill_switch()
            stats = self.twilio.breaker.get_stats()
            breakers = [{"name": stats["name"], "state": stats["state"],
                         "failure_rate": stats.get("failure_rate"), "retry_after": stats.get("retry_after")}]
            try:
                async with self.engine.begin() as conn:
                    now = dt.datetime.now(dt.UTC)
                    updated = (await conn.execute(db.worker_heartbeats.update().where(
                        db.worker_heartbeats.c.worker == self.name).values(
                        breakers=breakers, paused=PAUSE_OUTBOUND_SMS.enabled, updated_at=now))).rowcount
                    if not updated:
                        await conn.execute(db.worker_heartbeats.insert().values(
                            worker=self.name, breakers=breakers, paused=PAUSE_OUTBOUND_SMS.enabled, updated_at=now))
            except Exception as exc:  # noqa: BLE001  (the next beat tries again)
                log.warning("heartbeat_failed", error_message=str(exc)[:200])
            await asyncio.sleep(0.5)

    async def start(self) -> None:
        flags.configure(self.engine, refresh_interval=0.5)
        self._sync_kill_switch()
        await self.dispatcher.start()
        self._tasks = [asyncio.create_task(self._heartbeat_loop()), asyncio.create_task(self._retention_loop())]
        sweeper = obs.sweeper(self.engine)
        if sweeper is not None:
            self._tasks.append(asyncio.create_task(sweeper.arun()))
        log.info("missed_call_worker_started", worker=self.name, pause_outbound_sms=PAUSE_OUTBOUND_SMS.enabled,
                 batch_size=self.settings.outbox_batch_size, concurrency=self.settings.outbox_concurrency)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dispatcher.stop()
        await self.twilio.aclose()
        async with self.engine.begin() as conn:
            await conn.execute(db.worker_heartbeats.delete().where(db.worker_heartbeats.c.worker == self.name))
        log.info("missed_call_worker_stopped", worker=self.name, delivered=self.dispatcher.delivered)

    async def run(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
            await self.engine.dispose()


def main() -> None:
    """Entry point of ``python -m missed_call worker``."""
    configure_logging()
    settings = ServiceSettings()
    asyncio.run(Worker(settings).run())


def migrate(settings: ServiceSettings | None = None) -> None:
    """Create every table (service, inbox, outbox, flags, SLO); idempotent."""
    settings = settings or ServiceSettings()
    engine = sa.create_engine(settings.sync_database_url)
    try:
        db.create_all(engine)
        obs.migrate(engine)
    finally:
        engine.dispose()
