"""Resilience decisions as events, delivered to hooks that can never break a call.

Every component (breaker, retry, timeout, bulkhead, rate limiter, chaos) owns a
:class:`Hooks` and calls ``hooks.emit(...)`` only after checking ``hooks.active`` so that
with no listener (the default) a decision costs one attribute read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

__all__ = ["ResilienceEvent", "Hooks", "Listener", "checked_hooks"]

_log = structlog.get_logger("surefoot.resilience")


@dataclass(frozen=True, slots=True)
class ResilienceEvent:
    """One decision.

    Attributes:
        component: ``circuit_breaker``, ``retry``, ``timeout``, ``bulkhead``, ``rate_limiter`` or ``chaos``.
        name: the instance name (e.g. the provider ``"twilio"``).
        kind: what happened, e.g. ``state_change``, ``success``, ``failure``, ``not_permitted``,
            ``retry``, ``gave_up``, ``timeout``, ``rejected``, ``injected``.
        attributes: details (``from_state``/``to_state``, ``attempt``, ``delay``, ``duration`` ...).
    """

    component: str
    name: str
    kind: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[ResilienceEvent], None]


class Hooks:
    """A list of listeners; a listener that raises is logged and skipped, never propagated."""

    __slots__ = ("_listeners", "active")

    def __init__(self, *listeners: Listener) -> None:
        self._listeners: tuple[Listener, ...] = tuple(listeners)
        self.active = bool(self._listeners)

    def add(self, listener: Listener) -> None:
        """Add a listener (not on a hot path: the tuple is rebuilt)."""
        self._listeners = (*self._listeners, listener)
        self.active = True

    def remove(self, listener: Listener) -> None:
        """Remove a listener previously added."""
        self._listeners = tuple(x for x in self._listeners if x is not listener)
        self.active = bool(self._listeners)

    def emit(self, component: str, name: str, kind: str, **attributes: Any) -> None:
        """Deliver one event to every listener."""
        event = ResilienceEvent(component, name, kind, attributes)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a user hook must never break the protected call
                _log.exception("resilience_hook_failed", component=component, name=name, kind=kind)


def checked_hooks(hooks: Any, owner: str) -> Hooks:
    """``hooks`` itself, a new empty :class:`Hooks` for ``None``, or a clear error.

    Raises:
        ConfigurationError: ``hooks`` is something else (a bare function or a list of them).
    """
    if hooks is None:
        return Hooks()
    if isinstance(hooks, Hooks):
        return hooks
    from ..errors import ConfigurationError

    raise ConfigurationError(
        f"{owner} hooks must be a surefoot.resilience.Hooks, e.g. hooks=Hooks(listener); got {hooks!r}"
    )
