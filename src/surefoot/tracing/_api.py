"""``tracing.span``: a span as a sync or async context manager, free when tracing is off.

The active tracer is resolved once: :func:`surefoot.tracing.setup_tracing` sets it, and a
process whose application configured an OpenTelemetry SDK itself is found on first use.
Before that, and in a process that never imported OpenTelemetry, :func:`span` returns one
shared no-op object: no allocation, no import, a dictionary lookup and an attribute read.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from .. import context as _context
from .._core.state import STATE as PROCESS_STATE

__all__ = ["span", "active_tracer", "NOOP_SPAN", "clean_attributes", "report_exception"]


class _State:
    """The process's tracing state (one instance; :func:`surefoot.tracing.reset_tracing`)."""

    __slots__ = ("tracer", "provider", "owned", "tail", "server_span", "reporter", "discovered")

    def __init__(self) -> None:
        self.tracer: Any = None
        self.provider: Any = None
        self.owned = False
        self.tail: Any = None
        self.server_span = "auto"
        #: ``exc -> None`` reporting unhandled exceptions (Sentry), or None
        self.reporter: Any = None
        #: ``(global provider, its tracer)`` found by :func:`_discover`
        self.discovered: tuple[Any, Any] | None = None


STATE = _State()


def _reset_state() -> None:
    # reset_all(): stop what was set up (Sentry, a tracer surefoot owns), forget a discovered one.
    if STATE.reporter is not None:
        from ._sentry import reset_sentry

        reset_sentry()
    if STATE.provider is not None or STATE.tracer is not None or STATE.discovered is not None:
        from ._setup import reset_tracing

        reset_tracing()
    STATE.server_span = "auto"


PROCESS_STATE.own("tracing", STATE, reset=_reset_state)


class _NoopSpan:
    """What ``with tracing.span(...) as s`` gives when tracing is off: every call is a no-op."""

    __slots__ = ()

    def __enter__(self) -> _NoopSpan:
        return self

    def __exit__(self, *exc: Any) -> Literal[False]:
        return False

    async def __aenter__(self) -> _NoopSpan:
        return self

    async def __aexit__(self, *exc: Any) -> Literal[False]:
        return False

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attributes: Any) -> None:
        return None

    def add_event(self, name: str, attributes: Any = None, timestamp: Any = None) -> None:
        return None

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        return None

    def set_status(self, *args: Any, **kwargs: Any) -> None:
        return None

    def is_recording(self) -> bool:
        return False


NOOP_SPAN = _NoopSpan()
_SDK_PROVIDERS_ABSENT = ("ProxyTracerProvider", "NoOpTracerProvider")


def _discover() -> Any:
    # An application that set up an OpenTelemetry SDK without surefoot: use its global
    # provider, whichever it is at the time of the call (its tracer is kept per provider).
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    found = STATE.discovered
    if found is not None and found[0] is provider:
        return found[1]
    if type(provider).__name__ in _SDK_PROVIDERS_ABSENT:
        return None
    tracer = _WithContextIds(provider.get_tracer("surefoot"))
    STATE.discovered = (provider, tracer)
    return tracer


class _WithContextIds:
    """A tracer of a provider surefoot did not set up: its spans get the bound ids here,
    as :func:`setup_tracing`'s span processor gives them to every span of its provider."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        span = self._tracer.start_span(*args, **kwargs)
        if span.is_recording():
            ids = {key: value for key, value in _context.current().items() if value is not None}
            if ids:
                span.set_attributes(ids)
        return span

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracer, name)


def active_tracer() -> Any:
    """Return the tracer surefoot's spans use, or ``None`` when tracing is off."""
    tracer = STATE.tracer
    return tracer if tracer is not None else _discover()


def clean_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values and turn values OpenTelemetry cannot hold (UUIDs...) into text."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if not isinstance(value, (str, bool, int, float)):
            value = _sequence(value) if isinstance(value, (list, tuple)) else str(value)
        out[key] = value
    return out


def _sequence(values: list[Any] | tuple[Any, ...]) -> list[Any]:
    # OpenTelemetry holds a sequence of one primitive type (str, bool, int or float) as it is;
    # anything else (mixed types, UUIDs, None) becomes a sequence of text.
    kinds = {type(v) for v in values}
    if len(kinds) == 1 and next(iter(kinds)) in (str, bool, int, float):
        return list(values)
    return [str(v) for v in values]


def _check_kind(kind: Any) -> None:
    # Checked with tracing off too (without importing OpenTelemetry): a wrong kind must not
    # wait for production, where tracing is on, to break the exporter.
    cls = type(kind)
    if cls.__name__ != "SpanKind" or not cls.__module__.startswith("opentelemetry"):
        raise TypeError(
            f"tracing.span(kind=...) takes an opentelemetry.trace.SpanKind (e.g. SpanKind.CLIENT); "
            f"got {kind!r}. For an attribute named 'kind', call span.set_attribute('kind', ...) "
            "inside the block"
        )


def span(name: str, /, *, kind: Any = None, **attributes: Any) -> Any:
    """Open a span named ``name`` as the current span: ``with`` or ``async with``.

    Attributes are keyword arguments (``None`` values are left out). The correlation,
    causation and tenant ids bound in :mod:`surefoot.context` are added to every span.
    An exception leaving the block is recorded on the span, which gets status ``ERROR``
    and ``error.type``; the exception goes on.

    Args:
        name: the span name, e.g. ``"conversation.first_reply"``.
        kind: an ``opentelemetry.trace.SpanKind`` (default ``INTERNAL``); anything else
            raises ``TypeError``, also when tracing is off.
        **attributes: span attributes, e.g. ``event_id=...``.

    Returns:
        A context manager whose ``__enter__``/``__aenter__`` give the OpenTelemetry span,
        or a shared no-op object (with the same methods) when tracing is off.
    """
    if kind is not None:
        _check_kind(kind)
    tracer = STATE.tracer
    if tracer is None:
        tracer = _discover()
        if tracer is None:
            return NOOP_SPAN
    from ._otel import SpanScope

    return SpanScope(tracer, name, clean_attributes(attributes) if attributes else None, kind)


#: where the server span leaves its ``(trace_id, span_id)`` when the request raised
TRACE_IDS_SCOPE_KEY = "surefoot.trace_ids"


def report_exception(exc: BaseException, *, scope: Any = None) -> None:
    """Send ``exc`` to the error tracker when one is set up (:func:`setup_sentry`); else nothing.

    Called by surefoot for unhandled request exceptions; call it for failures you handle
    yourself but still want reported. Never raises.

    Args:
        exc: the exception.
        scope: the ASGI scope of the failed request (its trace ids are used when the
            request's span has already ended).
    """
    reporter = STATE.reporter
    if reporter is not None:
        try:
            reporter(exc, scope.get(TRACE_IDS_SCOPE_KEY) if scope is not None else None)
        except Exception:  # reporting must never break the request that failed
            import structlog

            structlog.get_logger("surefoot.tracing").warning("error_report_failed", exc_info=True)
