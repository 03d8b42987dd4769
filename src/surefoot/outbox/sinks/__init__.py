"""Broker sinks for the outbox: NATS JetStream, Redis Streams, RabbitMQ and HTTP webhooks.

Each sink is an extra and is imported on first use, so ``import surefoot.outbox.sinks``
imports no broker client::

    from surefoot.outbox.sinks import NatsSink       # needs surefoot[nats]
    from surefoot.outbox.sinks import RedisStreamSink  # needs surefoot[redis]
    from surefoot.outbox.sinks import RabbitMQSink   # needs surefoot[rabbitmq]
    from surefoot.outbox.sinks import HttpSink       # needs surefoot[http]

Every sink follows :class:`surefoot.outbox.Sink`: ``open()``, ``close()`` and
``send_many(events)``, which returns ``None`` or an error position by position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._http import HttpSink, parse_retry_after
    from ._nats import NatsSink
    from ._rabbitmq import RabbitMQSink
    from ._redis import RedisStreamSink

__all__ = ["NatsSink", "RedisStreamSink", "RabbitMQSink", "HttpSink", "parse_retry_after", "event_headers"]

_LAZY = {
    "NatsSink": "._nats",
    "RedisStreamSink": "._redis",
    "RabbitMQSink": "._rabbitmq",
    "HttpSink": "._http",
    "parse_retry_after": "._http",
    "event_headers": "._base",
}


from ..._core.extras import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
