"""Trace context for logs (and, with the ``otel`` extra, tracer set-up).

:func:`current_trace_ids` never imports OpenTelemetry: when the process has not imported
``opentelemetry.trace`` no span can be active, so a log line pays one dictionary lookup.
"""

from __future__ import annotations

import sys
from typing import Any

from .._extras import require

__all__ = ["current_trace_ids", "setup_tracing"]


def current_trace_ids() -> tuple[str, str] | None:
    """Return ``(trace_id, span_id)`` in W3C hex form when an OpenTelemetry span is active.

    Returns:
        ``None`` when OpenTelemetry is not in use or no valid span is current.
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def setup_tracing(
    *,
    service_name: str | None = None,
    service_version: str | None = None,
    exporter: Any = None,
    sampler: Any = None,
    set_global: bool = True,
) -> Any:
    """Create an OpenTelemetry ``TracerProvider`` for this service (extra ``otel``).

    Args:
        service_name: the ``service.name`` resource attribute (default: settings).
        service_version: ``service.version`` (default: settings).
        exporter: a span exporter; default OTLP over HTTP (configured by the standard
            ``OTEL_EXPORTER_OTLP_*`` variables). Pass an ``InMemorySpanExporter`` in tests.
        sampler: an OpenTelemetry sampler (default: parent-based, always on).
        set_global: install the provider as the global tracer provider.

    Returns:
        The ``TracerProvider``.

    Raises:
        MissingExtraError: OpenTelemetry's SDK is not installed (``pip install 'surefoot[otel]'``).
    """
    from .._config import get_settings

    trace = require("opentelemetry.trace", "otel")
    sdk_trace = require("opentelemetry.sdk.trace", "otel")
    export = require("opentelemetry.sdk.trace.export", "otel")
    resources = require("opentelemetry.sdk.resources", "otel")
    settings = get_settings()
    resource = resources.Resource.create(
        {
            "service.name": service_name or settings.service_name,
            "service.version": service_version or settings.service_version,
        }
    )
    kwargs: dict[str, Any] = {"resource": resource}
    if sampler is not None:
        kwargs["sampler"] = sampler
    provider = sdk_trace.TracerProvider(**kwargs)
    if exporter is None:
        otlp = require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otel")
        exporter = otlp.OTLPSpanExporter()
        provider.add_span_processor(export.BatchSpanProcessor(exporter))
    else:
        provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
