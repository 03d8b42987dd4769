"""RabbitMQ sink (extra ``rabbitmq``): persistent, mandatory publishes with publisher confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from ..._core.extras import require
from ...errors import ConfigurationError
from .._event import Event, SinkError
from ._base import BaseSink, NameResolver, Naming, encode, event_headers, gather_positional

__all__ = ["RabbitMQSink"]

_log = structlog.get_logger("surefoot.outbox")

_EXCHANGE_TYPES = ("topic", "direct", "fanout", "headers")


def _check_routing_key(key: str) -> str | None:
    if len(key.encode()) > 255:
        return "an AMQP routing key is at most 255 bytes"
    return None


class RabbitMQSink(BaseSink):
    """Publish events to a RabbitMQ exchange and wait for the broker's confirm of each.

    The channel runs in confirm mode, messages are persistent (``delivery_mode=2``) and
    published with ``mandatory=True``: a message no queue is bound for comes back as
    ``basic.return`` and fails *that* event with :class:`SinkError` (it is never dropped
    silently), while the rest of the batch is delivered. A ``basic.nack`` fails its event
    too. Properties: ``message_id = event_id``, ``correlation_id``, ``type = event_name``,
    ``timestamp = occurred_at``, ``content_type = application/json``; the AMQP headers
    table carries the other fields of :func:`~surefoot.outbox.sinks.event_headers`
    (``event_id``, ``event_name``, ``schema_version``, ids, trace headers). RabbitMQ
    has no dedupe: consumers dedupe on ``message_id``.

    Reconnects: the connection is aio-pika's robust connection; after a network failure it
    reconnects in the background (every ``reconnect_interval`` seconds) and restores the
    channel and exchange. Publishes made while it is down fail with :class:`SinkError` and
    are retried by the dispatcher; a lost confirm is reported as a failure even if the
    broker stored the message, so a consumer may see a duplicate.

    Args:
        url: AMQP URL, e.g. ``"amqp://guest:guest@127.0.0.1:5672/"``.
        exchange: the exchange name; ``""`` publishes through the default exchange
            (routing key = queue name).
        exchange_type: ``"topic"`` (default), ``"direct"``, ``"fanout"`` or ``"headers"``.
        routing_key: template (fields ``event_name``, ``schema_version``, ``tenant_id``,
            ``key``) or callable; default ``"{event_name}"``.
        declare_exchange: declare the exchange (durable) on ``open()``; when ``False`` it
            must exist already (checked passively on ``open()``).
        confirm_timeout: seconds to wait for the confirm of each publish.
        connect_timeout: seconds ``open()`` may take.
        reconnect_interval: seconds between reconnect attempts.
        connect_options: extra keyword arguments for ``aio_pika.connect_robust``.
        name: the sink's name (metrics label ``sink``).

    Raises:
        ConfigurationError: a bad argument.
        MissingExtraError: aio-pika is not installed (``pip install 'surefoot[rabbitmq]'``).
    """

    def __init__(
        self,
        url: str = "amqp://guest:guest@127.0.0.1:5672/",
        *,
        exchange: str = "events",
        exchange_type: str = "topic",
        routing_key: Naming = "{event_name}",
        declare_exchange: bool = True,
        confirm_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        reconnect_interval: float = 2.0,
        connect_options: Mapping[str, Any] | None = None,
        name: str = "rabbitmq",
    ) -> None:
        require("aio_pika", "rabbitmq")
        super().__init__(name=name)
        if not isinstance(url, str) or not url.startswith(("amqp://", "amqps://")):
            raise ConfigurationError(f"RabbitMQSink needs an amqp:// or amqps:// URL, got {url!r}")
        if exchange_type not in _EXCHANGE_TYPES:
            raise ConfigurationError(f"exchange_type must be one of {_EXCHANGE_TYPES}, got {exchange_type!r}")
        if not isinstance(exchange, str):
            raise ConfigurationError("exchange must be a string ('' for the default exchange)")
        for label, value in (
            ("confirm_timeout", confirm_timeout),
            ("connect_timeout", connect_timeout),
            ("reconnect_interval", reconnect_interval),
        ):
            if not value > 0:
                raise ConfigurationError(f"{label} must be > 0 seconds, got {value!r}")
        self._url = url
        self._exchange_name = exchange
        self._exchange_type = exchange_type
        self._routing_key = NameResolver(routing_key, what="routing key", validate=_check_routing_key)
        self._declare = declare_exchange
        self._confirm_timeout = float(confirm_timeout)
        self._connect_timeout = float(connect_timeout)
        self._connect_options = dict(connect_options or {})
        self._connect_options.setdefault("reconnect_interval", reconnect_interval)
        self._connection: Any = None
        self._channel: Any = None
        self._exchange: Any = None

    async def _connect(self) -> None:
        aio_pika = require("aio_pika", "rabbitmq")
        aiormq = require("aiormq", "rabbitmq")
        connection = None
        try:
            connection = await asyncio.wait_for(
                aio_pika.connect_robust(self._url, timeout=self._connect_timeout, **self._connect_options),
                self._connect_timeout,
            )
            channel = await asyncio.wait_for(
                connection.channel(publisher_confirms=True, on_return_raises=True),
                self._connect_timeout,
            )
            if self._exchange_name == "":
                exchange = channel.default_exchange
            else:
                exchange = await asyncio.wait_for(
                    channel.declare_exchange(
                        self._exchange_name,
                        aio_pika.ExchangeType(self._exchange_type),
                        durable=True,
                        passive=not self._declare,
                    ),
                    self._connect_timeout,
                )
        except (TimeoutError, aiormq.exceptions.AMQPError, OSError) as exc:
            if connection is not None:
                await _quiet_close(connection)
            what = "reach RabbitMQ" if connection is None else f"set up exchange {self._exchange_name!r}"
            raise SinkError(f"sink {self.name!r} cannot {what}: {exc!r}") from exc
        self._connection, self._channel, self._exchange = connection, channel, exchange

    async def _disconnect(self) -> None:
        connection, self._connection, self._channel, self._exchange = self._connection, None, None, None
        if connection is not None:
            await _quiet_close(connection)

    def _message(self, event: Event) -> tuple[str, Any]:
        aio_pika = require("aio_pika", "rabbitmq")
        routing_key = self._routing_key(event)
        body = encode(event)
        headers: dict[str, Any] = event_headers(event)
        content_type = headers.pop("content-type")
        message = aio_pika.Message(
            body,
            headers=headers,
            content_type=content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.event_id,
            correlation_id=event.correlation_id,
            type=event.event_name,
            timestamp=event.occurred_at,
        )
        return routing_key, message

    async def _send(self, events: Sequence[Event]) -> list[BaseException | None]:
        return await gather_positional([self._publish(event) for event in events], sink=self.name)

    async def _publish(self, event: Event) -> None:
        aiormq = require("aiormq", "rabbitmq")
        routing_key, message = self._message(event)
        try:
            await self._exchange.publish(
                message, routing_key, mandatory=True, timeout=self._confirm_timeout
            )
        except aiormq.exceptions.PublishError as exc:
            frame = getattr(exc, "frame", None)
            reason = getattr(frame, "reply_text", None) or "returned"
            raise SinkError(
                f"RabbitMQ could not route event {event.event_id} (exchange {self._exchange_name!r}, "
                f"routing key {routing_key!r}): {reason}; bind a queue for it"
            ) from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise SinkError(f"RabbitMQ refused event {event.event_id} (nack): {exc!r}") from exc
        except TimeoutError as exc:
            raise SinkError(
                f"no RabbitMQ confirm for event {event.event_id} within {self._confirm_timeout:g} s"
            ) from exc
        except (aiormq.exceptions.AMQPError, OSError, RuntimeError) as exc:
            # RuntimeError: aio-pika's "channel closed" while the robust connection reconnects.
            raise SinkError(f"RabbitMQ publish of event {event.event_id} failed: {exc!r}") from exc


async def _quiet_close(connection: Any) -> None:
    try:
        await connection.close()
    except Exception as exc:  # noqa: BLE001 - closing a broken connection may raise anything
        _log.debug("sink_close_error", error_message=repr(exc))
