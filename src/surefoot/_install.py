"""``surefoot.install(app)``: wire everything on a FastAPI or Starlette app, in a safe order."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ._core.settings import Settings, get_settings
from ._core.state import default_registry
from .errors import ConfigurationError

__all__ = ["install", "Installation"]

_STATE_ATTR = "surefoot"


@dataclass
class Installation:
    """What :func:`install` set up on one application.

    Attributes:
        app: the application.
        settings: the settings used.
        registry: the Prometheus registry of this application's HTTP metrics (``None`` when
            metrics are off).
        health: the :class:`surefoot.health.Health` behind the probe endpoints.
        middleware: the :class:`surefoot.http.SurefootMiddleware` serving the app.
        metrics_endpoint: the ASGI app at ``settings.metrics_path`` (``None`` when off).
        logging: the logging configuration (``None`` when ``logging=False``).
    """

    app: Any
    settings: Settings
    registry: Any
    health: Any
    middleware: Any
    metrics_endpoint: Any
    logging: Any


_DEFAULT_PROBES = ("/livez", "/readyz", "/health")


def _actual_paths(settings: Settings, prefix: str, app: Any) -> Settings:
    """Point the default probe, metrics and docs paths of the skip lists at where they are.

    ``access_log_skip_paths`` and ``metrics_exclude_paths`` name the default locations;
    ``health_prefix``, ``SUREFOOT_METRICS_PATH`` and the app's ``docs_url`` / ``redoc_url`` /
    ``openapi_url`` move them.
    """
    mapping = {path: prefix + path for path in _DEFAULT_PROBES}
    mapping["/metrics"] = settings.metrics_path
    for default, attribute in (
        ("/docs", "docs_url"), ("/redoc", "redoc_url"), ("/openapi.json", "openapi_url"),
        ("/docs/oauth2-redirect", "swagger_ui_oauth2_redirect_url"),
    ):
        if hasattr(app, attribute):
            mapping[default] = getattr(app, attribute) or ""
    update: dict[str, Any] = {}
    for name in ("access_log_skip_paths", "metrics_exclude_paths"):
        current = list(getattr(settings, name))
        moved = [path for path in (mapping.get(p, p) for p in current) if path]
        if moved != current:
            update[name] = moved
    return settings.model_copy(update=update) if update else settings


def install(
    app: Any,
    *,
    settings: Settings | None = None,
    registry: Any = None,
    health: Any = None,
    metrics: bool = True,
    logging: bool = True,
    health_endpoints: bool = True,
    health_prefix: str = "",
    drain_seconds: float | None = None,
    validation_status: int = 400,
    log_options: dict[str, Any] | None = None,
    **middleware_options: Any,
) -> Installation:
    """Make a FastAPI or Starlette application production-grade in one call.

    In this order (each step relies on the previous ones):

    1. **logging** — :func:`surefoot.logging.configure_logging` (JSON or console, one format
       for structlog, stdlib and uvicorn, PII redaction);
    2. **request path** — :func:`surefoot.http.install_http`: the pure-ASGI middleware
       (correlation ids, RED metrics, access log) and RFC 9457 exception handlers;
    3. **metrics endpoint** at ``settings.metrics_path`` exposing this app's registry and the
       process default one (domain metrics), with the configured auth;
    4. **health endpoints** ``/livez``, ``/readyz``, ``/health``; these and the metrics endpoint
       are answered by the middleware by exact path before the application's routes are
       matched (a catch-all route cannot shadow them; user middleware does not run for them);
    5. **lifespan** — the app's own lifespan is wrapped, not replaced: on start-up, uvicorn's
       loggers are bridged again (``uvicorn.run`` reconfigures them after import), the
       loop-lag watchdog, the SIGTERM drain and (with metrics) the process monitor
       (:class:`surefoot.metrics.ProcessMonitor`) start, the app's start-up runs, then readiness
       turns ready; on shutdown readiness turns not-ready first, then the app's shutdown runs,
       and buffered log lines are written.

    Installing on an application that already has surefoot returns the first
    :class:`Installation` unchanged (its arguments are ignored). Each application gets its own
    ``CollectorRegistry`` unless ``registry`` is given, so two apps in one process (tests)
    never collide.

    Args:
        app: a ``FastAPI`` or ``Starlette`` application that has not started yet.
        settings: surefoot settings (default: :func:`surefoot.get_settings`).
        registry: the Prometheus registry for HTTP metrics (default: a new one per app).
        health: a :class:`surefoot.health.Health` with your checks (default: one without
            checks, named and versioned from ``settings``).
        metrics: ``False`` removes metrics from the request path and the endpoint
            (``settings.metrics_enabled=False`` does too).
        logging: ``False`` leaves logging configuration to you.
        health_endpoints: ``False`` skips the probe routes (the lifespan phases still run).
        health_prefix: a prefix for the probe paths, e.g. ``"/_"`` → ``/_/livez``.
        drain_seconds: how long readiness reports 503 after SIGTERM before the server shuts
            down (default: the ``health``'s; for the default one
            ``SUREFOOT_HEALTH_DRAIN_SECONDS``, else 0). Use the time your load
            balancer needs to stop sending traffic (Kubernetes: ~5–10 s).
        validation_status: status of request validation errors (400, or FastAPI's 422).
        log_options: more keyword arguments for ``configure_logging`` (``stream``,
            ``processors``, ``body_keys``, ``uvicorn_access_log``, ...).
        **middleware_options: passed to :class:`surefoot.http.SurefootMiddleware`
            (``tenant_resolver``, ``max_label_values``, ``access_log``, ``extra_buckets``).

    Returns:
        The :class:`Installation` (also at ``app.state.surefoot``).

    Raises:
        ConfigurationError: ``app`` is not a Starlette/FastAPI app, it already served
            requests, or an option is invalid.
    """
    state = getattr(app, "state", None)
    existing = getattr(state, _STATE_ATTR, None) if state is not None else None
    if isinstance(existing, Installation):
        import structlog

        structlog.get_logger("surefoot").warning(
            "surefoot_already_installed", app=type(app).__name__
        )
        return existing
    router = getattr(app, "router", None)
    if state is None or router is None or not hasattr(router, "lifespan_context"):
        raise ConfigurationError(
            f"surefoot.install needs a FastAPI or Starlette application; got {type(app).__name__}. "
            "For any other ASGI app wrap it: surefoot.http.SurefootMiddleware(app)."
        )
    if health_prefix and (not health_prefix.startswith("/") or health_prefix.endswith("/")):
        raise ConfigurationError(
            f"health_prefix must start with '/' and not end with it; got {health_prefix!r}"
        )
    settings = _actual_paths(settings if settings is not None else get_settings(), health_prefix, app)

    from .health import Health, health_routes
    from .http import install_http
    from .logging import bridge_stdlib_loggers, configure_logging
    from .logging._setup import pause_buffering

    # Arguments are checked before anything is changed on the app or the process.
    if drain_seconds is not None and drain_seconds < 0:
        raise ConfigurationError(f"drain_seconds must be >= 0; got {drain_seconds}")
    if health is None:
        health = Health(
            service=settings.service_name,
            version=settings.service_version,
            drain_seconds=drain_seconds,
        )
    elif drain_seconds is not None:
        health.drain_seconds = drain_seconds

    # 1. logging first: everything below may log.
    log_options = dict(log_options or {})
    logging_config = configure_logging(settings, **log_options) if logging else None

    # 1b. tracing and error reporting from the settings (SUREFOOT_TRACING, SUREFOOT_SENTRY_DSN);
    # off by default: without any such variable the tracing set-up is not even imported.
    from .tracing._switch import tracing_requested

    tracing_started = False
    if tracing_requested():
        from .tracing._setup import setup_from_settings

        tracing_started = setup_from_settings()

    # 2. request path.
    metrics_on = bool(metrics) and settings.metrics_enabled
    if metrics_on and registry is None:
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=True)
    middleware = install_http(
        app,
        settings=settings,
        registry=registry if metrics_on else None,
        metrics_enabled=metrics_on,
        validation_status=validation_status,
        **middleware_options,
    )

    from starlette.routing import Route

    front: list[Any] = []
    # 3. metrics endpoint.
    endpoint = None
    if metrics_on:
        from .metrics import metrics_app

        process_default = default_registry()
        registries = [registry] if registry is process_default else [registry, process_default]
        endpoint = metrics_app(registries=registries, settings=settings)
        front.append(Route(settings.metrics_path, endpoint, include_in_schema=False))

    # 4. health endpoints.
    health.use_registry(registry, metrics=metrics_on)
    if health_endpoints:
        front.extend(health_routes(health, prefix=health_prefix))
    # Answered by the middleware by exact path, ahead of every route (one dict lookup, no
    # matching): a catch-all route cannot shadow them and user middleware does not run for
    # them. They also sit at the end of the router, for anything that lists or reaches the
    # routes directly.
    if middleware is not None:
        middleware.serve_first(front)
    router.routes.extend(front)

    # 5. lifespan, wrapping the application's own.
    original_lifespan = router.lifespan_context
    uvicorn_access_log = bool(log_options.get("uvicorn_access_log", False))

    @contextlib.asynccontextmanager
    async def lifespan(lifespan_app: Any) -> AsyncIterator[Any]:
        if logging:
            bridge_stdlib_loggers(uvicorn_access_log=uvicorn_access_log)
            pause_buffering(False)  # started again after a shutdown (tests): buffered again
        if metrics_on:
            from .metrics.multiprocess import warn_if_unshared

            warn_if_unshared()
        health.start_watchdog()
        health.install_signal_drain()
        monitor = None
        if metrics_on:
            from .metrics import ProcessMonitor

            monitor = ProcessMonitor()
            monitor.start()
        try:
            async with original_lifespan(lifespan_app) as lifespan_state:
                health.mark_ready()
                try:
                    yield lifespan_state
                finally:
                    health.start_draining()
        finally:
            if monitor is not None:
                await monitor.stop()
            health.remove_signal_drain()
            await health.stop_watchdog()
            health.mark_stopped()
            if tracing_started:
                from .tracing._setup import shutdown_tracing

                shutdown_tracing()  # flushes the batch queue and held failed traces
            if logging:
                # Buffered lines are written now, and the server's last lines at once: it may
                # end the process without running atexit (uvicorn re-raises SIGTERM).
                pause_buffering(True)

    router.lifespan_context = lifespan

    installation = Installation(
        app=app,
        settings=settings,
        registry=registry if metrics_on else None,
        health=health,
        middleware=middleware,
        metrics_endpoint=endpoint,
        logging=logging_config,
    )
    setattr(state, _STATE_ATTR, installation)
    return installation
