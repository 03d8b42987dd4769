"""Putting the request path into a Starlette or FastAPI application.

Where the middleware goes matters. Starlette builds its stack as::

    ServerErrorMiddleware -> [FastAPI telemetry, body limit] -> user middleware
        -> ExceptionMiddleware (registered handlers) -> router

:func:`install_http` places :class:`SurefootMiddleware` directly inside
``ServerErrorMiddleware``, outside every user middleware, whatever order middleware is
added in (it hooks ``build_middleware_stack``, which runs once at the first request).
``ServerErrorMiddleware`` stays the outermost layer because instrumentations rebuild the
stack around it (OpenTelemetry's FastAPI instrumentation skips an app without it). So:

* the ids are bound before any user middleware or handler runs, and the response header,
  metrics and access log see the final status, including responses from user middleware;
* an unhandled exception reaches surefoot before ``ServerErrorMiddleware``: surefoot answers
  it with the problem document, or with the response of the application's own
  ``500``/``Exception`` handler when it registered one (the handler
  ``ServerErrorMiddleware`` would have called), and logs the stack trace once.
  ``ServerErrorMiddleware`` (whose ``debug=True`` page would print the traceback to the
  client) never renders;
* exceptions with a handler (:class:`~surefoot.errors.HTTPError`, ``HTTPException``,
  ``RequestValidationError``) are rendered by ``ExceptionMiddleware`` using the handlers
  registered here, inside the bound context, so the body carries the correlation id.
"""

from __future__ import annotations

from typing import Any

from .._compat.starlette import let_errors_propagate, mounted_apps, wrap_outermost
from .._core.settings import Settings, get_settings
from ..errors import ConfigurationError, HTTPError
from ..tracing._asgi import tracing_layer
from ._middleware import (
    ERROR_SCOPE_KEY,
    LOGGED_SCOPE_KEY,
    SurefootMiddleware,
    app_error_handler,
    log_unhandled,
)

__all__ = ["install_http", "install_error_handlers", "exception_handlers"]

_INSTALLED_ATTR = "_surefoot_http_middleware"


def exception_handlers(*, validation_status: int = 400) -> dict[Any, Any]:
    """Return the exception handlers surefoot registers, keyed by exception class.

    Useful to register them on an application built without :func:`install_http`.

    Args:
        validation_status: status for FastAPI's ``RequestValidationError``. 400 matches
            surefoot's :class:`~surefoot.errors.ValidationError` (``VALIDATION_ERROR``) so
            a client sees one status for "your input is wrong" whether the framework or
            the handler found it; pass 422 to keep FastAPI's status.

    Returns:
        ``{exception class: async handler(request, exc)}``.
    """
    from .._core.extras import require

    exceptions = require("starlette.exceptions", "fastapi")
    responses = require("starlette.responses", "fastapi")

    async def render(request: Any, exc: Exception) -> Any:  # (marked below as surefoot's)
        from .._core.problem import PROBLEM_CONTENT_TYPE, problem_from_exception  # on an error only

        request.scope[ERROR_SCOPE_KEY] = exc
        problem = problem_from_exception(
            exc, instance=request.scope.get("path"), validation_status=validation_status
        )
        if problem.status == 500 and request.scope.get(LOGGED_SCOPE_KEY) is not exc:
            log_unhandled(request.scope, exc)
        return responses.Response(
            problem.content(),
            status_code=problem.status,
            headers=problem.headers or None,
            media_type=PROBLEM_CONTENT_TYPE,
        )

    render._surefoot_handler = True  # type: ignore[attr-defined]
    handlers: dict[Any, Any] = {
        HTTPError: render,
        exceptions.HTTPException: render,
        Exception: render,
    }
    try:
        fastapi_exceptions = require("fastapi.exceptions", "fastapi")
    except ImportError:
        pass  # plain Starlette: no request validation errors to render
    else:
        handlers[fastapi_exceptions.RequestValidationError] = render
    return handlers


