"""Test doubles for the outbox: an in-memory outbox and ``drain()``.

``InMemoryOutbox`` is a first-class outbox without a database: ``add()`` builds and validates
events exactly like :func:`surefoot.outbox.add`, and it can be passed where the code under
test expects a connection (``outbox.add(fake, ...)`` writes into it). :func:`drain` delivers
everything pending synchronously, from an ``InMemoryOutbox`` or from a real database table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..outbox._add import build_event
from ..outbox._event import Event, RetryLater, SinkDisabled
from ..outbox._routing import Router, default_router

__all__ = ["InMemoryOutbox", "DrainResult", "drain", "adrain"]


@dataclass
class DrainResult:
    """What one :func:`drain` did."""

    delivered: list[Event] = field(default_factory=list)
    failed: list[tuple[Event, BaseException]] = field(default_factory=list)
    dead_lettered: list[Event] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.delivered)


class InMemoryOutbox:
    """An outbox held in memory, for tests of code that writes or handles events.

    Args:
        max_attempts: failures after which :func:`drain` moves an event to
            :attr:`dead_letters`.
        catalogue: the event catalogue to validate against (default: the process one).
    """

    def __init__(self, *, max_attempts: int = 3, catalogue: Any = None) -> None:
        self.max_attempts = max_attempts
        self.catalogue = catalogue
        self.events: list[Event] = []
        self.pending: list[Event] = []
        self.delivered: list[Event] = []
        self.dead_letters: list[tuple[Event, str]] = []
        self._next_id = 1

    def add(self, event_name: str, payload: Mapping[str, Any], **kwargs: Any) -> Event:
        """Record an event (same keywords and validation as :func:`surefoot.outbox.add`)."""
        available_at = kwargs.pop("available_at", None)
        if available_at is not None:
            raise NotImplementedError("InMemoryOutbox does not delay events; drain delivers at once")
        kwargs.setdefault("catalogue", self.catalogue)
        event = build_event(event_name, payload, **kwargs)
        object.__setattr__(event, "outbox_id", self._next_id)
        self._next_id += 1
        self.events.append(event)
        self.pending.append(event)
        return event

    # outbox.add(fake, ...) lands here, so code under test needs no change
    def _outbox_add(self, event_name: str, payload: Mapping[str, Any], **kwargs: Any) -> Event:
        return self.add(event_name, payload, **kwargs)

    def names(self) -> list[str]:
        """The names of every event added, in order."""
        return [e.event_name for e in self.events]

    def of(self, event_name: str) -> list[Event]:
        """The events added with ``event_name``."""
        return [e for e in self.events if e.event_name == event_name]

    def clear(self) -> None:
        """Forget every event."""
        self.events.clear()
        self.pending.clear()
        self.delivered.clear()
        self.dead_letters.clear()

    async def adrain(self, router: Router | None = None, *, raise_errors: bool = True) -> DrainResult:
        """Deliver pending events to ``router`` (default: ``@outbox.handler`` routes).

        Events added by handlers during the drain are delivered too. A failing event is
        retried in the next pass until ``max_attempts``, then dead-lettered.

        Raises:
            Exception: with ``raise_errors``, the first handler failure once the drain ends.
        """
        router = router or default_router
        result = DrainResult()
        for destination in router.destinations:
            await destination.open()
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                for event in batch:
                    error = await _deliver(router, event)
                    if error is None:
                        self.delivered.append(event)
                        result.delivered.append(event)
                        continue
                    result.failed.append((event, error))
                    attempts = event.attempts + 1
                    object.__setattr__(event, "attempts", attempts)
                    if isinstance(error, SinkDisabled) or attempts >= self.max_attempts:
                        self.dead_letters.append((event, f"{type(error).__name__}: {error}"))
                        result.dead_lettered.append(event)
                    else:
                        self.pending.append(event)
        finally:
            for destination in router.destinations:
                await destination.close()
        if raise_errors and result.failed:
            event, error = result.failed[0]
            if not isinstance(error, RetryLater):
                raise error
        return result


async def _deliver(router: Router, event: Event) -> BaseException | None:
    destinations = router.resolve(event.event_name)
    if not destinations:
        return LookupError(f"no handler or sink routes event {event.event_name!r}")
    for destination in destinations:
        results = await destination.send_many([event])
        if results and results[0] is not None:
            return results[0]
    return None


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
        return await target.adrain(router, raise_errors=raise_errors)
    from ..outbox._dispatcher import Dispatcher

    dispatcher_kwargs.setdefault("listen", False)
    dispatcher = Dispatcher(target, router=router, **dispatcher_kwargs)
    try:
        return await dispatcher.drain()
    finally:
        await dispatcher._close()
        await dispatcher._db.dispose()


def drain(target: Any, **kwargs: Any) -> Any:
    """Deliver everything pending now, synchronously, and return what was delivered.

    Args:
        target: an :class:`InMemoryOutbox` (returns a :class:`DrainResult`), or a database
            URL / ``Engine`` / ``AsyncEngine`` whose ``outbox_events`` table is drained with a
            real :class:`~surefoot.outbox.Dispatcher` (returns the number of events claimed).
        **kwargs: ``router=``, ``handlers=``, ``sinks=``, ``raise_errors=`` and, for a
            database, any :class:`~surefoot.outbox.Dispatcher` keyword (``clock=``, ...).

    Raises:
        RuntimeError: called inside a running event loop (use ``await adrain(...)``).
    """
    return _run(adrain(target, **kwargs))


