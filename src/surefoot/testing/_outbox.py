"""Test doubles for the outbox: an in-memory outbox and ``drain()``.

``InMemoryOutbox`` is an outbox without a database: ``add()`` builds and validates events
exactly like :func:`surefoot.outbox.add`, and it can be passed where the code under test
expects a connection (``outbox.add(fake, ...)`` writes into it). :func:`drain` delivers
everything pending with the real :class:`~surefoot.outbox.Dispatcher` running on a
:class:`~surefoot.outbox.MemoryStore` (or on a real database table), so tests exercise the
same claiming, retries, dead-lettering, ordering and handler execution as production.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..outbox._add import build_event
from ..outbox._event import Event, RetryLater
from ..outbox._memory import MemoryStore
from ..outbox._routing import HandlerSink, Router, default_router

__all__ = ["InMemoryOutbox", "DrainResult", "drain", "adrain"]


@dataclass
class DrainResult:
    """What one :func:`drain` did."""

    delivered: list[Event] = field(default_factory=list)
    failed: list[tuple[Event, BaseException]] = field(default_factory=list)
    dead_lettered: list[Event] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.delivered)


class _NoWait:
    """Retries are due at once in a drain: a drain is one go, not a schedule."""

    def delay(self, attempts: int, rng: Any) -> float:
        return 0.0


class InMemoryOutbox:
    """An outbox held in memory, for tests of code that writes or handles events.

    Args:
        max_attempts: attempts after which a failing event is dead-lettered (the
            dispatcher's ``max_attempts``).
        catalogue: the event catalogue to validate against (default: the process one).

    Attributes:
        store: the :class:`~surefoot.outbox.MemoryStore` the dispatcher runs on.
    """

    def __init__(self, *, max_attempts: int = 3, catalogue: Any = None) -> None:
        self.max_attempts = max_attempts
        self.catalogue = catalogue
        self.store = MemoryStore()
        self.events: list[Event] = []

    def add(self, event_name: str, payload: Mapping[str, Any], **kwargs: Any) -> Event:
        """Record an event (same keywords and validation as :func:`surefoot.outbox.add`)."""
        available_at = kwargs.pop("available_at", None)
        kwargs.setdefault("catalogue", self.catalogue)
        event = build_event(event_name, payload, **kwargs)
        if isinstance(available_at, (int, float)):
            available_at = dt.datetime.fromtimestamp(available_at, dt.UTC)
        return self.add_event(event, available_at=available_at)

    def add_event(self, event: Event, *, available_at: dt.datetime | None = None) -> Event:
        """Store a built event (``outbox.add(fake, ...)`` lands here)."""
        if self.catalogue is not None:
            self.catalogue.validate(event.event_name, event.payload, version=event.schema_version)
        stored = self.store.add_event(event, available_at=available_at)
        self.events.append(stored)
        return stored

    @property
    def pending(self) -> list[Event]:
        """Events not yet delivered nor dead-lettered."""
        return self.store.pending

    @property
    def delivered(self) -> list[Event]:
        """Events delivered, in delivery order."""
        return [e for kind, e in self.store.journal if kind == "delivered"]

    @property
    def dead_letters(self) -> list[tuple[Event, str]]:
        """Dead-lettered events with their last error."""
        return [(e, error) for e, error, _ in self.store.dead_letters]

    def names(self) -> list[str]:
        """The names of every event added, in order."""
        return [e.event_name for e in self.events]

    def of(self, event_name: str) -> list[Event]:
        """The events added with ``event_name``."""
        return [e for e in self.events if e.event_name == event_name]

    def clear(self) -> None:
        """Forget every event."""
        self.events.clear()
        self.store.clear()

    async def adrain(self, router: Router | None = None, *, raise_errors: bool = True,
                     **dispatcher_kwargs: Any) -> DrainResult:
        """Deliver pending events to ``router`` (default: ``@outbox.handler`` routes) with
        the real dispatcher.

        Events added by handlers during the drain are delivered too. A failing event is
        retried at once until ``max_attempts``, then dead-lettered.

        Raises:
            Exception: with ``raise_errors``, the first handler failure once the drain ends
                (``RetryLater`` excepted).
        """
        from prometheus_client import CollectorRegistry

        from ..outbox._dispatcher import Dispatcher

        result = DrainResult()
        recording = _recording_router(router or default_router, result.failed)
        dispatcher_kwargs.setdefault("registry", CollectorRegistry())
        dispatcher_kwargs.setdefault("backoff", _NoWait())
        dispatcher_kwargs.setdefault("max_attempts", self.max_attempts)
        dispatcher_kwargs.setdefault("listen", False)
        start = len(self.store.journal)
        dispatcher = Dispatcher(self.store, router=recording, **dispatcher_kwargs)
        try:
            await dispatcher.drain()
        finally:
            await dispatcher.aclose()
        for kind, event in self.store.journal[start:]:
            (result.delivered if kind == "delivered" else result.dead_lettered).append(event)
        if raise_errors and result.failed:
            event, error = result.failed[0]
            if not isinstance(error, RetryLater):
                raise error
        return result


def _recording_router(router: Router, failed: list[tuple[Event, BaseException]]) -> Router:
    """The same routes, each destination wrapped to record what failed (for ``raise_errors``)."""
    wrapped: dict[int, Any] = {}

    def wrap(dest: Any) -> Any:
        if id(dest) in wrapped:
            return wrapped[id(dest)]
        if isinstance(dest, HandlerSink):
            new: Any = HandlerSink(_recorded_handler(dest, failed), name=dest.name)
        else:
            new = _RecordedSink(dest, failed)
        wrapped[id(dest)] = new
        return new

    out = Router()
    for pattern, dest in router.routes:
        out.add_sink(pattern, wrap(dest))
    return out


def _recorded_handler(sink: HandlerSink, failed: list[tuple[Event, BaseException]]) -> Any:
    fn = sink.fn
    if sink.is_async:

        @functools.wraps(fn)
        async def run_async(event: Event) -> Any:
            try:
                return await fn(event)
            except Exception as exc:
                failed.append((event, exc))
                raise
            except asyncio.CancelledError:  # a drain stops nothing: this is handler_timeout
                failed.append((event, TimeoutError("the handler did not finish within handler_timeout")))
                raise

        return run_async

    @functools.wraps(fn)
    def run_sync(event: Event) -> Any:
        try:
            return fn(event)
        except Exception as exc:
            failed.append((event, exc))
            raise

    return run_sync


class _RecordedSink:
    def __init__(self, sink: Any, failed: list[tuple[Event, BaseException]]) -> None:
        self.sink = sink
        self.name = sink.name
        self.failed = failed

    async def open(self) -> None:
        await self.sink.open()

    async def close(self) -> None:
        await self.sink.close()

    async def send_many(self, events: Sequence[Event]) -> list[BaseException | None]:
        results = await self.sink.send_many(events)
        for event, outcome in zip(events, results, strict=False):
            if outcome is not None:
                self.failed.append((event, outcome))
        return list(results)


def _run(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("drain() was called inside a running event loop; use `await adrain(...)`")


async def adrain(
    target: Any,
    *,
    router: Router | None = None,
    handlers: Mapping[str, Any] | None = None,
    sinks: Mapping[str, Any] | None = None,
    raise_errors: bool = True,
    **dispatcher_kwargs: Any,
) -> Any:
    """Async twin of :func:`drain`."""
    if handlers or sinks:
        if router is not None:
            raise ValueError("pass either router= or handlers=/sinks=, not both")
        router = Router.build(handlers=handlers, sinks=sinks)
    if isinstance(target, InMemoryOutbox):
        return await target.adrain(router, raise_errors=raise_errors, **dispatcher_kwargs)
    from ..outbox._dispatcher import Dispatcher

    dispatcher_kwargs.setdefault("listen", False)
    dispatcher = Dispatcher(target, router=router, **dispatcher_kwargs)
    try:
        return await dispatcher.drain()
    finally:
        await dispatcher.aclose()


def drain(target: Any, **kwargs: Any) -> Any:
    """Deliver everything pending now, synchronously, and return what was delivered.

    Args:
        target: an :class:`InMemoryOutbox` (returns a :class:`DrainResult`), or a database
            URL / ``Engine`` / ``AsyncEngine`` / :class:`~surefoot.outbox.MemoryStore` whose
            events are drained with a real :class:`~surefoot.outbox.Dispatcher` (returns the
            number of events claimed; as in production, a failed event stays pending with
            its backoff and nothing is raised).
        **kwargs: ``router=``, ``handlers=``, ``sinks=``, ``raise_errors=`` (for an
            :class:`InMemoryOutbox`) and any :class:`~surefoot.outbox.Dispatcher` keyword
            (``clock=``, ...).

    Raises:
        RuntimeError: called inside a running event loop (use ``await adrain(...)``).
    """
    return _run(adrain(target, **kwargs))

