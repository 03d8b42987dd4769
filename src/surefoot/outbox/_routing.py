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

    Async handlers run on the dispatcher's event loop, the events of a batch concurrently;
    sync handlers run in the default thread pool so they never block it. While a handler
    runs, :mod:`surefoot.context` carries the event's ids (``causation_id`` is the event's
    own id, so events the handler writes point back at it) and structlog's context carries
    ``event_name``, ``outbox_id`` and ``attempts``.

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

    def _bind(self, event: Event) -> tuple[dict[str, Any], dict[str, Any]]:
        tokens = context.bind(
            correlation_id=event.correlation_id,
            causation_id=event.event_id,
            tenant_id=event.tenant_id,
        )
        log_tokens = structlog.contextvars.bind_contextvars(
            event_name=event.event_name, outbox_id=event.outbox_id, attempts=event.attempts + 1
        )
        return tokens, log_tokens

    @staticmethod
    def _unbind(tokens: dict[str, Any], log_tokens: dict[str, Any]) -> None:
        structlog.contextvars.reset_contextvars(**log_tokens)
        for name, token in tokens.items():
            getattr(context, name).reset(token)

    async def _threaded(self, event: Event) -> BaseException | None:
        tokens, log_tokens = self._bind(event)
        try:
            result = await asyncio.to_thread(self.fn, event)  # copies the bound context
            if inspect.isawaitable(result):  # e.g. a lambda returning a coroutine
                await result
            return None
        except Exception as exc:  # a handler failure is recorded on the event, not raised
            return exc
        finally:
            self._unbind(tokens, log_tokens)

    def _start(self, event: Event) -> Any:
        """Run an async handler eagerly up to its first suspension.

        Returns the outcome (``None`` or the exception) when the handler finished without
        waiting, otherwise a task that finishes it. Handlers that complete at once (cache
        writes, in-memory fan-out) then cost no task; the others still run concurrently.
        The task is created while the event's ids are bound, so it keeps them.
        """
        tokens, log_tokens = self._bind(event)
        try:
            coro = self.fn(event)
            try:
                first = coro.send(None)
            except StopIteration:
                return None
            except Exception as exc:  # a handler failure is recorded on the event, not raised
                return exc
            return asyncio.get_running_loop().create_task(_finish(coro, first))
        except Exception as exc:  # calling the handler itself failed (bad signature, ...)
            return exc
        finally:
            self._unbind(tokens, log_tokens)

    async def _traced(self, event: Event, tracer: Any) -> BaseException | None:
        """Run one delivery inside an ``outbox.dispatch`` span continuing the event's trace."""
        with dispatch_span(event, self.name) as span:
            if self.is_async:
                # In a task of its own from the start (not run eagerly), so context variables
                # and cancel scopes the handler enters are left in the same task and context.
                tokens, log_tokens = self._bind(event)
                try:
                    task = asyncio.get_running_loop().create_task(
                        _outcome(self.fn, event), context=contextvars.copy_context()
                    )
                finally:
                    self._unbind(tokens, log_tokens)
                outcome = await task
            else:
                outcome = await self._threaded(event)
            if outcome is not None:
                mark_failed(span, outcome)
            return outcome

    async def send_many(self, events: Sequence[Event]) -> list[BaseException | None]:
        tracer = _tracer()
        if tracer is not None:
            return list(await asyncio.gather(*(self._traced(e, tracer) for e in events)))
        if not self.is_async:
            if len(events) == 1:
                return [await self._threaded(events[0])]
            return list(await asyncio.gather(*(self._threaded(e) for e in events)))
        results: list[Any] = [self._start(e) for e in events]
        waiting = [(i, r) for i, r in enumerate(results) if isinstance(r, asyncio.Task)]
        if waiting:
            try:
                done = await asyncio.gather(*(t for _, t in waiting))
            except BaseException:
                for _, task in waiting:
                    task.cancel()
                raise
            for (i, _), outcome in zip(waiting, done):
                results[i] = outcome
        return results

    def __repr__(self) -> str:
        return f"HandlerSink({self.name})"


def _tracer() -> Any:
    # OpenTelemetry is never imported here: spans only make sense when tracing is on.
    return active_tracer()


class _Resume:
    """Drives a coroutine that was started outside a task, from its first suspension on."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Any:
        coro, to_yield = self.coro, self.first
        while True:
            try:
                sent = yield to_yield
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and the like go into the handler
                try:
                    to_yield = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    to_yield = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _outcome(fn: Any, event: Event) -> BaseException | None:
    try:
        await fn(event)
        return None
    except Exception as exc:  # a handler failure is recorded on the event, not raised
        return exc


async def _finish(coro: Any, first: Any) -> BaseException | None:
    try:
        await _Resume(coro, first)
        return None
    except Exception as exc:  # a handler failure is recorded on the event, not raised
        return exc


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
