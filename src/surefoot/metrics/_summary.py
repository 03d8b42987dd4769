"""The JSON metrics summary (requests, errors, status codes, top routes).

Computed at call time from the ``http_server_request_duration_seconds`` histogram, so it
costs nothing per request and agrees with what Prometheus scrapes — across workers too,
when given the multi-process registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._core.catalogue import HTTP_SERVER_REQUEST_DURATION

__all__ = ["summary"]

_NAME = HTTP_SERVER_REQUEST_DURATION.name


def _families(registries: Iterable[Any]) -> Iterable[Any]:
    seen: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            if family.name == _NAME and _NAME not in seen:
                seen.add(_NAME)
                yield family


def summary(
    registry: Any,
    *,
    module: str | None = None,
    mode: str = "standalone",
    top: int = 10,
) -> dict[str, Any]:
    """Return the seed-000 JSON summary of the HTTP traffic recorded in ``registry``.

    Args:
        registry: a ``CollectorRegistry`` (or any object with ``collect()``), or a list of
            them; the first one holding the HTTP histogram is used.
        module: reported as ``module`` (default: the service name from settings).
        mode: reported as ``mode`` (e.g. ``standalone`` or ``platform``).
        top: how many routes ``top_routes`` lists, busiest first.

    Returns:
        ``{"module", "mode", "requests_total", "errors_total", "error_rate_percent",
        "status_codes", "top_routes": [{"path", "count", "errors", "avg_duration_ms"}],
        "routes_tracked"}``. Errors are responses with a 5xx status (server failures);
        unmatched requests (404 without a route) count in the totals but not as routes.
    """
    if module is None:
        from .._core.settings import get_settings

        module = get_settings().service_name
    registries = registry if isinstance(registry, (list, tuple)) else [registry]
    status_codes: dict[str, int] = {}
    routes: dict[str, list[float]] = {}  # path -> [count, errors, sum seconds]
    total = 0
    errors = 0
    for family in _families(registries):
        for sample in family.samples:
            if sample.name.endswith("_count"):
                idx = 0
            elif sample.name.endswith("_sum"):
                idx = 2
            else:
                continue
            labels = sample.labels
            status = labels.get("http_response_status_code", "")
            route = labels.get("http_route", "")
            value = sample.value
            is_error = status.isdigit() and int(status) >= 500
            if idx == 0:
                count = int(value)
                total += count
                status_codes[status] = status_codes.get(status, 0) + count
                if is_error:
                    errors += count
            if not route:
                continue
            entry = routes.setdefault(route, [0, 0, 0.0])
            if idx == 0:
                entry[0] += int(value)
                if is_error:
                    entry[1] += int(value)
            else:
                entry[2] += value
    # A route whose histogram child exists without an observation is not traffic.
    busiest = sorted((item for item in routes.items() if item[1][0] > 0),
                     key=lambda item: (-item[1][0], item[0]))[:top]
    return {
        "module": module,
        "mode": mode,
        "requests_total": total,
        "errors_total": errors,
        "error_rate_percent": round(errors * 100.0 / total, 2) if total else 0.0,
        "status_codes": dict(sorted(status_codes.items())),
        "top_routes": [
            {
                "path": path,
                "count": int(count),
                "errors": int(errs),
                "avg_duration_ms": round(seconds * 1000.0 / count, 2) if count else 0.0,
            }
            for path, (count, errs, seconds) in busiest
        ],
        "routes_tracked": sum(1 for entry in routes.values() if entry[0] > 0),
    }
