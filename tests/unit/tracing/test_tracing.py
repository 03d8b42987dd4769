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


def test_exporter_follows_the_standard_protocol_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from surefoot import tracing
    from surefoot.errors import ConfigurationError

    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    assert ".proto.http." in type(tracing.default_exporter()).__module__
    assert tracing.default_exporter("none") is None
    assert type(tracing.default_exporter("console")).__name__ == "ConsoleSpanExporter"
    with pytest.raises(ConfigurationError, match="otlp, console or none"):
        tracing.default_exporter("jaeger")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json'"):
        tracing.default_exporter()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert ".proto.http." in type(tracing.default_exporter()).__module__  # the traces variable wins
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_PROTOCOL='thrift'"):
        tracing.default_exporter()


def test_spans_carry_the_deployment_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from surefoot import tracing

    monkeypatch.setenv("SUREFOOT_ENV", "production")
    monkeypatch.setenv("SUREFOOT_SERVICE_NAME", "missed-call")
    exporter = InMemorySpanExporter()
    tracing.setup_tracing(exporter=exporter, set_global=False, sample_ratio=1.0)
    try:
        with tracing.span("work"):
            pass
    finally:
        tracing.shutdown_tracing()
    (finished,) = exporter.get_finished_spans()
    assert finished.resource.attributes["deployment.environment.name"] == "production"
    assert finished.resource.attributes["service.name"] == "missed-call"
