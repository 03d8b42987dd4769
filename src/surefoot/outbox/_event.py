"""The event envelope and the sink protocol shared by the outbox, its sinks and the inbox."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from ..errors import SurefootError

__all__ = ["Event", "Sink", "SinkError", "RetryLater", "SinkDisabled", "ENVELOPE_FIELDS"]

ENVELOPE_FIELDS = (
    "event_id",
    "event_name",
    "schema_version",
    "occurred_at",
    "tenant_id",
    "correlation_id",
    "causation_id",
    "key",
    "payload",
    "headers",
)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """One event as written to the outbox and delivered to handlers and sinks.

    The envelope fields are those of docs/conventions.md; ``outbox_id`` and ``attempts`` describe the
    delivery (the row it came from and how many attempts came before this one).
    """

    event_name: str
    payload: Mapping[str, Any]
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    schema_version: int = 1
    occurred_at: dt.datetime = field(default_factory=_utcnow)
    tenant_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    outbox_id: int | None = None
    attempts: int = 0

    def envelope(self) -> dict[str, Any]:
        """The envelope as a JSON-ready dict (``occurred_at`` in RFC 3339, UTC)."""
        return {
            "event_id": self.event_id,
            "event_name": self.event_name,
            "schema_version": self.schema_version,
            "occurred_at": self.occurred_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "tenant_id": self.tenant_id,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "key": self.key,
            "payload": dict(self.payload),
            "headers": dict(self.headers),
        }

    def to_json(self) -> bytes:
        """The envelope serialised as compact JSON bytes."""
        return orjson.dumps(self.envelope())

    @classmethod
    def from_envelope(cls, data: Mapping[str, Any] | bytes | str) -> Event:
        """Rebuild an event from :meth:`envelope` output or its JSON."""
        env: Mapping[str, Any] = orjson.loads(data) if isinstance(data, (bytes, str)) else data
        occurred = env["occurred_at"]
        if isinstance(occurred, str):
            occurred = dt.datetime.fromisoformat(occurred.replace("Z", "+00:00"))
        return cls(
            event_id=str(env["event_id"]),
            event_name=env["event_name"],
            schema_version=int(env.get("schema_version", 1)),
            occurred_at=occurred,
            tenant_id=env.get("tenant_id"),
            correlation_id=env.get("correlation_id"),
            causation_id=env.get("causation_id"),
            key=env.get("key"),
            payload=env.get("payload") or {},
            headers=env.get("headers") or {},
        )


class SinkError(SurefootError):
    """A sink could not deliver an event; the dispatcher retries it with backoff."""


class RetryLater(SinkError):
    """The destination pushed back (429, 503 with ``Retry-After``); retry after ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SinkDisabled(SinkError):
    """The destination asked never to be called again (HTTP 410): the sink is disabled and the
    event goes to the dead-letter table at once."""


@runtime_checkable
class Sink(Protocol):
    """Where dispatched events go. Each sink is an extra, imported lazily.

    ``send_many`` delivers a batch and returns, position by position, ``None`` for a
    delivered event or the exception that stopped it (never raises for one bad event).
    A sink must be idempotent per ``event_id`` where the broker allows it (NATS ``Nats-Msg-Id``).
    """

    name: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def send_many(self, events: Sequence[Event]) -> list[BaseException | None]: ...
