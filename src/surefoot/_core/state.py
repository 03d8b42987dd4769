"""The one object that holds surefoot's process-global state, and the reset for tests.

surefoot keeps as little process-global state as it can: the settings (core and sections),
the default Prometheus registry, and what a few capabilities must share across a process (the
logging configuration, shared circuit breakers, retry budgets, the timeout table, the test
switch for waits, feature-flag overrides, the tracer provider). All of it is held by
:data:`STATE`: the core's own fields are attributes, and a capability registers the holder of
its state with :meth:`ProcessState.own` when its module is first imported, together with the
function that puts it back to its start-up value. A module never imported holds nothing.

:func:`reset_all` (``surefoot.testing.reset_all``) resets every piece in one call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "ProcessState",
    "STATE",
    "on_reset",
    "reset_all",
    "reset_config",
    "default_registry",
    "set_default_registry",
]

T = TypeVar("T")


class ProcessState:
    """surefoot's process-global state, in one place.

    Attributes:
        settings: the core ``Settings`` once resolved (``None`` before first use).
        sections: resolved settings sections by class (``OutboxSettings`` ->
            ``(the environment it was read from, the instance)``).
        registry: the default Prometheus registry override (``None``: ``prometheus_client.REGISTRY``).
        lock: guards first resolution of the fields above.
    """

    __slots__ = ("lock", "settings", "sections", "registry", "_owned")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.settings: Any = None
        self.sections: dict[type, Any] = {}
        self.registry: Any = None
        # name -> (holder, reset); dict order is registration (= import) order
        self._owned: dict[str, tuple[Any, Callable[[], Any] | None]] = {}

    def own(self, name: str, holder: T, reset: Callable[[], Any] | None = None) -> T:
        """Register a capability's state ``holder`` under ``name`` and return it.

        Args:
            name: where the state belongs, e.g. ``"resilience.breakers"``.
            holder: the object holding the state (a dict, a small state object); kept for
                :meth:`owned`.
            reset: called by :meth:`reset` to put the state back to its start-up value; it
                must mutate ``holder`` in place (modules keep references to it).

        Registering the same name again replaces the entry (a reloaded module).
        """
        self._owned[name] = (holder, reset)
        return holder

    def owned(self) -> dict[str, Any]:
        """A snapshot of the registered state holders by name (for tests and debugging)."""
        return {name: holder for name, (holder, _reset) in self._owned.items()}

    def reset_config(self) -> None:
        """Forget the settings, the resolved sections and the default registry override."""
        with self.lock:
            self.settings = None
            self.sections.clear()
            self.registry = None

    def reset(self) -> None:
        """Put the whole process back to its start-up state (tests).

        The core fields first, then each registered reset in registration order.
        """
        self.reset_config()
        for _holder, reset in list(self._owned.values()):
            if reset is not None:
                reset()


#: The process state. There is exactly one.
STATE = ProcessState()


def on_reset(function: Callable[[], Any]) -> Callable[[], Any]:
    """Register ``function`` to run on :func:`reset_all` (usable as a decorator).

    For state that has no holder object of its own; :meth:`ProcessState.own` is preferred.
    """
    STATE.own(f"{function.__module__}.{function.__qualname__}", None, function)
    return function


def reset_all() -> None:
    """Forget every piece of surefoot's process-global state (tests)."""
    STATE.reset()


def reset_config() -> None:
    """Forget the process settings and the default registry override (tests)."""
    STATE.reset_config()


def default_registry() -> Any:
    """Return the process-default Prometheus registry (``prometheus_client.REGISTRY`` unless set).

    Domain metrics (breakers, outbox, webhooks) register here unless a component is given
    its own ``registry=``; the metrics endpoint always exposes it.
    """
    registry = STATE.registry
    if registry is not None:
        return registry
    import prometheus_client

    return prometheus_client.REGISTRY


def set_default_registry(registry: Any) -> None:
    """Make ``registry`` the process default (``None`` restores ``prometheus_client.REGISTRY``)."""
    STATE.registry = registry
