"""Resilience helpers for tests: the no-waits switch, an event recorder, provider chaos presets."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from ..resilience._events import Hooks, ResilienceEvent
from ..resilience._waits import is_testing, set_testing, testing_attempts

__all__ = ["set_testing", "is_testing", "no_waits", "EventRecorder", "provider_failures"]


@contextlib.contextmanager
def no_waits(*, attempts: int | None = None) -> Iterator[None]:
    """Turn resilience waits off inside a ``with`` block (restores the previous state after).

    Args:
        attempts: also cap every retry at this many attempts.
    """
    previous = (is_testing(), testing_attempts())
    set_testing(True, attempts=attempts)
    try:
        yield
    finally:
        set_testing(previous[0], attempts=previous[1])


class EventRecorder:
    """A listener that keeps every resilience event, for assertions.

    Usage::

        events = EventRecorder()
        retry = Retry(name="twilio", hooks=events.hooks)
        ...
        assert events.kinds("retry") == ["retry", "retry", "gave_up"]
    """

    def __init__(self) -> None:
        self.events: list[ResilienceEvent] = []
        self._lock = threading.Lock()
        self.hooks = Hooks(self)

    def __call__(self, event: ResilienceEvent) -> None:
        with self._lock:
            self.events.append(event)

    def kinds(self, component: str | None = None) -> list[str]:
        """The kinds of the recorded events (of ``component`` only, when given), in order."""
        return [e.kind for e in self.events if component is None or e.component == component]

    def of(self, component: str, kind: str | None = None) -> list[ResilienceEvent]:
        """The recorded events of ``component`` (and ``kind``)."""
        return [e for e in self.events if e.component == component and (kind is None or e.kind == kind)]

    def clear(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self.events.clear()


def provider_failures(kind: str, *, rate: float = 1.0, seed: int = 0, **options: Any) -> Any:
    """A :class:`~surefoot.resilience.Chaos` reproducing a provider failure, seeded.

    Args:
        kind: ``"5xx"`` (503 answers), ``"429"`` (429 with ``Retry-After: 1``, in bursts of 5),
            ``"timeout"`` (``httpx.ReadTimeout``) or ``"reset"`` (``httpx.ConnectError``).
        rate: probability per call.
        seed: seed of the random source, so a failing run replays exactly.
        **options: overrides (``status``, ``retry_after``, ``burst``, ``clock``, ``hooks`` ...).

    Raises:
        ValueError: unknown ``kind``.
    """
    import random

    from ..resilience._chaos import Chaos

    options.setdefault("rng", random.Random(seed))
    if kind == "5xx":
        return Chaos.http_status(options.pop("status", 503), rate=rate, **options)
    if kind == "429":
        options.setdefault("retry_after", 1.0)
        options.setdefault("burst", 5)
        return Chaos.http_status(429, rate=rate, **options)
    if kind == "timeout":
        return Chaos.http_timeout(rate=rate, **options)
    if kind == "reset":
        return Chaos.connection_reset(rate=rate, **options)
    raise ValueError(f"unknown provider failure {kind!r}; use '5xx', '429', 'timeout' or 'reset'")
