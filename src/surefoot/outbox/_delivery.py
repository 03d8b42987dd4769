"""How a claimed batch is delivered: one task per delivery, a deadline per event.

Each (event, handler) delivery is an :class:`asyncio.Task` created with a copy of the
worker's context, so handlers can use anyio cancel scopes, ``asyncio.timeout``, httpx and
context variables as in any other coroutine, and nothing they bind leaks. A broker sink's
share of the batch (``send_many``) is one task as well. Every task of a batch starts at the
same moment and gets ``handler_timeout`` from there: what finished in time counts whatever
its neighbours do; what did not is cancelled and fails with a :class:`TimeoutError`.

A delivery that ignores its cancellation (a handler that swallows ``CancelledError``) is
given ``cancel_grace`` seconds, then *abandoned*: the dispatcher stops waiting for it, logs
it at ERROR and counts it, and its event stays leased (it is not released, so it is not
delivered again while the abandoned handler might still be running).

Sync handlers run in :class:`HandlerThreads`, a bounded pool of their own. A thread cannot
be interrupted: a sync handler that hangs past its deadline keeps its thread, its event
fails and is retried, and the thread stops counting against the pool's size, so hung sync
handlers never stop the delivery of other events. An event whose sync handler never got a
thread before the deadline was not attempted: it is given back at once, attempt undone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from ._event import SinkDisabled
from ._routing import HandlerSink, outcome_of

__all__ = ["HandlerThreads", "Delivery", "NotStarted", "deliver"]

_log = structlog.get_logger("surefoot.outbox")


class NotStarted(Exception):
    """A sync handler never got a thread before its deadline: the event was not attempted
    (it is given back at once with its attempt undone)."""


class HandlerThreads:
    """The bounded thread pool of sync handlers.

    At most ``size`` sync handlers run at once; the others wait (in order) for a thread. A
    handler still running when its delivery times out keeps its thread (a thread cannot be
    interrupted) but stops counting against ``size``, so hung handlers never take the
    capacity of the others. Up to ``hung_limit`` such threads are tolerated per pool; beyond
    that the pool is given up (logged at ERROR) and a fresh one started.

    Args:
        size: sync handlers running at once.
        hung_limit: hung threads per pool before it is replaced (default ``4 × size``).
    """

    def __init__(self, size: int, hung_limit: int | None = None) -> None:
        self.size = size
        self.hung_limit = hung_limit if hung_limit is not None else 4 * size
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self.hung = 0
        """Threads still running a handler whose delivery already timed out."""
        self.retired = 0
        """Pools given up because hung handlers held too many of their threads."""

    def _current(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is not None and self.hung >= self.hung_limit:
                _log.error(
                    "outbox_handler_threads_replaced",
                    hung_threads=self.hung,
                    hint="sync handlers hang past handler_timeout; their threads are abandoned",
                )
                self._pool.shutdown(wait=False)
                self._pool = None
                self.hung = 0
                self.retired += 1
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.size + self.hung_limit, thread_name_prefix="surefoot-outbox-handler"
                )
            return self._pool

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in a handler thread with the caller's context."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:  # one semaphore per event loop
            self._slots, self._slots_loop = asyncio.Semaphore(self.size), loop
        slots = self._slots
        try:
            await slots.acquire()
        except asyncio.CancelledError:
            raise NotStarted("no handler thread became free before the deadline (handler_threads)") from None
        try:
            pool = self._current()
            ctx = contextvars.copy_context()
            future = pool.submit(ctx.run, fn, *args)
            try:
                return await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                if not future.cancel():  # running: the thread is lost until the call returns
                    generation = pool
                    with self._lock:
                        self.hung += 1

                    def returned(_: Any) -> None:
                        with self._lock:
                            if self._pool is generation and self.hung > 0:
                                self.hung -= 1

                    future.add_done_callback(returned)
                raise
        finally:
            slots.release()

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self.hung = 0
        self._slots = None
        if pool is not None:
            pool.shutdown(wait=False)


class Delivery:
    """What :func:`deliver` found: outcomes per event, and what it had to abandon."""

    __slots__ = ("outcomes", "abandoned")

    def __init__(self, outcomes: list[BaseException | None], abandoned: set[int]) -> None:
        self.outcomes = outcomes
        self.abandoned = abandoned
        """Positions of events whose delivery ignored cancellation (keep them leased)."""


async def _send(dest: Any, events: list[Any]) -> list[BaseException | None]:
    try:
        results = await dest.send_many(events)
    except Exception as exc:  # a sink broke its contract: fail its whole share
        return [exc] * len(events)
    if len(results) != len(events):
        err = RuntimeError(
            f"sink {getattr(dest, 'name', dest)!r} returned {len(results)} results for {len(events)} events"
        )
        return [err] * len(events)
    return list(results)


async def deliver(
    router: Any,
    claimed: Sequence[Any],
    *,
    timeout: float,
    cancel_grace: float,
    threads: HandlerThreads | None,
    on_delivered: Callable[[Any, str], None],
    orphans: dict[asyncio.Task[Any], list[int]],
) -> Delivery:
    """Deliver a claimed batch; never raises for a delivery's failure.

    ``on_delivered(claimed_row, sink_name)`` is called for each successful delivery. Tasks
    that ignore cancellation are added to ``orphans`` (and removed when they end).
    """
    outcomes: list[BaseException | None] = [None] * len(claimed)
    loop = asyncio.get_running_loop()
    jobs: list[tuple[asyncio.Task[Any], Any, list[int]]] = []
    task: asyncio.Task[Any]
    groups: dict[int, tuple[Any, list[int]]] = {}
    for i, c in enumerate(claimed):
        destinations = router.resolve(c.event.event_name)
        if not destinations:
            outcomes[i] = LookupError(f"no handler or sink routes event {c.event.event_name!r}")
            continue
        for d in destinations:
            if isinstance(d, HandlerSink):
                task = loop.create_task(
                    d.run(c.event, threads), name=f"surefoot-outbox-delivery-{c.event.outbox_id}",
                    context=contextvars.copy_context(),
                )
                jobs.append((task, d, [i]))
            else:
                groups.setdefault(id(d), (d, []))[1].append(i)
    for d, idx in groups.values():
        task = loop.create_task(_send(d, [claimed[i].event for i in idx]), context=contextvars.copy_context())
        jobs.append((task, d, idx))
    if not jobs:
        return Delivery(outcomes, set())
    tasks = [job[0] for job in jobs]
    try:
        _, late = await asyncio.wait(tasks, timeout=timeout)
    except asyncio.CancelledError:
        # the worker is being stopped: stop the deliveries, bounded, then let it go on
        raise _Stopped(await _cancel(jobs, tasks, cancel_grace, orphans, claimed, reason="stop")) from None
    abandoned: set[int] = set()
    if late:
        abandoned = await _cancel(jobs, late, cancel_grace, orphans, claimed, reason="handler_timeout")
    timed_out = TimeoutError(f"delivery did not finish within {timeout:g} s (handler_timeout)")
    for task, dest, idx in jobs:
        if task in late:
            late_outcome: BaseException = timed_out
            if task.done() and not task.cancelled() and isinstance(task.exception(), NotStarted):
                late_outcome = task.exception()  # type: ignore[assignment]
            for i in idx:
                if outcomes[i] is None or isinstance(outcomes[i], NotStarted):
                    outcomes[i] = late_outcome
            continue
        if isinstance(dest, HandlerSink):
            results: list[BaseException | None] = [outcome_of(task)]
        else:
            results = task.result() if not task.cancelled() else [outcome_of(task)] * len(idx)
            assert results is not None
        sink_name = getattr(dest, "name", type(dest).__name__)
        for i, result in zip(idx, results):
            if result is None:
                on_delivered(claimed[i], sink_name)
            elif outcomes[i] is None or isinstance(result, SinkDisabled):
                outcomes[i] = result
    return Delivery(outcomes, abandoned)


class _Stopped(BaseException):
    """Internal: the worker was cancelled mid-delivery; carries the abandoned positions."""

    def __init__(self, abandoned: set[int]) -> None:
        super().__init__("delivery stopped")
        self.abandoned = abandoned


async def _cancel(
    jobs: Sequence[tuple[asyncio.Task[Any], Any, list[int]]],
    tasks: Sequence[asyncio.Task[Any]] | set[asyncio.Task[Any]],
    grace: float,
    orphans: dict[asyncio.Task[Any], list[int]],
    claimed: Sequence[Any],
    *,
    reason: str,
) -> set[int]:
    """Cancel ``tasks``, wait up to ``grace`` s for them; return positions left running."""
    for task in tasks:
        task.cancel()
    stubborn: set[asyncio.Task[Any]] = set()
    if tasks:
        try:
            _, pending = await asyncio.wait(tasks, timeout=grace)
        except asyncio.CancelledError:
            pending = {t for t in tasks if not t.done()}
        stubborn = set(pending)
    for task in tasks:
        if task.done():
            _quiet(task)
    abandoned: set[int] = set()
    for task, dest, idx in jobs:
        if task in stubborn:
            abandoned.update(idx)
            orphans[task] = [claimed[i].event.outbox_id for i in idx]
            task.add_done_callback(lambda t: orphans.pop(t, None))
            task.add_done_callback(_quiet)
            _log.error(
                "outbox_delivery_abandoned",
                sink=getattr(dest, "name", "?"),
                reason=reason,
                grace_seconds=grace,
                hint="the handler ignored cancellation; its event stays leased until the lease ends",
            )
    return abandoned


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
