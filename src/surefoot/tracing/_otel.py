"""The parts of the span API that need OpenTelemetry (imported only when tracing is on)."""

from __future__ import annotations

from typing import Any, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["SpanScope", "mark_error"]

_INTERNAL = SpanKind.INTERNAL
_attach = otel_context.attach
_detach = otel_context.detach
_set_span_in_context = trace.set_span_in_context


def mark_error(span: Any, exc: BaseException) -> None:
    """Record ``exc`` on ``span``: exception event, ``error.type`` and status ``ERROR``."""
    if not span.is_recording():
        return
    span.record_exception(exc)
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))


class SpanScope:
    """Start a span and make it current for the ``with``/``async with`` block."""

    __slots__ = ("_tracer", "_name", "_attributes", "_kind", "_span", "_token")

    def __init__(self, tracer: Any, name: str, attributes: dict[str, Any] | None, kind: Any) -> None:
        self._tracer = tracer
        self._name = name
        self._attributes = attributes
        self._kind = kind if kind is not None else _INTERNAL
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Any:
        span = self._span = self._tracer.start_span(self._name, kind=self._kind, attributes=self._attributes)
        self._token = _attach(_set_span_in_context(span))
        return span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        span = self._span
        try:
            if exc is not None and isinstance(exc, Exception):
                mark_error(span, exc)
        finally:
            span.end()
            _detach(self._token)
        return False

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)
