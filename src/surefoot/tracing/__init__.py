"""Tracing: spans at the request, webhook, outbox and provider-call boundaries.

* :func:`span` — ``with``/``async with`` a named span; a shared no-op when tracing is off.
* :func:`setup_tracing` — one call (or ``SUREFOOT_TRACING=true`` with
  :func:`surefoot.install`) turns tracing on: parent-based ratio head sampling, in-process
  tail keep of failed traces, OTLP over HTTP or gRPC; :func:`shutdown_tracing` flushes.
* :func:`collector_config` — the equivalent OpenTelemetry Collector ``tail_sampling`` setup.
* :func:`setup_sentry` — optional error reporting, scrubbed by surefoot's redaction.

:func:`current_trace_ids` never imports OpenTelemetry: when the process has not imported
``opentelemetry.trace`` no span can be active, so a log line pays one dictionary lookup.
Nothing here imports OpenTelemetry at import time.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .._compat.opentelemetry import current_trace_ids
from .._core.extras import lazy_exports
from ._api import NOOP_SPAN, active_tracer, report_exception, span

__all__ = [
    "span",
    "setup_tracing",
    "shutdown_tracing",
    "reset_tracing",
    "head_sampler",
    "default_exporter",
    "current_trace_ids",
    "active_tracer",
    "inject_headers",
    "collector_config",
    "write_collector_config",
    "collector_config_yaml",
    "setup_sentry",
    "reset_sentry",
    "scrub_event",
    "report_exception",
    "trace_exemplar",
    "TracingSettings",
    "TailKeepSampler",
    "TailKeepProcessor",
    "NOOP_SPAN",
]


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (``traceparent``, ``tracestate``) to ``headers``.

    A no-op when no span is active or OpenTelemetry is not in use. Returns ``headers``.
    """
    if "opentelemetry.trace" in sys.modules:
        from opentelemetry import propagate

        propagate.inject(headers)
    return headers


_LAZY = {
    "TracingSettings": "._settings",
    "setup_tracing": "._setup",
    "shutdown_tracing": "._setup",
    "reset_tracing": "._setup",
    "head_sampler": "._setup",
    "default_exporter": "._setup",
    "collector_config": "._collector",
    "collector_config_yaml": "._collector",
    "write_collector_config": "._collector",
    "setup_sentry": "._sentry",
    "reset_sentry": "._sentry",
    "scrub_event": "._sentry",
    "TailKeepSampler": "._tail",
    "trace_exemplar": "._exemplars",
    "TailKeepProcessor": "._tail",
}
__getattr__, __dir__ = lazy_exports(globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from ._collector import collector_config, collector_config_yaml, write_collector_config
    from ._exemplars import trace_exemplar
    from ._sentry import reset_sentry, scrub_event, setup_sentry
    from ._settings import TracingSettings
    from ._setup import (
        default_exporter,
        head_sampler,
        reset_tracing,
        setup_tracing,
        shutdown_tracing,
    )
    from ._tail import TailKeepProcessor, TailKeepSampler
