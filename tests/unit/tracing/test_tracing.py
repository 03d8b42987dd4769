from __future__ import annotations

import pytest

from surefoot.tracing import current_trace_ids, setup_tracing


def test_no_ids_without_an_active_span() -> None:
    assert current_trace_ids() is None


def test_setup_tracing_with_an_exporter_and_ids_in_spans() -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import surefoot

    surefoot.configure(service_name="billing", service_version="2.0")
    exporter = InMemorySpanExporter()
    provider = setup_tracing(exporter=exporter, set_global=False)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        trace_id, span_id = current_trace_ids()
        assert trace_id == format(span.get_span_context().trace_id, "032x") and len(span_id) == 16
    assert current_trace_ids() is None
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "work"
    assert finished.resource.attributes["service.name"] == "billing"
    assert finished.resource.attributes["service.version"] == "2.0"
