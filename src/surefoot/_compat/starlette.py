"""Starlette: placing surefoot's middleware directly inside ``ServerErrorMiddleware``.

Starlette has no public way to put a middleware *outside* the ones a user adds later, nor to
let a mounted application's unhandled exceptions reach the outer application instead of its
own ``ServerErrorMiddleware``. Both need ``Starlette.build_middleware_stack`` (a public method
name, but not a documented extension point) and the knowledge that its outermost layer is a
``ServerErrorMiddleware``; both are checked with ``isinstance`` here.

Fallbacks (public API only): when ``build_middleware_stack`` is missing or does not return a
``ServerErrorMiddleware`` on the outside, :func:`wrap_outermost` wraps the whole stack (the
middleware then sits outside ``ServerErrorMiddleware``, which changes nothing surefoot relies
on: it still sees every exception first), and :func:`let_errors_propagate` leaves the mounted
application as it is (it renders its own 500s; surefoot's handlers still give problem bodies
for every error that has a handler).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["wrap_outermost", "let_errors_propagate", "has_middleware_stack", "mounted_apps"]

_MARK = "_surefoot_stack_hooked"


def _server_error_middleware() -> type | None:
    try:
        from starlette.middleware.errors import ServerErrorMiddleware
    except ImportError:  # pragma: no cover - every supported Starlette has it
        return None
    return ServerErrorMiddleware


def has_middleware_stack(app: Any) -> bool:
    """Whether ``app`` builds a Starlette middleware stack (``Starlette`` / ``FastAPI``)."""
    return callable(getattr(app, "build_middleware_stack", None)) and hasattr(app, "exception_handlers")


def _hook(app: Any, transform: Callable[[Any], Any]) -> bool:
    original = getattr(app, "build_middleware_stack", None)
    if not callable(original):
        return False

    def build_middleware_stack() -> Any:
        return transform(original())

    app.build_middleware_stack = build_middleware_stack
    if getattr(app, "middleware_stack", None) is not None:
        app.middleware_stack = None  # built already: rebuild with the hook on the next call
    return True


def wrap_outermost(app: Any, wrap: Callable[[Any], Any]) -> None:
    """Insert ``wrap(inner)`` directly inside the app's ``ServerErrorMiddleware``.

    ``wrap`` receives the layer it must call and returns the ASGI app to put in its place.
    Runs when Starlette builds the stack (the first request), so middleware added after this
    call still ends up inside.
    """
    server_error = _server_error_middleware()

    def transform(stack: Any) -> Any:
        if server_error is not None and isinstance(stack, server_error) and hasattr(stack, "app"):
            stack.app = wrap(stack.app)
            return stack
        return wrap(stack)

    if not _hook(app, transform):
        # No stack builder: wrap the application's router-level entry point instead.
        app.router = wrap(app.router)  # pragma: no cover - not a Starlette app


def let_errors_propagate(app: Any) -> bool:
    """Drop a mounted app's ``ServerErrorMiddleware`` so its unhandled exceptions propagate.

    The outer application's surefoot middleware then renders the one problem+json 500 and
    logs the exception once, instead of the mounted app sending ``text/plain`` and
    re-raising (two log lines and a corrupt response). Returns whether the app was changed.
    """
    if getattr(app, _MARK, False):
        return True
    server_error = _server_error_middleware()
    if server_error is None:
        return False

    def transform(stack: Any) -> Any:
        if isinstance(stack, server_error) and hasattr(stack, "app"):
            return stack.app
        return stack

    if not _hook(app, transform):
        return False
    setattr(app, _MARK, True)
    return True


def mounted_apps(routes: Any, depth: int = 0) -> list[Any]:
    """Every Starlette/FastAPI application mounted (at any depth) under ``routes``."""
    found: list[Any] = []
    if depth > 32:  # a mount cycle
        return found
    for route in routes or ():
        sub = getattr(route, "app", None)
        if sub is not None and has_middleware_stack(sub):
            found.append(sub)
            router = getattr(sub, "router", None)
            found.extend(mounted_apps(getattr(router, "routes", None), depth + 1))
            continue
        children = getattr(route, "routes", None)
        if isinstance(children, list):
            found.extend(mounted_apps(children, depth + 1))
    return found
