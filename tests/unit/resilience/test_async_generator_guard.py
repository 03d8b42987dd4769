"""The one driver of guarded async generators (breaker, bulkhead and rate-limit decorators).

A consumer that sends values, throws exceptions in, closes early or runs the generator to its
end must see exactly what it sees from the unguarded generator, and the guard must get exactly
one outcome per started iteration.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot._core.callables import guard_async_generator
from surefoot.resilience import Bulkhead, CircuitBreaker


class Recorder:
    def __init__(self, log: list[str], fail_start: bool = False) -> None:
        self.log = log
        self.fail_start = fail_start

    async def start(self) -> None:
        self.log.append("start")
        if self.fail_start:
            raise PermissionError("no permit")

    async def success(self) -> None:
        self.log.append("success")

    async def error(self, exc: BaseException) -> None:
        self.log.append(f"error:{type(exc).__name__}")

    async def closed(self) -> None:
        self.log.append("closed")


class Handled(Exception):
    pass


class Fatal(Exception):
    pass


async def source(n: int):
    """Yields n items; echoes what is sent; survives Handled thrown in; Fatal ends it."""
    received = None
    for i in range(n):
        try:
            received = yield (i, received)
        except Handled:
            received = "handled"
    if received == "boom":
        raise ValueError("sent boom")


async def run_script(agen, script):
    """Drive ``agen`` by ``script``; return what the consumer observed."""
    seen = []
    try:
        seen.append(("first", await agen.__anext__()))
        for action, arg in script:
            if action == "send":
                seen.append(("sent", await agen.asend(arg)))
            elif action == "throw":
                seen.append(("thrown", await agen.athrow(arg())))
            else:
                await agen.aclose()
                seen.append(("closed", None))
                return seen
        while True:
            seen.append(("next", await agen.__anext__()))
    except StopAsyncIteration:
        seen.append(("end", None))
    except Exception as exc:  # what escaped to the consumer
        seen.append(("raised", type(exc).__name__, str(exc)))
    return seen


actions = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(["a", "b", "boom", None])),
    st.tuples(st.just("throw"), st.sampled_from([Handled, Fatal])),
    st.tuples(st.just("close"), st.none()),
)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=0, max_value=4), script=st.lists(actions, max_size=6))
def test_guarded_generator_behaves_as_the_bare_one(n, script):
    log: list[str] = []
    guarded = guard_async_generator(source, lambda: Recorder(log))

    async def both():
        return await run_script(source(n), script), await run_script(guarded(n), script)

    bare_seen, guarded_seen = asyncio.run(both())
    assert guarded_seen == bare_seen
    ending = bare_seen[-1]
    expected = {"end": "success", "closed": "closed"}.get(ending[0]) or f"error:{ending[1]}"
    assert log == ["start", expected], (bare_seen, log)


async def test_a_refused_start_never_runs_the_generator():
    ran = []

    async def gen():
        ran.append(True)
        yield 1

    log: list[str] = []
    guarded = guard_async_generator(gen, lambda: Recorder(log, fail_start=True))
    with pytest.raises(PermissionError):
        await guarded().__anext__()
    assert ran == [] and log == ["start"]


async def test_a_generator_failing_while_closing_reports_its_error_once():
    async def stubborn():
        try:
            yield 1
        finally:
            raise OSError("cleanup failed")

    log: list[str] = []
    guarded = guard_async_generator(stubborn, lambda: Recorder(log))()
    assert await guarded.__anext__() == 1
    with pytest.raises(OSError, match="cleanup failed"):
        await guarded.aclose()
    assert log == ["start", "error:OSError"]


async def test_calling_with_bad_arguments_is_an_error_outcome():
    async def takes_one(x):
        yield x

    log: list[str] = []
    guarded = guard_async_generator(takes_one, lambda: Recorder(log))
    with pytest.raises(TypeError):
        await guarded(1, 2).__anext__()
    assert log == ["start", "error:TypeError"]


async def test_breaker_and_bulkhead_release_on_early_close_and_count_failures():
    breaker = CircuitBreaker(name="agen-guard", failure_threshold=2, recovery_timeout=60)
    bulkhead = Bulkhead(1, name="agen-guard", max_wait=0)

    @breaker
    @bulkhead
    async def feed(fail: bool):
        yield 1
        if fail:
            raise ConnectionError("upstream dropped")
        yield 2

    async with contextlib.aclosing(feed(False)) as items:  # broken off early: the slot comes back
        async for item in items:
            assert item == 1
            break
    assert [i async for i in feed(False)] == [1, 2]
    for _ in range(2):
        with pytest.raises(ConnectionError):
            _ = [i async for i in feed(True)]
    assert breaker.state == "open"
