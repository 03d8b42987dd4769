"""FastAPI dependency overrides for the length of a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["override_dependencies"]


def _provider(value: Any) -> Callable[[], Any]:
    def provide() -> Any:
        return value

    return provide


@contextlib.contextmanager
def override_dependencies(app: Any, overrides: Mapping[Callable[..., Any], Any]) -> Iterator[dict[Any, Any]]:
    """Override FastAPI dependencies, restoring the previous overrides afterwards.

    Args:
        app: a FastAPI application (anything with a ``dependency_overrides`` dict).
        overrides: dependency → replacement. A callable replacement (function, async
            function, generator, class) is used as the dependency; any other value is
            returned as is (``{get_current_user: fake_user}``).

    Yields:
        The application's ``dependency_overrides`` dict.

    Raises:
        TypeError: ``app`` has no ``dependency_overrides`` (pass the FastAPI app, not a
            test client or a mounted sub-application's wrapper).

    Example::

        with override_dependencies(app, {get_db: fake_db, get_current_user: fake_user}):
            assert client.get("/contacts").status_code == 200
    """
    target = getattr(app, "dependency_overrides", None)
    if not isinstance(target, dict):
        raise TypeError(
            f"{type(app).__name__} has no dependency_overrides dict; pass the FastAPI application"
        )
    previous = {key: target[key] for key in overrides if key in target}
    for key, value in overrides.items():
        target[key] = value if callable(value) else _provider(value)
    try:
        yield target
    finally:
        for key in overrides:
            if key in previous:
                target[key] = previous[key]
            else:
                target.pop(key, None)
