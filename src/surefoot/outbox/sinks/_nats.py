"""NATS JetStream sink (extra ``nats``): one JetStream message per event, deduplicated by id."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from ..._core.extras import require
from ...errors import ConfigurationError
from .._event import Event, SinkError
from ._base import BaseSink, NameResolver, Naming, encode, event_headers

__all__ = ["NatsSink"]

_log = structlog.get_logger("surefoot.outbox")

_BAD_SUBJECT = re.compile(r"[\s*>]")
_BAD_HEADER_NAME = re.compile(r"[:\s]")


def _check_subject(subject: str) -> str | None:
    if _BAD_SUBJECT.search(subject):
        return "a publish subject may not contain whitespace, '*' or '>'"
    if subject.startswith(".") or subject.endswith(".") or ".." in subject:
        return "a subject's tokens must not be empty"
    return None


def _nats_headers(event: Event) -> dict[str, str]:
    headers = event_headers(event)
    for key, value in headers.items():
        if "\r" in value or "\n" in value:
            raise SinkError(f"header {key!r} of event {event.event_id} contains a line break")
        if not key or _BAD_HEADER_NAME.search(key):
            raise SinkError(f"header name {key!r} of event {event.event_id} is not a valid NATS header")
    # JetStream drops a second message with the same id inside the stream's duplicate
    # window, so an at-least-once redelivery of this event is stored once.
    headers["Nats-Msg-Id"] = event.event_id
    return headers


class NatsSink(BaseSink):
    """Publish events to NATS JetStream and wait for each PubAck.

    Every message carries ``Nats-Msg-Id = event_id``: a redelivery inside the stream's
    duplicate window (``duplicate_window``, 2 minutes by default on the server) is
    acknowledged as a duplicate and stored once. A batch is pipelined (all messages
    written, then all acks awaited), which keeps the wire order of the batch, so events
    of one key reach the stream in batch order. When one message of a key fails and a
    later one of the same key succeeds, the retried message lands after it: the
    dispatcher's per-key ordering sends one event per key at a time when order matters.

    Reconnects: the client reconnects on its own (forever by default,
    ``max_reconnect_attempts=-1``); while it is disconnected messages wait in the client
    buffer and their acks time out after ``ack_timeout`` seconds, which fails those events
    with :class:`SinkError` (JetStream dedupe absorbs a buffered copy flushed later). A
    connection that ended up closed is reopened on the next ``send_many``.

    Args:
        servers: NATS URL or URLs, e.g. ``"nats://127.0.0.1:4222"``.
        subject: subject template (fields ``event_name``, ``schema_version``,
            ``tenant_id``, ``key``) or callable ``(event) -> str``. Default
            ``"events.{event_name}"``.
        stream: the JetStream stream the subjects belong to. When set, each publish
            carries ``Nats-Expected-Stream`` so a message never lands in another stream.
        ensure_stream: create ``stream`` on ``open()`` when it does not exist.
        stream_subjects: the subjects of the created stream; by default derived from a
            ``"prefix.{...}"`` template as ``["prefix.>"]``.
        duplicate_window: the dedupe window (seconds) of a created stream.
        ack_timeout: seconds to wait for the PubAcks of a batch.
        connect_timeout: seconds ``open()`` may take before it fails.
        max_reconnect_attempts: passed to nats-py (``-1``: forever).
        reconnect_time_wait: seconds between reconnect attempts.
        max_pending: most unacknowledged publishes in flight at once.
        connect_options: extra keyword arguments for ``nats.connect`` (TLS, credentials).
        name: the sink's name (metrics label ``sink``).

    Raises:
        ConfigurationError: a bad argument (message says which).
        MissingExtraError: nats-py is not installed (``pip install 'surefoot[nats]'``).
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        subject: Naming = "events.{event_name}",
        stream: str | None = None,
        ensure_stream: bool = False,
        stream_subjects: Sequence[str] | None = None,
        duplicate_window: float = 120.0,
        ack_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        max_reconnect_attempts: int = -1,
        reconnect_time_wait: float = 2.0,
        max_pending: int = 4000,
        connect_options: Mapping[str, Any] | None = None,
        name: str = "nats",
    ) -> None:
        require("nats", "nats")
        super().__init__(name=name)
        self._servers = [servers] if isinstance(servers, str) else list(servers)
        if not self._servers or not all(isinstance(s, str) and s for s in self._servers):
            raise ConfigurationError("NatsSink needs at least one server URL, e.g. 'nats://127.0.0.1:4222'")
        self._subject = NameResolver(subject, what="NATS subject", validate=_check_subject)
        if ensure_stream and not stream:
            raise ConfigurationError("ensure_stream=True needs stream='NAME'")
        if stream_subjects is None and ensure_stream:
            stream_subjects = [_default_stream_subject(subject)]
        self._stream = stream
        self._ensure_stream = ensure_stream
        self._stream_subjects = list(stream_subjects) if stream_subjects is not None else None
        for label, value in (
            ("duplicate_window", duplicate_window),
            ("ack_timeout", ack_timeout),
            ("connect_timeout", connect_timeout),
        ):
            if not value > 0:
                raise ConfigurationError(f"{label} must be > 0 seconds, got {value!r}")
        if max_pending < 1:
            raise ConfigurationError(f"max_pending must be >= 1, got {max_pending!r}")
        self._duplicate_window = float(duplicate_window)
        self._ack_timeout = float(ack_timeout)
        self._connect_timeout = float(connect_timeout)
        self._max_pending = int(max_pending)
        self._connect_options = dict(connect_options or {})
        self._connect_options.setdefault("max_reconnect_attempts", max_reconnect_attempts)
        self._connect_options.setdefault("reconnect_time_wait", reconnect_time_wait)
        self._connect_options.setdefault("connect_timeout", min(self._connect_timeout, 2.0))
        self._nc: Any = None
        self._js: Any = None
        self._inbox = ""
        self._acks: dict[str, asyncio.Future[Any]] = {}
        self._tokens = itertools.count()
        self._slots = asyncio.Semaphore(self._max_pending)
        self._last_error: BaseException | None = None

    # -- connection -----------------------------------------------------------------

    async def _error_cb(self, exc: Exception) -> None:
        self._last_error = exc
        _log.warning("sink_connection_error", sink=self.name, error_message=repr(exc))

    async def _disconnected_cb(self) -> None:
        if self._nc is not None:  # not our own close()
            _log.warning("sink_disconnected", sink=self.name)

    async def _reconnected_cb(self) -> None:
        _log.info("sink_reconnected", sink=self.name)

    async def _connect(self) -> None:
        nats = require("nats", "nats")
        nc = nats.NATS()
        self._last_error = None
        options = dict(self._connect_options)
        options.setdefault("error_cb", self._error_cb)
        options.setdefault("disconnected_cb", self._disconnected_cb)
        options.setdefault("reconnected_cb", self._reconnected_cb)
        try:
            # nats-py retries the first connection forever on its own; bound it here.
            await asyncio.wait_for(nc.connect(servers=self._servers, **options), self._connect_timeout)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await _quiet_close(nc)
            cause = self._last_error or exc
            raise SinkError(
                f"cannot connect to NATS at {', '.join(self._servers)} within "
                f"{self._connect_timeout:g} s: {cause!r}"
            ) from cause
        js = nc.jetstream(timeout=self._ack_timeout)
        try:
            if self._ensure_stream:
                await self._ensure(js)
            inbox = nc.new_inbox()
            await nc.subscribe(f"{inbox}.*", cb=self._on_ack)
        except BaseException:
            await _quiet_close(nc)
            raise
        self._nc, self._js, self._inbox = nc, js, inbox

    async def _ensure(self, js: Any) -> None:
        nats = require("nats", "nats")
        try:
            await js.stream_info(self._stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        except (TimeoutError, nats.errors.Error) as exc:
            raise SinkError(f"cannot look up JetStream stream {self._stream!r}: {exc!r}") from exc
        try:
            await js.add_stream(
                name=self._stream,
                subjects=self._stream_subjects,
                duplicate_window=self._duplicate_window,
            )
        except (TimeoutError, nats.errors.Error) as exc:
            raise SinkError(f"cannot create JetStream stream {self._stream!r}: {exc!r}") from exc
        _log.info("sink_stream_created", sink=self.name, stream=self._stream, subjects=self._stream_subjects)

    async def _disconnect(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is None:
            return
        nats = require("nats", "nats")
        try:
            if nc.is_connected:
                await nc.flush(timeout=max(1, int(self._ack_timeout)))
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            _log.warning("sink_flush_failed", sink=self.name, error_message=repr(exc))
        await _quiet_close(nc)

    # -- sending ----------------------------------------------------------------------

    async def _ensure_connected(self) -> None:
        if self._nc is None or self._nc.is_closed:
            async with self._get_lock():
                if self._nc is None or self._nc.is_closed:
                    await self._connect()

    async def _on_ack(self, msg: Any) -> None:
        # Acks come back on our own inbox (nats-py's publish_async never resolves a
        # JetStream API error, so the batch pipeline matches replies itself).
        future = self._acks.pop(msg.subject, None)
        if future is None or future.done():
            return
        self._slots.release()
        headers = msg.headers or {}
        status = headers.get("Status")
        if status == "503":
            future.set_result({"no_responders": True})
            return
        try:
            future.set_result(json.loads(msg.data) if msg.data else {"error": {"description": f"status {status}"}})
        except ValueError as exc:
            future.set_result({"error": {"description": f"unreadable ack: {exc}"}})

    async def _send(self, events: Sequence[Event]) -> list[BaseException | None]:
        nats = require("nats", "nats")
        try:
            await self._ensure_connected()
        except SinkError as exc:
            return [exc] * len(events)
        nc = self._nc
        loop = asyncio.get_running_loop()
        results: list[BaseException | None] = [None] * len(events)
        pending: dict[int, asyncio.Future[Any]] = {}
        replies: list[str] = []
        max_payload = nc.max_payload
        try:
            for index, event in enumerate(events):
                try:
                    subject = self._subject(event)
                    body = encode(event)
                    headers = _nats_headers(event)
                    if self._stream is not None:
                        headers["Nats-Expected-Stream"] = self._stream
                    if max_payload and len(body) > max_payload:
                        raise SinkError(
                            f"event {event.event_id} is {len(body)} bytes; the NATS server accepts "
                            f"at most {max_payload} bytes per message"
                        )
                    if self._slots.locked():
                        try:
                            await asyncio.wait_for(self._slots.acquire(), self._ack_timeout)
                        except TimeoutError as exc:
                            raise SinkError(
                                f"event {event.event_id} not published: {self._max_pending} publishes "
                                f"await their acks (max_pending) and none came within {self._ack_timeout:g} s"
                            ) from exc
                    else:
                        # no yield to the loop here, so the client flushes the batch in one write
                        await self._slots.acquire()
                    reply = f"{self._inbox}.{next(self._tokens)}"
                    future = loop.create_future()
                    self._acks[reply] = future
                    replies.append(reply)
                    pending[index] = future
                    await nc.publish(subject, body, reply=reply, headers=headers)
                except SinkError as exc:
                    results[index] = exc
                except (TimeoutError, nats.errors.Error, OSError) as exc:
                    if index in pending:
                        pending.pop(index).cancel()
                        self._acks.pop(replies[-1], None)
                        self._slots.release()
                    err = SinkError(f"NATS publish of event {event.event_id} failed: {exc!r}")
                    err.__cause__ = exc
                    results[index] = err
            if pending:
                await asyncio.wait(pending.values(), timeout=self._ack_timeout)
        finally:
            # an ack that never came: cancel it, give its slot back, forget its inbox
            for future in pending.values():
                if not future.done():
                    future.cancel()
                    self._slots.release()
            for reply in replies:
                self._acks.pop(reply, None)
        for index, future in pending.items():
            results[index] = self._ack_result(events[index], future)
        return results

    def _ack_result(self, event: Event, future: asyncio.Future[Any]) -> BaseException | None:
        if future.cancelled():
            state = "reconnecting" if self._nc is not None and self._nc.is_reconnecting else "no reply"
            return SinkError(f"no JetStream ack for event {event.event_id} within {self._ack_timeout:g} s ({state})")
        reply = future.result()
        if reply.get("no_responders"):
            return SinkError(
                f"no JetStream stream stores subject {self._subject(event)!r} (event {event.event_id}); "
                "create the stream or pass ensure_stream=True with stream= and stream_subjects="
            )
        error = reply.get("error")
        if error is not None:
            return SinkError(
                f"JetStream refused event {event.event_id}: {error.get('description', error)} "
                f"(code {error.get('code')}, err_code {error.get('err_code')})"
            )
        if reply.get("duplicate"):
            _log.debug("sink_duplicate_suppressed", sink=self.name, event_id=event.event_id, stream=reply.get("stream"))
        return None


def _default_stream_subject(subject: Naming) -> str:
    if isinstance(subject, str) and "{" in subject:
        prefix = subject[: subject.index("{")]
        if prefix.endswith(".") and len(prefix) > 1 and "}" not in prefix:
            return prefix + ">"
    if isinstance(subject, str) and "{" not in subject:
        return subject
    raise ConfigurationError(
        "cannot derive the stream's subjects from the subject naming; pass stream_subjects=[...]"
    )


async def _quiet_close(nc: Any) -> None:
    # Closing a half-open or already closed client must never mask the real error.
    try:
        await nc.close()
    except Exception as exc:  # noqa: BLE001 - nats-py raises assorted errors on close
        _log.debug("sink_close_error", error_message=repr(exc))
