"""Route templates from the framework's own routing decision, in O(1) per request.

No route is ever matched again: the template is rebuilt from what routing left in the
scope.

* ``scope["route"]`` is the route that handled the request (the innermost one when mounts
  or sub-applications nest). Its own template is ``route.path_format``; FastAPI (0.120+)
  keeps included routers unexpanded and records the *effective* route, whose
  ``path_format`` carries every ``include_router`` prefix, in ``scope["fastapi"]`` (read
  by :mod:`surefoot._compat.fastapi`).
* Each ``Mount`` appends the text it matched to ``scope["root_path"]`` (and remembers the
  outermost value in ``app_root_path``). That text is turned back into the mount's
  template (``/tenants/{tenant}``) through a table built once from the top-level router
  (``scope["router"]``): exact text for parameter-free mounts (one dict access), a short
  list of patterns for mounts with parameters.

A request that matched no endpoint (404, or a mounted router that matched nothing inside)
has no template: the empty string.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from .._compat.fastapi import effective_route as _effective_route

__all__ = ["RouteTemplates"]

_CONVERTER = re.compile(r"{([^}:]+):[^}]*}")
_PARAM = r"({[^}]*})"  # mounts with parameters only: compiled when first used (re caches it)


def _format(path: str) -> str:
    # "/items/{id:int}" -> "/items/{id}" (the template users read in dashboards)
    return _CONVERTER.sub(r"{\1}", path)


def _mount_format(route: Any) -> str:
    return _format(getattr(route, "path", "") or "")


def _has_children(route: Any) -> bool:
    routes = getattr(route, "routes", None)
    return isinstance(routes, list) and bool(routes)


def _is_mount(route: Any) -> bool:
    return any(cls.__name__ == "Mount" for cls in type(route).__mro__)


class RouteTemplates:
    """Resolve the route that handled a request to its full template, cached per route."""

    __slots__ = ("_own", "_exact", "_patterns", "_lock", "_endpoints")

    def __init__(self) -> None:
        self._own: dict[int, tuple[Any, str]] = {}
        self._exact: dict[str, str] = {"": ""}
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        self._lock = threading.Lock()
        self._endpoints: dict[int, tuple[Any, list[Any]]] = {}

    def template(self, scope: Any) -> str:
        """Return the template of the route that handled ``scope`` ("" when none matched)."""
        route = scope.get("route")
        own = None
        if "fastapi" in scope:
            # FastAPI sets scope["route"] for its own routes only; Starlette routes and
            # mounts it dispatched are known through the effective route context.
            found = _effective_route(scope)
            if found is not None:
                effective, original = found
                if route is None or original is route:
                    # _own_template's cache hit, inline (once per request).
                    hit = self._own.get(id(effective))
                    own = hit[1] if hit is not None and hit[0] is effective else self._own_template(effective, original)
        if own is None:
            if route is None:
                endpoint = scope.get("endpoint")
                if endpoint is None:
                    return ""
                # FastAPI does not record plain Starlette routes it dispatched (add_route,
                # mounted apps): the endpoint that routing stored identifies them.
                route = self._by_endpoint(scope, endpoint)
                if route is None:
                    return ""
            # _own_template's cache hit, inline (once per request).
            hit = self._own.get(id(route))
            own = hit[1] if hit is not None and hit[0] is route else self._own_template(route, route)
        if not own:
            return ""
        if "app_root_path" not in scope:
            return own
        root = scope.get("root_path", "")
        base = scope["app_root_path"]
        mounted = root[len(base):] if root.startswith(base) else root
        prefix = self._exact.get(mounted)
        if prefix is None:
            prefix = self._mount_template(scope, mounted)
        return prefix + own

    def _own_template(self, key: Any, route: Any) -> str:
        hit = self._own.get(id(key))
        if hit is not None and hit[0] is key:
            return hit[1]
        if _is_mount(route):
            # An opaque mounted app (static files) handled it: the mount's prefix is
            # already in root_path. A mounted router that matched nothing: a 404.
            own = "" if _has_children(route) else "/{path}"
        else:
            path = getattr(key, "path_format", None) or getattr(key, "path", None)
            own = _format(path) if isinstance(path, str) else ""
        with self._lock:
            self._own[id(key)] = (key, own)
        return own

    def _by_endpoint(self, scope: Any, endpoint: Any) -> Any:
        hit = self._endpoints.get(id(endpoint))
        if hit is None or hit[0] is not endpoint:
            router = scope.get("router")
            if router is None:
                return None
            with self._lock:
                self._index(router)
            hit = self._endpoints.get(id(endpoint))
            if hit is None or hit[0] is not endpoint:
                with self._lock:
                    self._endpoints[id(endpoint)] = hit = (endpoint, [])
        candidates = hit[1]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        # One endpoint behind several paths: the one whose pattern matches this request.
        root = scope.get("root_path", "")
        path = scope.get("path", "")
        relative = path[len(root):] if root and path.startswith(root) else path
        for route in candidates:
            regex = getattr(route, "path_regex", None)
            if regex is not None and regex.match(relative):
                return route
        return candidates[0]

    def _mount_template(self, scope: Any, mounted: str) -> str:
        for pattern, template in self._patterns:
            if pattern.fullmatch(mounted):
                return template
        router = scope.get("router")
        if router is not None:
            with self._lock:
                self._index(router)
            prefix = self._exact.get(mounted)
            if prefix is not None:
                return prefix
            for pattern, template in self._patterns:
                if pattern.fullmatch(mounted):
                    return template
        # Mounted by something outside the router tree: keep the text (the cardinality
        # cap still bounds it) rather than inventing a template.
        return mounted

    def _index(self, router: Any) -> None:
        exact: dict[str, str] = dict(self._exact)
        patterns: dict[str, re.Pattern[str]] = {}
        self._walk(getattr(router, "routes", None) or (), "", exact, patterns, 0)
        self._exact = exact
        # Longest templates first: the most specific mount wins.
        self._patterns = sorted(
            ((pattern, template) for template, pattern in patterns.items()),
            key=lambda item: -len(item[1]),
        )

    def _walk(self, routes: Any, prefix: str, exact: dict[str, str],
              patterns: dict[str, re.Pattern[str]], depth: int) -> None:
        if depth > 32:  # a mount cycle; deeper templates are not meaningful
            return
        for route in routes:
            target = getattr(route, "endpoint", None)
            if target is None and _is_mount(route):
                target = getattr(route, "app", None)
            if target is not None:
                entry = self._endpoints.get(id(target))
                if entry is None or entry[0] is not target:
                    entry = self._endpoints[id(target)] = (target, [])
                if all(existing is not route for existing in entry[1]):
                    entry[1].append(route)
            if not _has_children(route) and not _is_mount(route):
                continue
            own = _mount_format(route) if _is_mount(route) else ""
            template = prefix + own
            if template:
                if "{" in template:
                    regex = "".join(
                        "[^/]+" if part.startswith("{") else re.escape(part)
                        for part in re.split(_PARAM, template)
                    )
                    patterns[template] = re.compile(regex)
                else:
                    exact[template] = template
            if _has_children(route):
                self._walk(route.routes, template, exact, patterns, depth + 1)
