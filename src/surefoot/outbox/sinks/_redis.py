"""Redis Streams sink (extra ``redis``): one ``XADD`` per event, a pipeline per batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from ..._core.extras import require
from ...errors import ConfigurationError
from .._event import Event, SinkError
from ._base import BaseSink, NameResolver, Naming, encode, event_headers

__all__ = ["RedisStreamSink"]

_log = structlog.get_logger("surefoot.outbox")

# XADD guarded by a dedupe marker, atomically (a script runs alone on the server).
# KEYS[1] = stream, KEYS[2] = dedupe key; ARGV[1] = marker TTL in ms, ARGV[2] = MAXLEN
# ('' for none), ARGV[3] = '~' or '=' ; ARGV[4..] = field, value, ...
# Returns {1, id} when added, {0, id-of-the-first-copy} when the event was already added.
_DEDUPE_XADD = """
local prev = redis.call('GET', KEYS[2])
if prev then return {0, prev} end
local args = {'XADD', KEYS[1]}
if ARGV[2] ~= '' then
  args[#args + 1] = 'MAXLEN'
  args[#args + 1] = ARGV[3]
  args[#args + 1] = ARGV[2]
end
args[#args + 1] = '*'
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
local id = redis.call(unpack(args))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return {1, id}
"""


class RedisStreamSink(BaseSink):
    """Append events to Redis Streams with ``XADD``, one pipeline round trip per batch.

    Each entry has the fields of :func:`~surefoot.outbox.sinks.event_headers`
    (``event_id``, ``event_name``, ``schema_version``, ``correlation_id``,
    ``causation_id``, ``tenant_id``, trace headers, ``content-type``) and the JSON
    envelope under ``envelope_field`` (``"envelope"``).

    Redis Streams has no built-in deduplication: an at-least-once redelivery appends a
    second entry. With ``dedupe=True`` each event is added by a Lua script that first
    checks, then sets, a marker key ``{dedupe_prefix}{stream}:{event_id}`` (value: the
    entry id, TTL ``dedupe_ttl`` seconds) in the same atomic step as the ``XADD``, so a
    redelivery within the TTL is reported as delivered without a second entry. On Redis
    Cluster the stream name must carry a hash tag (template ``"{{events}}.{event_name}"``)
    so the stream and its markers share a slot.

    Reconnects: redis-py opens connections from its pool on demand, so a restarted Redis
    is used again by the next batch; while it is down every event of a batch fails with
    :class:`SinkError`. The pipeline is not a transaction: a failed entry does not stop
    the others.

    Args:
        url: Redis URL, e.g. ``"redis://127.0.0.1:6379/0"``; ignored when ``client`` is given.
        client: an existing ``redis.asyncio.Redis`` (left open by ``close()``).
        stream: stream name template (fields ``event_name``, ``schema_version``,
            ``tenant_id``, ``key``) or callable; ``"events"`` puts every event in one stream.
        maxlen: trim each stream to about this many entries (``MAXLEN ~``); ``None``: no trim.
        approximate: ``MAXLEN ~`` (cheap, default) rather than the exact ``MAXLEN =``.
        dedupe: refuse a second copy of an ``event_id`` for ``dedupe_ttl`` seconds.
        dedupe_ttl: lifetime of a dedupe marker, seconds (default one day).
        dedupe_prefix: the marker keys' prefix.
        envelope_field: the entry field holding the JSON envelope.
        socket_timeout: seconds for one Redis round trip.
        connect_timeout: seconds to open a connection.
        name: the sink's name (metrics label ``sink``).

    Raises:
        ConfigurationError: a bad argument.
        MissingExtraError: redis-py is not installed (``pip install 'surefoot[redis]'``).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: Any = None,
        stream: Naming = "events.{event_name}",
        maxlen: int | None = None,
        approximate: bool = True,
        dedupe: bool = False,
        dedupe_ttl: float = 86_400.0,
        dedupe_prefix: str = "surefoot:outbox:dedupe:",
        envelope_field: str = "envelope",
        socket_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        name: str = "redis",
    ) -> None:
        require("redis.asyncio", "redis")
        super().__init__(name=name)
        if client is None and (not isinstance(url, str) or "://" not in url):
            raise ConfigurationError(f"RedisStreamSink needs a redis:// URL or client=, got {url!r}")
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen < 1):
            raise ConfigurationError(f"maxlen must be a positive int or None, got {maxlen!r}")
        if dedupe and not dedupe_ttl > 0:
            raise ConfigurationError(f"dedupe_ttl must be > 0 seconds, got {dedupe_ttl!r}")
        if not envelope_field or envelope_field in event_headers(Event("x", {})):
            raise ConfigurationError(
                f"envelope_field {envelope_field!r} must be non-empty and not a header field name"
            )
        for label, value in (("socket_timeout", socket_timeout), ("connect_timeout", connect_timeout)):
            if not value > 0:
                raise ConfigurationError(f"{label} must be > 0 seconds, got {value!r}")
        self._url = url
        self._client = client
        self._owns_client = client is None
        self._stream = NameResolver(stream, what="Redis stream name")
        self._maxlen = maxlen
        self._approximate = approximate
        self._dedupe = dedupe
        self._dedupe_ttl_ms = max(1, int(dedupe_ttl * 1000))
        self._dedupe_prefix = dedupe_prefix
        self._envelope_field = envelope_field
        self._socket_timeout = float(socket_timeout)
        self._connect_timeout = float(connect_timeout)
        self._script: Any = None

    async def _connect(self) -> None:
        redis = require("redis.asyncio", "redis")
        errors = require("redis.exceptions", "redis")
        if self._client is None or self._owns_client:
            self._client = redis.from_url(
                self._url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._connect_timeout,
            )
        try:
            await self._client.ping()
        except (errors.RedisError, OSError) as exc:
            if self._owns_client:
                await self._client.aclose()
                self._client = None
            raise SinkError(f"cannot reach Redis for sink {self.name!r}: {exc!r}") from exc
        self._script = self._client.register_script(_DEDUPE_XADD) if self._dedupe else None

    async def _disconnect(self) -> None:
        client = self._client
        if self._owns_client and client is not None:
            self._client = None
            await client.aclose()

    def _fields(self, event: Event) -> dict[str, bytes | str]:
        fields: dict[str, bytes | str] = dict(event_headers(event))
        fields[self._envelope_field] = encode(event)
        return fields

    async def _send(self, events: Sequence[Event]) -> list[BaseException | None]:
        errors = require("redis.exceptions", "redis")
        results: list[BaseException | None] = [None] * len(events)
        queued: list[int] = []
        pipe = self._client.pipeline(transaction=False)
        for index, event in enumerate(events):
            try:
                stream = self._stream(event)
                fields = self._fields(event)
            except SinkError as exc:
                results[index] = exc
                continue
            if self._script is not None:
                args: list[Any] = [
                    self._dedupe_ttl_ms,
                    self._maxlen if self._maxlen is not None else "",
                    "~" if self._approximate else "=",
                ]
                for key, value in fields.items():
                    args.append(key)
                    args.append(value)
                await self._script(
                    keys=[stream, f"{self._dedupe_prefix}{stream}:{event.event_id}"], args=args, client=pipe
                )
            else:
                pipe.xadd(stream, fields, maxlen=self._maxlen, approximate=self._approximate)
            queued.append(index)
        if not queued:
            return results
        try:
            replies = await pipe.execute(raise_on_error=False)
        except (errors.RedisError, OSError) as exc:
            err = SinkError(f"Redis pipeline of {len(queued)} event(s) failed: {exc!r}")
            err.__cause__ = exc
            for index in queued:
                results[index] = err
            return results
        for index, reply in zip(queued, replies, strict=False):
            if isinstance(reply, BaseException):
                err = SinkError(f"Redis refused event {events[index].event_id}: {reply}")
                err.__cause__ = reply
                results[index] = err
            elif self._script is not None and int(reply[0]) == 0:
                _log.debug("sink_duplicate_suppressed", sink=self.name, event_id=events[index].event_id)
        return results
