"""Where events go: in-process handlers and :class:`Sink` objects, routed by event name.

A route's pattern is an event name or a ``*`` wildcard (``"sms.*"``, ``"*"``). An event goes
to every destination whose pattern matches; if one fails the event is retried for all of
them, so destinations sharing an event must be idempotent (every event carries a stable
``event_id`` to dedupe on).
"""

from __future__ import annotations

import asyncio
import contextvars
import fnmatch
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from .. import context
from ..errors import ConfigurationError
from ..tracing._api import active_tracer
from ..tracing._hooks import dispatch_span, mark_failed
from ._event import Event, Sink

__all__ = ["Router", "HandlerSink", "handler", "default_router"]

Handler = Callable[[Event], Any]


class HandlerSink:
    """A sink that calls one in-process handler per event.

    Each delivery runs in its own :class:`asyncio.Task` with a copy of the context, so a
    handler may use anything a normal coroutine can: ``httpx.AsyncClient``, anyio cancel
    scopes (``anyio.move_on_after``), ``async with asyncio.timeout(...)``, surefoot's
    ``Timeout``/``Policy``, and context variables (``structlog.contextvars.bind_contextvars``)
    that never leak into another delivery or into the dispatcher's own log lines. Sync
    handlers run in a thread: the dispatcher's bounded handler pool, or the default executor
    when called through :meth:`send_many`. While a handler runs, :mod:`surefoot.context`
    carries the event's ids (``causation_id`` is the event's own id, so events the handler
    writes point back at it) and structlog's context carries ``event_name``, ``outbox_id``
    and ``attempts``.

    Args:
        fn: ``def handler(event)`` or ``async def handler(event)``; raising is a failure
            (raise :class:`RetryLater` to choose the delay, :class:`SinkDisabled` to
            dead-letter at once).
        name: the ``sink`` label of metrics (default: the function's qualified name).
    """

    def __init__(self, fn: Handler, *, name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigurationError(f"an outbox handler must be callable, got {fn!r}")
        self.fn = fn
        self.name = name or f"handler:{getattr(fn, '__qualname__', repr(fn))}"
        target = fn
        while isinstance(target, functools.partial):
            target = target.func
        self.is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            getattr(target, "__call__", None)
        )

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @staticmethod
    def _bind(event: Event) -> None:
        # called inside the delivery's own task, whose context is a copy: nothing to undo
        context.bind(
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            tenant_id=event.tenant_id,
        )
        structlog.contextvars.bind_contextvars(
            event_name=event.event_name, outbox_id=event.outbox_id, attempts=event.attempts + 1
        )

    async def run(self, event: Event, threads: Any = None) -> None:
        """Deliver one event; raises what the handler raised.

        Meant to be the whole body of a task created with a copied context (the dispatcher
        does this). ``threads`` runs sync handlers (anything with ``async run(fn, *args)``);
        default: the loop's default executor.
        """
        tracer = _tracer()
        if tracer is None:
            self._bind(event)
            await self._call(event, threads)
            return
        await self._traced(event, tracer, threads)

    async def _call(self, event: Event, threads: Any) -> None:
        if self.is_async:
            await self.fn(event)
            return
        if threads is not None:
            result = await threads.run(self.fn, event)
        else:
            ctx = contextvars.copy_context()
            result = await asyncio.get_running_loop().run_in_executor(None, ctx.run, self.fn, event)
        if inspect.isawaitable(result):  # e.g. a lambda returning a coroutine
            await result

    async def _traced(self, event: Event, tracer: Any, threads: Any) -> None:
        """Run one delivery inside an ``outbox.dispatch`` span continuing the event's trace."""
        # The span is opened before the handler's ids are bound: it carries the event's own
        # correlation and causation, the handler's context points back at the event.
        with dispatch_span(event, self.name) as span:
            self._bind(event)
            try:
                await self._call(event, threads)
            except Exception as exc:
                mark_failed(span, exc)
                raise

    async def send_many(self, events: Sequence[Event]) -> list[BaseException | None]:
        """The :class:`Sink` form: each event in its own task; outcomes position by position."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self.run(e), context=contextvars.copy_context()) for e in events]
        try:
            await asyncio.wait(tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return [outcome_of(t) for t in tasks]

    def __repr__(self) -> str:
        return f"HandlerSink({self.name})"


def outcome_of(task: asyncio.Task[Any]) -> BaseException | None:
    """A finished delivery task's outcome: ``None`` or what stopped it (never raises)."""
    if task.cancelled():
        return HandlerCancelled("the handler was cancelled before it finished")
    return task.exception()


