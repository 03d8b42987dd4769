"""``slo.install(app, objectives, engine=...)``: route counting, ``GET /slo`` and the tick loop."""

from __future__ import annotations

import asyncio
import contextlib
import html
import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import orjson

from .._core.clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigurationError
from ._objectives import Latency, Objective, Ratio
from ._tracker import BurnEvent, Tracker
from ._windows import DEFAULT_TIERS, Tier

__all__ = ["install", "thresholds", "render_html"]

_MIDDLEWARE_ATTR = "_surefoot_http_middleware"


def thresholds(objectives: Iterable[Objective]) -> list[float]:
    """Latency thresholds of ``objectives``: pass them as ``surefoot.install(app, extra_buckets=...)``."""
    return sorted({o.threshold for o in objectives if isinstance(o, Latency)})


def _route_bound(objectives: Iterable[Objective]) -> list[Ratio | Latency]:
    return [o for o in objectives if isinstance(o, (Ratio, Latency)) and o.route is not None]


def _http_distribution(middleware: Any, route: str, method: str | None) -> Callable[[], tuple[list[float], list[float]]]:
    from .._core.catalogue import HTTP_SERVER_REQUEST_DURATION

    family = HTTP_SERVER_REQUEST_DURATION.get(middleware.registry)  # the middleware's own family

    def read() -> tuple[list[float], list[float]]:
        totals: dict[float, float] = {}
        for metric in family.collect():
            for sample in metric.samples:
                labels = sample.labels
                if (sample.name.endswith("_bucket") and labels.get("http_route") == route
                        and (method is None or labels.get("http_request_method") == method)):
                    bound = float(labels["le"])
                    totals[bound] = totals.get(bound, 0.0) + sample.value
        bounds = sorted(totals)
        return bounds, [totals[b] for b in bounds]

    return read


def _histogram_bounds(middleware: Any) -> list[float] | None:
    bounds = getattr(middleware, "buckets", None)
    return list(bounds) if bounds is not None else None


def _attach_routes(app: Any, objectives: list[Ratio | Latency], tracker: Tracker) -> None:
    middleware = getattr(app, _MIDDLEWARE_ATTR, None)
    if middleware is None:
        raise ConfigurationError(
            "objectives bound to a route need surefoot's request path: call surefoot.install(app) "
            "(or surefoot.http.install_http(app)) before slo.install(app, ...)"
        )
    observers = getattr(middleware, "route_observers", None)
    if observers is None:
        raise ConfigurationError("this version of surefoot.http cannot report routes to objectives")
    bounds = _histogram_bounds(middleware)
    for objective in objectives:
        if isinstance(objective, Latency):
            if bounds is not None and objective.threshold not in bounds:
                raise ConfigurationError(
                    f"objective {objective.name!r}: {objective.threshold} s is not a bucket of "
                    "http_server_request_duration_seconds, so dashboards and rules cannot see the "
                    "threshold; install surefoot with "
                    "surefoot.install(app, extra_buckets=slo.thresholds(OBJECTIVES))"
                )
            tracker.set_distribution(objective, _http_distribution(middleware, objective.route or "", objective.method))
        observers.setdefault(objective.route, []).append(objective.observe_response)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.3f} %"


