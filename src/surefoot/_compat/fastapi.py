"""FastAPI: the route that really handled a request, with every ``include_router`` prefix.

FastAPI (0.120+) keeps included routers unexpanded: ``scope["route"]`` is the route as
declared in its router, whose ``path_format`` lacks the prefixes. The *effective* route,
whose ``path_format`` carries them, is only in ``scope["fastapi"]["effective_route_context"]``
(not a documented key). :func:`effective_route` reads it and checks its shape; when FastAPI
changes it, ``None`` is returned and the route template comes from the public
``scope["route"]`` / ``scope["endpoint"]`` (templates of routes inside included routers may
then miss their prefixes: a test against the installed FastAPI catches that).
"""

from __future__ import annotations

from typing import Any

__all__ = ["effective_route"]


def effective_route(scope: Any) -> tuple[Any, Any] | None:
    """``(effective route, the route it was declared as)`` from a request scope, or ``None``."""
    fastapi_scope = scope.get("fastapi")
    if fastapi_scope is None:
        return None
    try:
        effective = fastapi_scope.get("effective_route_context")
    except AttributeError:  # not a dict any more
        return None
    if effective is None:
        return None
    return effective, getattr(effective, "original_route", None)
