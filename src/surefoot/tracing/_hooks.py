"""What surefoot's webhook inbox, outbox and provider client call to trace themselves.

Each helper costs an attribute read (and a dictionary lookup) when tracing is off, and the
call sites stay one or two lines. Span names follow the trace boundaries of the reference
flow: ``webhook.<provider>.<endpoint>``, ``outbox.dispatch``, and a ``CLIENT`` span per
provider call.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._api import NOOP_SPAN, STATE, _discover

__all__ = [
    "webhook_span",
    "webhook_delivery",
    "webhook_outcome",
    "outbox_added",
    "dispatch_span",
    "client_span",
    "client_attempt",
    "client_result",
    "trace_resilience",
]

_WEBHOOK_OUTCOMES = {"processed": "new", "duplicate": "duplicate", "ignored": "ignored",
                     "failed": "failed", "rejected": "rejected", "signature_failure": "signature_failure"}


def _tracer() -> Any:
    tracer = STATE.tracer
    return tracer if tracer is not None else _discover()


def _current_recording() -> Any:
    if STATE.tracer is None and _discover() is None:
        return None
    from opentelemetry import trace

    span = trace.get_current_span()
    return span if span.is_recording() else None


# -- webhook inbox ---------------------------------------------------------------------

def webhook_span(provider: str, endpoint: str, request: Any) -> Any:
    """The ``webhook.<provider>.<endpoint>`` span around one delivery (a context manager).

    ``endpoint`` in the name is the route's name (the handler's function name, e.g.
    ``sms_inbound``), else the last segment of the path.
    """
    tracer = _tracer()
    if tracer is None:
        return NOOP_SPAN
    route = getattr(request, "scope", {}).get("route")
    name = getattr(route, "name", None) or endpoint.rstrip("/").rsplit("/", 1)[-1] or "webhook"
    from ._otel import SpanScope

    return SpanScope(tracer, f"webhook.{provider}.{name}",
                     {"webhook.provider": provider, "webhook.endpoint": endpoint}, None)


def webhook_delivery(provider: str, delivery_id: str) -> None:
    """Record the verified delivery's id on the current (webhook) span."""
    span = _current_recording()
    if span is not None:
        span.set_attribute("webhook.provider", provider)
        span.set_attribute("webhook.delivery_id", delivery_id)


def webhook_outcome(outcome: str, error: BaseException | None = None) -> None:
    """Record the delivery's outcome (``new``, ``duplicate``, ``ignored``, ``failed``,
    ``rejected``, ``signature_failure``) once, on the current (webhook) span."""
    span = _current_recording()
    if span is None:
        return
    attributes = getattr(span, "attributes", None) or {}
    if "webhook.outcome" in attributes:
        return
    span.set_attribute("webhook.outcome", _WEBHOOK_OUTCOMES.get(outcome, outcome))
    if error is not None:
        from ._otel import mark_error

        mark_error(span, error)


# -- outbox ----------------------------------------------------------------------------

def outbox_added(event: Any) -> None:
    """Record an event written by ``outbox.add`` on the current span (an ``outbox.add``
    span event and the ``event_id`` attribute). The trace context itself travels in
    ``event.headers`` (``traceparent``)."""
    if STATE.tracer is None and "opentelemetry.trace" not in sys.modules:
        return
    span = _current_recording()
    if span is not None:
        span.set_attribute("event_id", event.event_id)
        span.add_event("outbox.add", {"event_id": event.event_id, "event_name": event.event_name})


def dispatch_span(event: Any, sink: str) -> Any:
    """The ``outbox.dispatch`` span of one delivery, continuing the trace stored in the
    event's headers (``CONSUMER``; ``event_id``, ``event_name``, ``attempts`` and the
    event's ``correlation_id``/``causation_id``/``tenant_id``)."""
    tracer = _tracer()
    if tracer is None:
        return NOOP_SPAN
    from opentelemetry import propagate, trace

    from ._otel import SpanScope

    parent = propagate.extract(dict(event.headers)) if event.headers else None
    attributes = {
        "messaging.system": "surefoot.outbox",
        "messaging.operation.type": "process",
        "messaging.destination.name": event.event_name,
        "messaging.message.id": event.event_id,
        "event_id": event.event_id,
        "event_name": event.event_name,
        "attempts": event.attempts + 1,
        "outbox.sink": sink,
    }
    if event.outbox_id is not None:
        attributes["outbox_id"] = event.outbox_id
    for key in ("correlation_id", "causation_id", "tenant_id"):
        value = getattr(event, key, None)
        if value is not None:
            attributes[key] = value
    return _ParentedScope(SpanScope(tracer, "outbox.dispatch", attributes, trace.SpanKind.CONSUMER), parent)