def render_html(report: dict[str, Any]) -> str:
    """A small HTML page of the report: one table per objective."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>SLOs</title><style>",
             "body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;margin-bottom:1.5rem}",
             "td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}.firing{color:#b00;font-weight:bold}",
             "</style></head><body><h1>Service level objectives</h1>"]
    for o in report["objectives"]:
        firing = [a["tier"] for a in o["alerts"] if a["firing"]]
        parts.append(
            f"<h2>{html.escape(o['name'])} <small>({html.escape(o['kind'])}, target {o['target'] * 100:g} %)</small></h2>"
            f"<p>{html.escape(o['description'])}</p>"
            f"<p>error budget remaining: <b>{_pct(o['error_budget_remaining'])}</b>; P95: "
            f"{'–' if o['p95_seconds'] is None else format(o['p95_seconds'], '.3f') + ' s'}; "
            + (f"<span class='firing'>firing: {html.escape(', '.join(firing))}</span>" if firing else "no tier firing")
            + "</p><table><tr><th>window</th><th>good</th><th>bad</th><th>SLI</th><th>burn rate</th></tr>"
        )
        for name, w in o["windows"].items():
            parts.append(f"<tr><td>{name}</td><td>{w['good']}</td><td>{w['bad']}</td><td>{_pct(w['sli'])}</td>"
                         f"<td>{w['burn_rate']:g}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def install(
    app: Any,
    objectives: Sequence[Objective],
    *,
    engine: Any = None,
    path: str = "/slo",
    tiers: Sequence[Tier] = DEFAULT_TIERS,
    clock: Clock = SYSTEM_CLOCK,
    registry: Any = None,
    interval: float = 5.0,
    on_burn: Callable[[BurnEvent], Any] | None = None,
    cache_seconds: float = 0.2,
) -> Tracker:
    """Measure ``objectives`` in ``app`` and serve them at ``GET /slo``.

    Route-bound :class:`Ratio` / :class:`Latency` objectives count every response of their
    route through surefoot's request path (install surefoot first); the tracker ticks every
    ``interval`` seconds while the app runs (burn hooks fire from there) and at every
    ``/slo`` request (see ``cache_seconds``).

    Args:
        app: a Starlette/FastAPI application, before it starts.
        objectives: the objectives to measure and report.
        engine: SQLAlchemy ``Engine``/``AsyncEngine``: counts shared by all processes through
            ``surefoot_slo_counts`` (run :func:`surefoot.slo.migrate` first). Without it,
            ``/slo`` shows this process's counts.
        path: where to serve the report.
        tiers, clock, registry, on_burn: as :class:`Tracker`.
        interval: seconds between ticks.
        cache_seconds: ``/slo`` answers from a report computed less than this long ago (real
            time), so a burst of requests costs one evaluation (one query) per period.

    Returns:
        The :class:`Tracker` (use ``tracker.on_burn(...)`` for more hooks).

    Raises:
        ConfigurationError: a route-bound objective without surefoot's request path, a
            threshold that is not a histogram bucket, an app that is not Starlette or has
            already started, or an interval, ``cache_seconds`` or ``path`` that cannot be used.
    """
    if not hasattr(app, "router") or not hasattr(app.router, "lifespan_context"):
        raise ConfigurationError(f"slo.install needs a Starlette or FastAPI application; got {type(app).__name__}")
    if getattr(app, "middleware_stack", None) is not None:
        # Its lifespan has run: the tracker would never tick.
        raise ConfigurationError("slo.install needs an application that has not started yet; call it where the app is built")
    if not math.isfinite(interval) or interval <= 0:
        raise ConfigurationError(f"interval must be a positive number of seconds; got {interval!r}")
    if isinstance(cache_seconds, bool) or not isinstance(cache_seconds, (int, float)) or not 0 <= cache_seconds < math.inf:
        raise ConfigurationError(f"cache_seconds must be a number of seconds >= 0; got {cache_seconds!r}")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigurationError(f"path must start with '/' (e.g. '/slo'); got {path!r}")
    tracker = Tracker(objectives, engine=engine, tiers=tiers, clock=clock, registry=registry, on_burn=on_burn)
    bound = _route_bound(tracker.objectives)
    if bound:
        _attach_routes(app, bound, tracker)
    app.router.add_route(path, _endpoint(tracker, cache_seconds), methods=["GET"], include_in_schema=False)
    original = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(lifespan_app: Any) -> AsyncIterator[Any]:
        task = asyncio.create_task(tracker.arun(interval=interval))
        try:
            async with original(lifespan_app) as state:
                yield state
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.router.lifespan_context = lifespan
    app.state.slo_tracker = tracker
    return tracker


def _endpoint(tracker: Tracker, cache_seconds: float) -> Callable[..., Any]:
    from starlette.responses import HTMLResponse, Response

    async def endpoint(request: Any) -> Any:
        report = await tracker.areport(max_age=cache_seconds)
        if request.query_params.get("format") == "html":
            return HTMLResponse(render_html(report), headers={"cache-control": "no-store"})
        return Response(orjson.dumps(report), media_type="application/json", headers={"cache-control": "no-store"})

    return endpoint
