"""The request's server span, placed inside surefoot's HTTP middleware, decided once.

:func:`tracing_layer` is called when the middleware is built. With tracing off it returns
the application unchanged: the request path carries no tracing work at all. With tracing on
it returns one of two thin pure-ASGI layers:

* :class:`ServerSpanLayer` — surefoot's own ``SERVER`` span (OpenTelemetry HTTP semantic
  conventions), when nothing else makes one;
* :class:`ExistingSpanLayer` — when FastAPI's own telemetry (``FastAPI(telemetry=...)``) or
  the contrib ``opentelemetry-instrumentation-asgi``/``-fastapi`` already opened the server
  span: surefoot only adds ``correlation_id``, ``causation_id`` and ``tenant_id`` to it.

Both run inside the middleware, after the ids are bound, so they are on the span.
"""

from __future__ import annotations

from typing import Any

from .. import context
from .._core.catalogue import HTTP_METHODS
from ._api import STATE, TRACE_IDS_SCOPE_KEY, active_tracer

_METHODS = frozenset(HTTP_METHODS)

__all__ = ["tracing_layer", "existing_server_span", "ServerSpanLayer", "ExistingSpanLayer"]

_cid = context.correlation_id
_cause = context.causation_id
_tenant = context.tenant_id
_PROPAGATED = {b"traceparent": "traceparent", b"tracestate": "tracestate", b"baggage": "baggage"}


def _contrib_in(stack: Any) -> bool:
    seen: set[int] = set()
    while stack is not None and id(stack) not in seen:
        seen.add(id(stack))
        if type(stack).__name__ == "OpenTelemetryMiddleware" and type(stack).__module__.startswith(
            "opentelemetry.instrumentation"
        ):
            return True
        stack = getattr(stack, "app", None)
    return False


def existing_server_span(owner: Any, app: Any = None) -> bool:
    """Whether another layer makes the server span for ``owner`` (the Starlette/FastAPI app).

    True when FastAPI's own telemetry traces (``telemetry`` ``tracing`` on, the default, and
    a tracer provider configured) or the contrib instrumentation is applied to ``owner``
    (``instrument_app``) or sits in the middleware stack ``app``.
    """
    for candidate in (owner, app):
        if candidate is not None and (
            getattr(candidate, "_is_instrumented_by_opentelemetry", False) or _contrib_in(candidate)
        ):
            return True
    middleware = getattr(owner, "user_middleware", None) or ()
    for item in middleware:
        cls = getattr(item, "cls", None)
        if getattr(cls, "__name__", "") == "OpenTelemetryMiddleware":
            return True
    telemetry = getattr(owner, "_telemetry", None)
    if isinstance(telemetry, dict) and telemetry.get("tracing", False):
        if telemetry.get("tracer_provider") is not None:
            return True
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        return type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")
    return False


def tracing_layer(app: Any, routes: Any, owner: Any = None) -> Any:
    """Return ``app`` wrapped for tracing as decided now, or ``app`` itself when tracing is off.

    Args:
        app: the application below surefoot's middleware.
        routes: the middleware's route-template resolver.
        owner: the Starlette/FastAPI application, to look for FastAPI's own telemetry or the
            contrib instrumentation.
    """
    tracer = active_tracer()
    if tracer is None:
        return app
    mode = STATE.server_span
    if mode == "auto":
        mode = "existing" if existing_server_span(owner, app) else "own"
    if mode == "existing":
        return ExistingSpanLayer(app)
    return ServerSpanLayer(app, tracer, routes)


class ExistingSpanLayer:
    """Add surefoot's ids to the server span another instrumentation opened."""

    __slots__ = ("app", "_current")

    def __init__(self, app: Any) -> None:
        from opentelemetry import trace

        self.app = app
        self._current = trace.get_current_span

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            span = self._current()
            if span.is_recording():
                for key, value in (("correlation_id", _cid.get()), ("causation_id", _cause.get()),
                                   ("tenant_id", _tenant.get())):
                    if value is not None:
                        span.set_attribute(key, value)
        await self.app(scope, receive, send)