class _ParentedScope:
    """A :class:`SpanScope` whose span starts under an extracted (remote) parent context."""

    __slots__ = ("_scope", "_parent", "_token")

    def __init__(self, scope: Any, parent: Any) -> None:
        self._scope = scope
        self._parent = parent
        self._token: Any = None

    def __enter__(self) -> Any:
        if self._parent is not None:
            from opentelemetry import context as otel_context

            self._token = otel_context.attach(self._parent)
        try:
            return self._scope.__enter__()
        except BaseException:
            self._release()
            raise

    def __exit__(self, *exc: Any) -> bool:
        try:
            suppressed: bool = self._scope.__exit__(*exc)
            return suppressed
        finally:
            self._release()

    def _release(self) -> None:
        if self._token is not None:
            from opentelemetry import context as otel_context

            otel_context.detach(self._token)
            self._token = None

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> bool:
        return self.__exit__(*exc)


# -- provider client -------------------------------------------------------------------

def _redacted_url(url: Any) -> str:
    parts = urlsplit(str(url))
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = "&".join(f"{p.split('=', 1)[0]}=REDACTED" for p in parts.query.split("&") if p)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def client_span(provider: str, request: Any, endpoint: str) -> Any:
    """The ``CLIENT`` span of one provider call (all its attempts), semantic conventions:
    name ``{method}``, ``http.request.method``, ``server.address``, ``server.port``,
    ``url.full`` (query values and credentials removed), ``url.template``; plus
    ``provider``. Start it before the trace headers are injected, so the provider sees this
    span as its parent."""
    tracer = _tracer()
    if tracer is None:
        return NOOP_SPAN
    from opentelemetry.trace import SpanKind

    from ._otel import SpanScope

    url = request.url
    attributes: dict[str, Any] = {
        "http.request.method": request.method,
        "server.address": url.host,
        "url.full": _redacted_url(url),
        "provider": provider,
        "peer.service": provider,
    }
    port = url.port or (443 if url.scheme == "https" else 80)
    attributes["server.port"] = port
    template = endpoint.split(" ", 1)[-1] if endpoint else None
    if template and "{" in template:
        attributes["url.template"] = template
    return SpanScope(tracer, request.method, attributes, SpanKind.CLIENT)


def client_attempt(status: str, seconds: float) -> None:
    """Record one real HTTP attempt as an ``http.attempt`` event on the client span."""
    span = _current_recording()
    if span is None:
        return
    attempt = 1 + sum(1 for e in getattr(span, "events", ()) if e.name == "http.attempt")
    span.add_event("http.attempt", {"attempt": attempt, "status": status, "duration_s": seconds})
    if attempt > 1:
        span.set_attribute("http.request.resend_count", attempt - 1)


def client_result(span: Any, response: Any) -> None:
    """Set ``http.response.status_code`` (and ``error.type``/``ERROR`` for >= 400)."""
    if not span.is_recording():
        return
    status = response.status_code
    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR, str(status)))


def _resilience_event(event: Any) -> None:
    span = _current_recording()
    if span is None:
        return
    attributes: dict[str, Any] = {"component": event.component, "name": event.name}
    for key, value in event.attributes.items():
        if value is None:
            continue
        if isinstance(value, BaseException):
            value = type(value).__qualname__
        elif not isinstance(value, (str, bool, int, float)):
            value = str(value)
        attributes[key] = value
    span.add_event(f"{event.component}.{event.kind}", attributes)


def trace_resilience(policy: Any) -> None:
    """Make every decision of ``policy`` (retry, breaker, timeout, bulkhead, rate limit,
    chaos) an event on the span current when it is taken. Idempotent."""
    for attr in ("timeout", "retry", "breaker", "bulkhead", "rate_limit", "chaos"):
        hooks = getattr(getattr(policy, attr, None), "hooks", None)
        if hooks is None or not hasattr(hooks, "add"):
            continue
        if _resilience_event in getattr(hooks, "_listeners", ()):
            continue
        hooks.add(_resilience_event)


def mark_failed(span: Any, exc: BaseException) -> None:
    """Record ``exc`` on ``span`` (a no-op span included): exception event, ``ERROR``."""
    if span.is_recording():
        from ._otel import mark_error

        mark_error(span, exc)
