"""In-process tail keep: record every local trace, export the unsampled ones that failed.

OpenTelemetry's Python SDK samples at the head only. With :class:`TailKeepSampler` every
span is recorded (a trace the head sampler dropped is ``RECORD_ONLY``: recorded here, still
propagated as not sampled), and :class:`TailKeepProcessor` holds the spans of each unsampled
local trace until its local root ends (the span whose parent is absent or in another
process). The trace is exported when any of its spans has status ``ERROR`` or
``http.response.status_code >= 500``, and forgotten otherwise. Head-sampled spans pass
straight through.

Memory and time are bounded: at most ``max_traces`` traces and ``max_spans`` spans per
trace are held, and a trace whose root has not ended after ``max_seconds`` is let go. Every
span dropped for a bound is counted in ``surefoot_tracing_tail_dropped_spans_total{reason}``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from .._core.catalogue import MetricSpec
from ..errors import ConfigurationError

__all__ = ["TailKeepSampler", "TailKeepProcessor", "TAIL_DROPPED"]

TAIL_DROPPED = MetricSpec(
    "surefoot_tracing_tail_dropped_spans_total",
    "counter",
    "Spans the in-process tail keep let go for a bound (reason: max_traces, max_spans, max_seconds).",
    ("reason",),
)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_KEPT_DECISIONS = 4096


class TailKeepSampler(Sampler):
    """Wrap a head sampler so that what it drops is still recorded (``RECORD_ONLY``).

    Args:
        head: the head sampler (e.g. ``ParentBased(TraceIdRatioBased(0.1))``).
    """

    def __init__(self, head: Sampler) -> None:
        self.head = head

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.head.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.DROP:
            return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"TailKeep{{{self.head.get_description()}}}"


def failed(span: ReadableSpan) -> bool:
    """Whether ``span`` errored or answered with an HTTP status >= 500."""
    if span.status.status_code is StatusCode.ERROR:
        return True
    attributes = span.attributes
    if attributes:
        status = attributes.get("http.response.status_code")
        if isinstance(status, int) and status >= 500:
            return True
    return False


def as_sampled(span: ReadableSpan) -> ReadableSpan:
    """A copy of ``span`` flagged sampled (exporting processors skip unsampled spans)."""
    ctx = span.context
    attributes = dict(span.attributes or {})
    attributes["surefoot.tail_kept"] = True
    return ReadableSpan(
        name=span.name,
        context=SpanContext(ctx.trace_id, ctx.span_id, ctx.is_remote, _SAMPLED, ctx.trace_state),
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class _Held:
    __slots__ = ("since", "spans", "keep")

    def __init__(self, since: float) -> None:
        self.since = since
        self.spans: list[ReadableSpan] = []
        self.keep = False


class TailKeepProcessor(SpanProcessor):
    """Hold unsampled local traces until their local root ends; export the failed ones.

    Args:
        inner: the exporting processor (batch or simple) that receives what is kept.
        max_traces: traces held at once.
        max_spans: spans held per trace.
        max_seconds: how long a trace may wait for its local root.
        registry: Prometheus registry of the drop counter (default: the process default).
        clock: monotonic seconds (inject a fake clock in tests).
        on_start: also called with each span as it starts (surefoot puts the context ids
            on it), saving a second processor.
    """

    def __init__(
        self,
        inner: SpanProcessor,
        *,
        max_traces: int = 2048,
        max_spans: int = 512,
        max_seconds: float = 60.0,
        registry: Any = None,
        clock: Callable[[], float] = time.monotonic,
        on_start: Callable[[Any], None] | None = None,
    ) -> None:
        for what, value, low in (("max_traces", max_traces, 1), ("max_spans", max_spans, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigurationError(f"{what} must be a whole number >= {low}; got {value!r}")
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not max_seconds > 0:
            raise ConfigurationError(f"max_seconds must be a positive number of seconds; got {max_seconds!r}")
        self.inner = inner
        # The SDK's exporting processors do nothing when a span starts: skip the call then.
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        self._inner_start = None if type(inner) in (BatchSpanProcessor, SimpleSpanProcessor) else inner.on_start
        self._hook = on_start
        self.max_traces = max_traces
        self.max_spans = max_spans
        self.max_seconds = max_seconds
        self._clock = clock
        self._held: dict[int, _Held] = {}
        self._kept: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()
        family = TAIL_DROPPED.get(registry)
        self._dropped = {reason: family.labels(reason) for reason in ("max_traces", "max_spans", "max_seconds")}

    @property
    def held_traces(self) -> int:
        """How many traces are waiting for their local root."""
        return len(self._held)

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        hook = self._hook
        if hook is not None:
            hook(span)
        inner_start = self._inner_start
        if inner_start is not None:
            inner_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None:
            return
        if ctx.trace_flags.sampled:
            self.inner.on_end(span)
            return
        parent = span.parent
        root = parent is None or parent.is_remote
        trace_id = ctx.trace_id
        with self._lock:
            held: _Held | None = None
            if trace_id in self._kept:
                late_keep = True
            else:
                late_keep = False
                held = self._held.get(trace_id)
                if held is None:
                    if root:
                        # A trace that is its root alone is decided at once, never held:
                        # it takes no place among max_traces.
                        held = _Held(0.0)
                    else:
                        now = self._clock()
                        self._expire(now)
                        if len(self._held) >= self.max_traces:
                            self._dropped["max_traces"].inc()
                            return
                        held = self._held[trace_id] = _Held(now)
                if len(held.spans) < self.max_spans or root:
                    # The local root ends the wait and is never held: kept past the bound,
                    # so a trace cut short still has the span that names it.
                    held.spans.append(span)
                else:
                    self._dropped["max_spans"].inc()
                if not held.keep and failed(span):
                    held.keep = True
                if not root:
                    return
                self._held.pop(trace_id, None)
                if not held.keep:
                    return
                self._kept[trace_id] = None
                if len(self._kept) > _KEPT_DECISIONS:
                    self._kept.popitem(last=False)
        if late_keep or held is None:
            self.inner.on_end(as_sampled(span))
            return
        for held_span in held.spans:
            self.inner.on_end(as_sampled(held_span))

    def _expire(self, now: float) -> None:
        held = self._held
        limit = now - self.max_seconds
        while held:
            trace_id = next(iter(held))
            oldest = held[trace_id]
            if oldest.since > limit:
                break
            del held[trace_id]
            if oldest.spans:
                self._dropped["max_seconds"].inc(len(oldest.spans))

    def _flush_held(self) -> None:
        # On shutdown: what already failed is exported even though its root never ended.
        with self._lock:
            pending = [held for held in self._held.values() if held.keep]
            self._held.clear()
        for held in pending:
            for span in held.spans:
                self.inner.on_end(as_sampled(span))

    def shutdown(self) -> None:
        self._flush_held()
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))