def install_error_handlers(app: Any, *, validation_status: int = 400) -> None:
    """Register surefoot's problem+json exception handlers on ``app`` (no middleware).

    For applications mounted inside one that has :func:`install_http`: a mounted FastAPI
    app renders its own ``HTTPException`` and validation errors, so give it the same
    handlers; the outer middleware already binds ids, measures and logs its requests.
    A handler the user registered for the same class is kept; FastAPI's defaults are
    replaced.

    Raises:
        ConfigurationError: ``validation_status`` is not 400 or 422.
    """
    if validation_status not in (400, 422):
        raise ConfigurationError(f"validation_status must be 400 or 422; got {validation_status!r}")
    defaults = _framework_default_handlers()
    for exc_class, handler in exception_handlers(validation_status=validation_status).items():
        current = app.exception_handlers.get(exc_class)
        if current is None or current in defaults:
            app.exception_handlers[exc_class] = handler


def install_http(
    app: Any,
    *,
    settings: Settings | None = None,
    registry: Any = None,
    validation_status: int = 400,
    **middleware_options: Any,
) -> SurefootMiddleware | None:
    """Install the request path and the RFC 9457 error handlers on a Starlette/FastAPI app.

    Calling it again on the same app returns the middleware already installed.

    Args:
        app: a ``starlette.applications.Starlette`` (``fastapi.FastAPI`` included) that
            has not served a request yet.
        settings: surefoot settings (default: :func:`surefoot.get_settings`).
        registry: Prometheus registry for the HTTP metrics.
        validation_status: status for request validation errors (400, or FastAPI's 422).
        **middleware_options: passed to :class:`SurefootMiddleware`.

    Returns:
        The :class:`SurefootMiddleware` that will serve the app.

    Raises:
        ConfigurationError: ``app`` is not a Starlette application, it already started, or
            ``validation_status`` is not 400 or 422.
    """
    existing: SurefootMiddleware | None = getattr(app, _INSTALLED_ATTR, None)
    if existing is not None:
        return existing
    if validation_status not in (400, 422):
        raise ConfigurationError(f"validation_status must be 400 or 422; got {validation_status!r}")
    if not (hasattr(app, "build_middleware_stack") and hasattr(app, "exception_handlers")):
        raise ConfigurationError(
            f"install_http needs a Starlette or FastAPI application; got {type(app).__name__}. "
            "Wrap other ASGI apps directly: SurefootMiddleware(app)."
        )
    if getattr(app, "middleware_stack", None) is not None:
        raise ConfigurationError("install surefoot before the application serves its first request")
    settings = settings if settings is not None else get_settings()
    middleware = SurefootMiddleware(_NotBuilt(), settings=settings, registry=registry, **middleware_options)
    install_error_handlers(app, validation_status=validation_status)
    validation = validation_status

    def wrap(inner: Any) -> Any:
        # Runs when Starlette builds the stack (first request): mounts added after install
        # are known by then.
        _adopt_mounted_apps(app, validation)
        middleware.app = tracing_layer(inner, middleware.routes, app)
        if middleware.error_handler is None:
            middleware.error_handler = app_error_handler(app)
        return middleware

    wrap_outermost(app, wrap)
    setattr(app, _INSTALLED_ATTR, middleware)
    return middleware


def _adopt_mounted_apps(app: Any, validation_status: int) -> None:
    """Give every mounted Starlette/FastAPI app surefoot's error handling.

    A mounted application has its own exception handlers and its own
    ``ServerErrorMiddleware``: left alone, a surefoot error raised inside is a ``text/plain``
    500 and the exception is logged two or three times. Its handlers become surefoot's (the
    ones the user registered are kept) and its unhandled exceptions propagate to the outer
    middleware, which renders the problem and logs it once. An app with its own surefoot
    installation is left as it is.
    """
    router = getattr(app, "router", None)
    for sub in mounted_apps(getattr(router, "routes", None)):
        if getattr(sub, _INSTALLED_ATTR, None) is not None:
            continue
        install_error_handlers(sub, validation_status=validation_status)
        let_errors_propagate(sub)


def _framework_default_handlers() -> tuple[Any, ...]:
    try:
        from fastapi import exception_handlers as fastapi_handlers
    except ImportError:
        return ()
    return tuple(
        getattr(fastapi_handlers, name)
        for name in (
            "http_exception_handler",
            "request_validation_exception_handler",
            "websocket_request_validation_exception_handler",
        )
        if hasattr(fastapi_handlers, name)
    )


class _NotBuilt:
    """Placeholder app until Starlette builds its middleware stack."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raise ConfigurationError("the application's middleware stack has not been built yet")
