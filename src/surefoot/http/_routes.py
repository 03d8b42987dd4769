"""Route templates from the framework's own routing decision, in O(1) per request.

Starlette's router stores the matched route in ``scope["route"]`` (the innermost one when
mounts or sub-applications nest) and the top-level router in ``scope["router"]``. A route
knows only its own path, so the first time a route object is seen the router tree is walked
once to compute the full template of every route in it (mount prefixes included, e.g.
``/api/v1/items/{item_id}``); afterwards the lookup is one dict access keyed by the route's
identity. FastAPI's ``include_router`` already folds prefixes into ``route.path``.

An unmatched request (404) has no template: the label value is the empty string.
"""

from __future__ import annotations

import re
import threading
from typing import Any

__all__ = ["RouteTemplates"]

_CONVERTER = re.compile(r"{([^}:]+):[^}]*}")


def _format(path: str) -> str:
    # "/items/{id:int}" -> "/items/{id}" (the template users read in dashboards)
    return _CONVERTER.sub(r"{\1}", path)


def _own_path(route: Any) -> str | None:
    path = getattr(route, "path", None)
    return _format(path) if isinstance(path, str) else None


def _children(route: Any) -> list[Any] | None:
    routes = getattr(route, "routes", None)
    if isinstance(routes, list) and routes:
        return routes
    return None


class RouteTemplates:
    """Resolve ``scope["route"]`` to its full template, caching per route object."""

    __slots__ = ("_cache", "_lock")

    def __init__(self) -> None:
        # id(route) -> (route, template or None when ambiguous, candidates)
        self._cache: dict[int, tuple[Any, str | None, tuple[tuple[re.Pattern[str], str], ...]]] = {}
        self._lock = threading.Lock()

    def template(self, scope: Any) -> str:
        """Return the template of the route that handled ``scope`` ("" when none matched)."""
        route = scope.get("route")
        if route is None:
            return ""
        hit = self._cache.get(id(route))
        if hit is None or hit[0] is not route:
            hit = self._learn(scope, route)
        template = hit[1]
        if template is not None:
            return template
        return self._disambiguate(scope, hit[2])

    def _learn(self, scope: Any, route: Any) -> tuple[Any, str | None, tuple[tuple[re.Pattern[str], str], ...]]:
        router = scope.get("router")
        with self._lock:
            hit = self._cache.get(id(route))
            if (hit is None or hit[0] is not route) and router is not None:
                # First sight of this router, or routes were added since it was indexed.
                self._index(router)
                hit = self._cache.get(id(route))
            if hit is None or hit[0] is not route:
                # Not reachable from the top-level router (a framework that sets
                # scope["route"] itself): use the route's own path, which the
                # cardinality cap still bounds.
                hit = (route, self._leaf_template("", route), ())
                self._cache[id(route)] = hit
            return hit

    def _index(self, router: Any) -> None:
        found: dict[int, tuple[Any, list[tuple[str, str]]]] = {}
        self._walk(getattr(router, "routes", ()) or (), "", found, depth=0)
        for key, (route, entries) in found.items():
            templates = {template for _prefix, template in entries}
            if len(templates) == 1:
                self._cache[key] = (route, entries[0][1], ())
            else:
                candidates = tuple(
                    (re.compile(_prefix_regex(prefix)), template) for prefix, template in entries
                )
                self._cache[key] = (route, None, candidates)

    def _walk(self, routes: Any, prefix: str, found: dict[int, Any], depth: int) -> None:
        if depth > 32:  # a mount cycle; templates deeper than this are not meaningful
            return
        for route in routes:
            entry = found.setdefault(id(route), (route, []))
            entry[1].append((prefix, self._leaf_template(prefix, route)))
            children = _children(route)
            if children is not None:
                own = _own_path(route) or ""
                self._walk(children, prefix + own, found, depth + 1)

    @staticmethod
    def _leaf_template(prefix: str, route: Any) -> str:
        own = _own_path(route)
        if own is None or (type(route).__name__ == "Mount" and _children(route) is not None):
            # A Host, or a Mount whose router matched nothing inside: the request was
            # not routed to an endpoint (a 404), so it has no template.
            return ""
        if type(route).__name__ == "Mount":
            return prefix + own + "/{path}"
        return prefix + own

    @staticmethod
    def _disambiguate(scope: Any, candidates: tuple[tuple[re.Pattern[str], str], ...]) -> str:
        root = scope.get("root_path", "")
        base = scope.get("app_root_path", "")
        mounted = root[len(base):] if root.startswith(base) else root
        for pattern, template in candidates:
            if pattern.fullmatch(mounted):
                return template
        return candidates[0][1] if candidates else ""


def _prefix_regex(prefix: str) -> str:
    parts = re.split(r"({[^}]*})", prefix)
    return "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
