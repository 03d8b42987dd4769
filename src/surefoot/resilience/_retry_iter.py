"""The iterator form of a retry: ``for attempt in retrying(...): with attempt: ...``."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Iterator
from typing import Any

from . import _waits
from ._retry import Retry, _CallState, _in_retry

__all__ = ["Attempt", "Retrying", "retrying"]


class Attempt:
    """One attempt in the iterator form; use it as ``with attempt:``.

    Attributes:
        number: 1 for the first attempt.
    """

    __slots__ = ("number", "_owner", "_token", "succeeded", "delay")

    def __init__(self, owner: Retrying, number: int) -> None:
        self.number = number
        self._owner = owner
        self._token: contextvars.Token[bool] | None = None
        self.succeeded = False
        self.delay: float | None = None

    def __enter__(self) -> Attempt:
        self._token = _in_retry.set(True)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._token is not None:
            _in_retry.reset(self._token)
            self._token = None
        if exc is None:
            self.succeeded = True
            return False
        return self._owner._failed(self, exc)

    def __repr__(self) -> str:
        return f"<Attempt {self.number}>"


class Retrying:
    """Iterator form of a :class:`Retry` (see :meth:`Retry.attempts` and :func:`retrying`)."""

    def __init__(self, retry: Retry) -> None:
        self.retry = retry
        self._state: _CallState | None = None
        self._nested = False

    def get_delay(self, retry_number: int) -> float:
        """Sample the wait before retry ``retry_number``."""
        return self.retry.get_delay(retry_number)

    def _failed(self, attempt: Attempt, exc: BaseException) -> bool:
        retry = self.retry
        if self._nested or not isinstance(exc, retry.on):
            return False
        if not retry._retryable(exc):
            retry._on_not_retryable(self._state, exc)
            return False
        if self._state is None:
            self._state = _CallState(retry, self._start)
        state = self._state
        state.attempt = attempt.number
        delay = retry._next_delay(state, exc)
        if delay is None:
            try:
                retry._give_up(state, exc, True)
            except BaseException:  # _give_up re-raises exc with its note; let `with` propagate it
                return False
        retry._on_retry(state, exc, delay, True)  # type: ignore[arg-type]
        attempt.delay = delay
        return True

    def _begin(self) -> None:
        self._nested = _in_retry.get()
        self._state = None
        self._start = self.retry.clock.monotonic()

    def __iter__(self) -> Iterator[Attempt]:
        self._begin()
        number = 0
        while True:
            number += 1
            attempt = Attempt(self, number)
            yield attempt
            if attempt.delay is None:
                # success (or the body never raised): the call is over
                if attempt.succeeded:
                    self._succeeded(number)
                return
            if attempt.delay > 0 and not _waits.is_testing():
                self.retry.clock.sleep(attempt.delay)

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        self._begin()
        number = 0
        while True:
            number += 1
            attempt = Attempt(self, number)
            yield attempt
            if attempt.delay is None:
                if attempt.succeeded:
                    self._succeeded(number)
                return
            if attempt.delay > 0 and not _waits.is_testing():
                await self.retry.clock.asleep(attempt.delay)

    def _succeeded(self, number: int) -> None:
        if self._nested:
            return
        if number == 1:
            if self.retry.budget is not None:
                self.retry.budget.on_success()
        else:
            self.retry._on_success_after_retry(self._state)  # type: ignore[arg-type]


def retrying(**options: Any) -> Retrying:
    """The iterator/context-manager form, configured like :class:`Retry`::

        for attempt in retrying(on=ConnectionError, max_attempts=5):
            with attempt:
                connect()

        async for attempt in retrying(on=httpx.TransportError):
            with attempt:
                await client.get(url)
    """
    return Retrying(Retry(**options))