def _redacted_query(raw: bytes) -> str:
    # Keys stay (they say what was asked), values never leave the process.
    parts = []
    for pair in raw.decode("latin-1").split("&"):
        if pair:
            key = pair.split("=", 1)[0]
            parts.append(f"{key}=REDACTED")
    return "&".join(parts)


def _status_of(error: BaseException) -> int:
    # What surefoot's middleware answers: an HTTP error's own status, else 500.
    for name in ("status", "status_code"):
        value = getattr(error, name, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return 500


class ServerSpanLayer:
    """Surefoot's ``SERVER`` span per HTTP request (semantic conventions, W3C parent)."""

    __slots__ = ("app", "_tracer", "_routes", "_extract", "_attach", "_detach", "_with_span",
                 "_server", "_status_cls", "_error", "_root")

    def __init__(self, app: Any, tracer: Any, routes: Any) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import propagate, trace

        self.app = app
        self._tracer = tracer
        self._routes = routes
        self._extract = propagate.extract
        self._attach = otel_context.attach
        self._detach = otel_context.detach
        self._with_span = trace.set_span_in_context
        self._server = trace.SpanKind.SERVER
        self._status_cls = trace.Status
        self._error = trace.StatusCode.ERROR
        self._root = otel_context.Context()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope["method"]
        # A method outside the known ones is _OTHER (its text, cut, in method_original) and the
        # span is named "HTTP ...": a client's method never makes a new span name.
        method = raw if raw in _METHODS else "_OTHER"
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        carrier: dict[str, str] | None = None
        for name, value in scope["headers"]:
            if name == b"user-agent":
                attributes["user_agent.original"] = value.decode("latin-1")
            else:
                key = _PROPAGATED.get(name)
                if key is not None:
                    if carrier is None:
                        carrier = {}
                    previous = carrier.get(key)
                    if previous is None:
                        carrier[key] = value.decode("latin-1")
                    elif key != "traceparent":
                        # W3C: tracestate (and baggage) may span several header lines: one list.
                        carrier[key] = f"{previous},{value.decode('latin-1')}"
        if method == "_OTHER":
            attributes["http.request.method_original"] = raw[:64]
            method = "HTTP"
        query = scope.get("query_string")
        if query:
            attributes["url.query"] = _redacted_query(query)
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        version = scope.get("http_version")
        if version:
            attributes["network.protocol.version"] = version
        # The parent is what the request carries, never whatever span the server's task has.
        parent = self._extract(carrier) if carrier is not None else self._root
        span = self._tracer.start_span(method, context=parent, kind=self._server, attributes=attributes)
        token = self._attach(self._with_span(span, parent))
        status = 0

        async def traced_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        error: BaseException | None = None
        failed_after_response = False
        try:
            await self.app(scope, receive, traced_send)
        except Exception as exc:
            error = exc
            # Raised after the response started (a background task, a broken stream): the
            # client got its status, but the request still failed.
            failed_after_response = status != 0
            ctx = span.get_span_context()
            scope[TRACE_IDS_SCOPE_KEY] = (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
            raise
        finally:
            if error is not None and not status:
                status = _status_of(error)
            elif error is None and status >= 500:
                error = scope.get("surefoot.error")  # rendered by an exception handler
            route = self._routes.template(scope)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attributes({"http.route": route, "http.response.status_code": status}
                                    if status else {"http.route": route})
            elif status:
                span.set_attribute("http.response.status_code", status)
            if error is not None:
                span.record_exception(error)
            if status >= 500 or failed_after_response:
                error_type = type(error).__qualname__ if error is not None else str(status)
                span.set_attribute("error.type", error_type)
                span.set_status(self._status_cls(self._error, error_type))
            span.end()
            self._detach(token)
