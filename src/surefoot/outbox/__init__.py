"""Transactional outbox: write events in the business transaction, dispatch them at least once.

Writing::

    from surefoot import outbox

    with engine.begin() as conn:                      # or a Session / AsyncSession
        conn.execute(insert(calls).values(...))
        outbox.add(conn, "CallDetected", {"call_sid": sid}, key=sid)

Dispatching (a worker process, ``surefoot outbox run``, or the application's lifespan)::

    @outbox.handler("CallDetected")
    async def send_first_sms(event: outbox.Event) -> None: ...

    dispatcher = outbox.Dispatcher(engine)
    async with dispatcher.running():
        ...

Importing this package does not import SQLAlchemy; the names that need it are loaded on
first use.
"""

from __future__ import annotations

from ._add import add, build_event, emit, events_enabled
from ._catalogue import EventCatalogue, EventSchemaError, default_catalogue, register_event
from ._event import Event, RetryLater, Sink, SinkDisabled, SinkError
from ._routing import HandlerSink, Router, default_router, handler

__all__ = [
    "Event",
    "Sink",
    "SinkError",
    "RetryLater",
    "SinkDisabled",
    "add",
    "emit",
    "build_event",
    "events_enabled",
    "EventCatalogue",
    "EventSchemaError",
    "default_catalogue",
    "register_event",
    "create_tables",
    "drop_tables",
    "events_table",
    "dead_letters_table",
    "paused_table",
    "Dispatcher",
    "StopReport",
    "MemoryStore",
    "Store",
    "pg_connect_args",
    "OutboxSettings",
    "Router",
    "HandlerSink",
    "handler",
    "default_router",
    "Backoff",
    "FullJitter",
    "NatsSink",
    "RedisStreamSink",
    "RabbitMQSink",
    "HttpSink",
]

_LAZY = {
    "create_tables": "._schema",
    "drop_tables": "._schema",
    "events_table": "._schema",
    "dead_letters_table": "._schema",
    "paused_table": "._schema",
    "Dispatcher": "._dispatcher",
    "StopReport": "._loop",
    "MemoryStore": "._memory",
    "Store": "._stores",
    "pg_connect_args": "._database",
    "OutboxSettings": "._settings",
    "Backoff": "._backoff",
    "FullJitter": "._backoff",
    "NatsSink": ".sinks._nats",
    "RedisStreamSink": ".sinks._redis",
    "RabbitMQSink": ".sinks._rabbitmq",
    "HttpSink": ".sinks._http",
}


from .._core.extras import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
