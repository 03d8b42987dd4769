"""What every broker sink shares: naming, headers, lifecycle and error translation.

The sinks never raise out of :meth:`send_many` for a single event: each position of the
returned list holds ``None`` (delivered) or the :class:`~surefoot.outbox.SinkError` that
stopped that event, with the broker's own exception chained as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from ...errors import ConfigurationError
from .._event import Event, SinkError

__all__ = [
    "Naming",
    "NameResolver",
    "event_headers",
    "encode",
    "BaseSink",
    "TEMPLATE_FIELDS",
    "outcome",
    "gather_positional",
]

_log = structlog.get_logger("surefoot.outbox")

Naming = str | Callable[[Event], str]
"""A destination name: a ``str.format`` template over :data:`TEMPLATE_FIELDS` or a callable."""

TEMPLATE_FIELDS = frozenset({"event_name", "schema_version", "tenant_id", "key"})
"""The fields a naming template may use, e.g. ``"events.{tenant_id}.{event_name}"``."""

CONTENT_TYPE = "application/json"


class NameResolver:
    """Turn an event into a destination name (subject, stream, routing key, URL).

    Args:
        naming: a template such as ``"events.{event_name}"`` (fields: ``event_name``,
            ``schema_version``, ``tenant_id``, ``key``; a missing ``tenant_id``/``key``
            renders as ``"_"``), or a callable ``(event) -> str``.
        what: what the name is for, used in error messages (``"NATS subject"``).
        validate: an optional check of a resolved name, returning a problem or ``None``.

    Raises:
        ConfigurationError: the template names an unknown field or is malformed.
    """

    __slots__ = ("_template", "_func", "_what", "_validate", "_static")

    def __init__(
        self,
        naming: Naming,
        *,
        what: str,
        validate: Callable[[str], str | None] | None = None,
    ) -> None:
        self._what = what
        self._validate = validate
        self._func: Callable[[Event], str] | None = None
        self._template: str | None = None
        self._static: str | None = None
        if callable(naming):
            self._func = naming
        elif isinstance(naming, str):
            fields = _template_fields(naming, what)
            unknown = fields - TEMPLATE_FIELDS
            if unknown:
                raise ConfigurationError(
                    f"the {what} template {naming!r} uses unknown field(s) {sorted(unknown)}; "
                    f"allowed: {sorted(TEMPLATE_FIELDS)}"
                )
            if fields:
                self._template = naming
            else:
                # No field: the name is fixed, but literal braces are still written doubled
                # ("{{events}}" is the name "{events}"), exactly as in a template with fields.
                static = naming.format()
                problem = validate(static) if validate else None
                if problem:
                    raise ConfigurationError(f"invalid {what} {static!r}: {problem}")
                self._static = static
        else:
            raise ConfigurationError(
                f"the {what} must be a template string or a callable (event) -> str, "
                f"not {type(naming).__name__}"
            )

    @property
    def static(self) -> str | None:
        """The name when it does not depend on the event, else ``None``."""
        return self._static

    def __call__(self, event: Event) -> str:
        """Return the name for ``event``.

        Raises:
            SinkError: the callable failed or the resolved name is invalid.
        """
        if self._static is not None:
            return self._static
        try:
            if self._func is not None:
                name = self._func(event)
            else:
                name = str(self._template).format(
                    event_name=event.event_name,
                    schema_version=event.schema_version,
                    tenant_id=event.tenant_id if event.tenant_id is not None else "_",
                    key=event.key if event.key is not None else "_",
                )
        except Exception as exc:  # a user callable may raise anything; it fails one event
            raise SinkError(f"could not build the {self._what} for event {event.event_id}: {exc!r}") from exc
        if not isinstance(name, str) or not name:
            raise SinkError(f"the {self._what} for event {event.event_id} is empty or not a string: {name!r}")
        if self._validate is not None:
            try:
                problem = self._validate(name)
            except Exception as exc:  # e.g. a name that cannot be encoded: it fails this event only
                problem = f"cannot be checked ({exc!r})"
            if problem:
                raise SinkError(f"invalid {self._what} {name!r} for event {event.event_id}: {problem}")
        return name


def _template_fields(template: str, what: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigurationError(f"the {what} template {template!r} is malformed: {exc}") from exc
    fields = set()
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        if field_name == "" or not field_name.isidentifier():
            raise ConfigurationError(
                f"the {what} template {template!r} must use named fields such as {{event_name}}"
            )
        fields.add(field_name)
    return fields


def event_headers(event: Event) -> dict[str, str]:
    """The message headers for ``event``: ids, name, version, context and trace headers.

    Keys: ``event_id``, ``event_name``, ``schema_version``, ``correlation_id``,
    ``causation_id``, ``tenant_id`` (unset ones left out), every entry of ``event.headers``
    (``traceparent``, ``tracestate``, ...) and ``content-type: application/json``. Envelope
    keys win over ``event.headers`` entries of the same name, so a header cannot spoof the
    event id.
    """
    out: dict[str, str] = {}
    for key, value in event.headers.items():
        if value is not None:
            out[str(key)] = str(value)
    out["event_id"] = event.event_id
    out["event_name"] = event.event_name
    out["schema_version"] = str(event.schema_version)
    if event.correlation_id is not None:
        out["correlation_id"] = event.correlation_id
    if event.causation_id is not None:
        out["causation_id"] = event.causation_id
    if event.tenant_id is not None:
        out["tenant_id"] = event.tenant_id
    out["content-type"] = CONTENT_TYPE
    return out


def encode(event: Event) -> bytes:
    """``event.to_json()`` with a serialisation failure turned into a :class:`SinkError`."""
    try:
        return event.to_json()
    except (TypeError, ValueError) as exc:
        raise SinkError(f"event {event.event_id} ({event.event_name}) cannot be serialised to JSON: {exc}") from exc


def check_events(events: Sequence[Event]) -> None:
    """Refuse a batch that is not a sequence of :class:`Event` (a programming error)."""
    for index, event in enumerate(events):
        if not isinstance(event, Event):
            raise TypeError(f"send_many() takes Event objects; position {index} is {type(event).__name__}")


class BaseSink:
    """Lifecycle shared by the broker sinks.

    ``open()`` connects (raising :class:`SinkError` when the broker cannot be reached);
    ``send_many()`` opens lazily on first use and, when the broker is unreachable, returns
    a :class:`SinkError` for every event instead of raising; ``close()`` flushes and
    disconnects and may be called any number of times. A closed sink refuses to send
    (each event gets a :class:`SinkError`) until ``open()`` is called again.

    Subclasses implement ``_connect()``, ``_disconnect()`` and ``_send(events)``.
    """

    name: str = "sink"

    def __init__(self, *, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a sink name must be a non-empty string")
        self.name = name
        self._state = "new"  # new -> open -> closed (-> open again)
        self._lock: asyncio.Lock | None = None
        self._inflight = 0
        self._idle: asyncio.Event | None = None

    @property
    def is_open(self) -> bool:
        """True between a successful ``open()`` and ``close()``."""
        return self._state == "open"

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def open(self) -> None:
        """Connect to the broker (no-op when already open).

        Raises:
            SinkError: the broker cannot be reached or refused the setup.
        """
        async with self._get_lock():
            if self._state == "open":
                return
            await self._connect()
            self._state = "open"
            _log.info("sink_opened", sink=self.name)

    async def close(self) -> None:
        """Refuse new batches, let the batches in flight finish, then disconnect.

        Safe to call more than once. The batches in flight are bounded by the sink's own
        timeouts (ack, confirm, request), so this never waits forever.
        """
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        # wait outside the lock: a batch in flight may need it (to reconnect) to finish
        if self._inflight:
            if self._idle is None:
                self._idle = asyncio.Event()
            self._idle.clear()
            await self._idle.wait()
        async with self._get_lock():
            await self._disconnect()
        _log.info("sink_closed", sink=self.name)

    async def __aenter__(self) -> BaseSink:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send_many(self, events: Sequence[Event]) -> list[BaseException | None]:
        """Deliver ``events``; return, position by position, ``None`` or the error.

        Never raises for a delivery problem: an unreachable broker yields a
        :class:`SinkError` at every position.

        Raises:
            TypeError: an item of ``events`` is not an :class:`Event`.
        """
        check_events(events)
        if not events:
            return []
        if self._state != "open":
            if self._state == "closed":
                err = SinkError(f"sink {self.name!r} is closed; call open() before sending")
                return [err] * len(events)
            try:
                await self.open()
            except SinkError as exc:
                return [exc] * len(events)
        self._inflight += 1
        try:
            return await self._send(events)
        except Exception as exc:  # a bug or an untranslated client error: fail the batch, never raise
            _log.error("sink_batch_failed", sink=self.name, error_message=repr(exc), count=len(events))
            return [as_outcome(exc, sink=self.name)] * len(events)
        finally:
            self._inflight -= 1
            if not self._inflight and self._idle is not None:
                self._idle.set()

    async def _connect(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _disconnect(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _send(self, events: Sequence[Event]) -> list[BaseException | None]:  # pragma: no cover
        raise NotImplementedError


def as_outcome(exc: BaseException, *, sink: str) -> BaseException:
    """The per-event result for ``exc``: itself when a :class:`SinkError`, else wrapped in one.

    Cancellation and other non-``Exception`` errors are not outcomes; they are re-raised.
    """
    if isinstance(exc, SinkError):
        return exc
    if isinstance(exc, Exception):
        err = SinkError(f"sink {sink!r} failed unexpectedly: {exc!r}")
        err.__cause__ = exc
        return err
    raise exc


async def outcome(coro: Awaitable[Any], *, sink: str) -> BaseException | None:
    """Await one delivery; return ``None`` or its error (see :func:`as_outcome`)."""
    try:
        await coro
    except BaseException as exc:  # sorted by as_outcome: SinkError kept, surprises wrapped
        return as_outcome(exc, sink=sink)
    return None


async def gather_positional(
    coros: Sequence[Awaitable[Any]], *, sink: str
) -> list[BaseException | None]:
    """Await ``coros`` concurrently; map each to ``None`` or the :class:`SinkError` it raised.

    Any other exception is wrapped in a :class:`SinkError` (cause chained) so one event's
    surprise never sinks the batch; cancellation propagates.
    """
    raw = await asyncio.gather(*coros, return_exceptions=True)
    return [as_outcome(item, sink=sink) if isinstance(item, BaseException) else None for item in raw]