class HandlerCancelled(Exception):
    """A handler's task ended cancelled without the dispatcher asking (a failed delivery)."""


def _tracer() -> Any:
    # OpenTelemetry is never imported here: spans only make sense when tracing is on.
    return active_tracer()


class Router:
    """Routes from event name patterns to handlers and sinks."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, Any]] = []
        self._cache: dict[str, tuple[Any, ...]] = {}

    def add_handler(self, pattern: str, fn: Handler, *, name: str | None = None) -> None:
        """Route events matching ``pattern`` to an in-process handler."""
        self._add(pattern, HandlerSink(fn, name=name))

    def add_sink(self, pattern: str, sink: Sink) -> None:
        """Route events matching ``pattern`` to a :class:`Sink` (NATS, Redis, webhooks, ...)."""
        if not hasattr(sink, "send_many") or not hasattr(sink, "name"):
            raise ConfigurationError(
                f"{sink!r} is not an outbox Sink: it needs a `name` and `async send_many(events)`"
            )
        self._add(pattern, sink)

    def _add(self, pattern: str, destination: Any) -> None:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigurationError(f"a route pattern must be a non-empty string, got {pattern!r}")
        self._routes.append((pattern, destination))
        self._cache.clear()

    def handler(self, pattern: str, *, name: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_handler`; returns the function unchanged."""

        def decorate(fn: Handler) -> Handler:
            self.add_handler(pattern, fn, name=name)
            return fn

        return decorate

    def resolve(self, event_name: str) -> tuple[Any, ...]:
        """The destinations of ``event_name`` in registration order (cached)."""
        found = self._cache.get(event_name)
        if found is None:
            found = tuple(d for p, d in self._routes if fnmatch.fnmatchcase(event_name, p))
            self._cache[event_name] = found
        return found

    @property
    def patterns(self) -> list[str]:
        """Every routed pattern (what a dispatcher using this router claims)."""
        return sorted({p for p, _ in self._routes})

    @property
    def routes(self) -> list[tuple[str, Any]]:
        """Every ``(pattern, destination)`` in registration order."""
        return list(self._routes)

    @property
    def destinations(self) -> list[Any]:
        """Every destination once."""
        seen: dict[int, Any] = {}
        for _, d in self._routes:
            seen.setdefault(id(d), d)
        return list(seen.values())

    def clear(self) -> None:
        """Forget every route (tests)."""
        self._routes.clear()
        self._cache.clear()

    @classmethod
    def build(
        cls,
        *,
        handlers: Mapping[str, Handler | Sequence[Handler]] | None = None,
        sinks: Mapping[str, Sink | Sequence[Sink]] | None = None,
    ) -> Router:
        """A router from ``{pattern: handler(s)}`` and ``{pattern: sink(s)}`` mappings."""
        router = cls()
        for pattern, fns in (handlers or {}).items():
            for fn in fns if isinstance(fns, (list, tuple)) else [fns]:
                router.add_handler(pattern, fn)
        for pattern, targets in (sinks or {}).items():
            for sink in targets if isinstance(targets, (list, tuple)) else [targets]:
                router.add_sink(pattern, sink)
        return router


default_router = Router()
"""The router :func:`handler` registers on and dispatchers use when given no routes."""


def handler(pattern: str, *, name: str | None = None) -> Callable[[Handler], Handler]:
    """Register an in-process handler on the default router::

        @outbox.handler("CallDetected")
        async def send_first_sms(event: outbox.Event) -> None: ...
    """
    return default_router.handler(pattern, name=name)
