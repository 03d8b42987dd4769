"""Exemplars: a latency observation made inside a sampled span carries its trace id.

prometheus_client keeps one exemplar per histogram bucket and shows it in the OpenMetrics
exposition (``Accept: application/openmetrics-text``), so a dashboard can jump from a slow
bucket to the trace. Only used when tracing is on (the caller decides when it builds the
histogram child); multi-process values, which cannot hold exemplars, keep the plain observe.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

__all__ = ["exemplar_observer", "trace_exemplar"]


def trace_exemplar() -> dict[str, str] | None:
    """Return ``{"trace_id": ..., "span_id": ...}`` for the current span when it is sampled,
    else ``None``.

    Pass it to ``Histogram.observe(value, exemplar=...)`` for your own histograms.
    """
    import sys

    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.trace_flags.sampled or not ctx.is_valid:
        return None
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


def exemplar_observer(child: Any, observe: Callable[[float], None]) -> Callable[[float], None]:
    """Wrap ``observe`` of histogram ``child`` so that sampled spans leave an exemplar."""
    try:
        buckets = child._buckets
        bounds = tuple(child._upper_bounds)
    except AttributeError:
        return observe
    if len(buckets) != len(bounds) or not all(hasattr(b, "set_exemplar") for b in buckets):
        return observe
    if type(buckets[0]).__name__ == "MmapedValue":
        return observe
    from opentelemetry import trace
    from prometheus_client.samples import Exemplar

    current = trace.get_current_span
    setters = tuple(bucket.set_exemplar for bucket in buckets)
    wall = time.time

    def observe_with_exemplar(amount: float) -> None:
        observe(amount)
        ctx = current().get_span_context()
        if ctx.trace_flags & 1:  # sampled
            setters[bisect_left(bounds, amount)](Exemplar({"trace_id": f"{ctx.trace_id:032x}"}, amount, wall()))

    return observe_with_exemplar
