"""OpenTelemetry: the ids of the current span for log lines, without importing the SDK.

Every log line asks "is a span active, and which?". Outside a span (most lines) the answer
must cost close to nothing, and OpenTelemetry must never be imported just to ask:

* :func:`current_trace_ids` reads the current span through the public API of
  ``opentelemetry.trace``, and only when the process has imported it already (when it has
  not, no span can be active).
* :func:`context_getter` returns a function that reads the current OpenTelemetry ``Context``.
  The default runtime context keeps it in a ``ContextVar`` (``_RUNTIME_CONTEXT._current_context``,
  not public): its ``get`` is one C call. With any other runtime context, or when that
  attribute is gone, the public ``opentelemetry.context.get_current`` is returned instead.
  An empty context means no span is active. ``tests/unit/test_compat.py`` checks the fast
  path against the installed version.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["current_trace_ids", "context_getter"]


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


def context_getter() -> Callable[[], Any] | None:
    """A function returning the current OpenTelemetry ``Context`` (falsy when empty).

    ``None`` while ``opentelemetry.context`` has not been imported (no span can be active).
    """
    otel_context = sys.modules.get("opentelemetry.context")
    if otel_context is None:
        return None
    var = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
    if isinstance(var, contextvars.ContextVar):
        return var.get
    return otel_context.get_current  # type: ignore[no-any-return]


def fast_context_available() -> bool:
    """Whether :func:`context_getter` uses the one-call path (for the version test)."""
    otel_context = sys.modules.get("opentelemetry.context")
    var = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
    return isinstance(var, contextvars.ContextVar)
