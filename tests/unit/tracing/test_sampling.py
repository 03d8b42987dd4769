"""Head sampling (parent-based ratio) and the in-process tail keep."""

from __future__ import annotations

import random
from typing import Any

import pytest

from surefoot import tracing
from surefoot.errors import ConfigurationError


class SeededIds:
    """An OpenTelemetry IdGenerator drawing from a seeded PRNG: the same trace ids every run."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True


def _setup(registry: Any, **kwargs: Any) -> Any:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mem = InMemorySpanExporter()
    kwargs.setdefault("id_generator", SeededIds(20261204))
    tracing.setup_tracing(exporter=mem, set_global=False, registry=registry, **kwargs)
    return mem


def _request(fail_at: int | None = None, status: int = 200) -> None:
    """A local trace three levels deep; optionally an error at the deepest level."""
    try:
        with (
            tracing.span("GET /calls", **{"http.response.status_code": status}),
            tracing.span("scheduling.book"),
            tracing.span("provider.call"),
        ):
            if fail_at is not None:
                raise RuntimeError("deep")
    except RuntimeError:
        pass


def test_default_ratio_is_ten_percent_in_production_and_all_in_development(monkeypatch: Any) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    assert "0.1" in tracing.head_sampler(env="production").get_description()
    assert "1.0" in tracing.head_sampler(env="development").get_description()
    assert tracing.head_sampler(env="production").get_description().startswith("ParentBased")


def test_ratio_from_settings_then_standard_variables(monkeypatch: Any) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    assert "0.25" in tracing.head_sampler(env="production").get_description()
    monkeypatch.setenv("SUREFOOT_TRACING_SAMPLE_RATIO", "0.5")
    assert "0.5" in tracing.head_sampler(env="production").get_description()
    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        tracing.head_sampler(1.5)
    monkeypatch.setenv("SUREFOOT_TRACING_SAMPLE_RATIO", "2")
    with pytest.raises(ConfigurationError, match="SUREFOOT_TRACING_SAMPLE_RATIO"):
        tracing.head_sampler()


def test_standard_sampler_variables_are_checked(monkeypatch: Any) -> None:
    monkeypatch.delenv("SUREFOOT_TRACING_SAMPLE_RATIO", raising=False)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    for bad in ("3", "-0.1", "ten percent"):
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", bad)
        with pytest.raises(ConfigurationError, match="OTEL_TRACES_SAMPLER_ARG"):
            tracing.head_sampler()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "sometimes")
    with pytest.raises(ConfigurationError, match="OTEL_TRACES_SAMPLER='sometimes'"):
        tracing.head_sampler()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")
    assert tracing.head_sampler(None, "production").get_description().startswith("ParentBased{root:AlwaysOff")


def test_a_bad_argument_ratio_names_the_argument() -> None:
    with pytest.raises(ConfigurationError, match="sample_ratio"):
        tracing.setup_tracing(sample_ratio=-1, set_global=False)


def test_healthy_traces_are_kept_at_about_ten_percent(registry: Any) -> None:
    mem = _setup(registry, sample_ratio=0.1, tail_keep=True)
    n = 4000
    for _ in range(n):
        _request()
    roots = [s for s in mem.get_finished_spans() if s.parent is None]
    assert 0.085 * n <= len(roots) <= 0.115 * n, len(roots)
    # whole traces or nothing: every kept trace has its three spans
    assert len(mem.get_finished_spans()) == 3 * len(roots)
    assert not any(s.attributes.get("surefoot.tail_kept") for s in mem.get_finished_spans())


def test_an_error_deep_in_the_chain_keeps_the_whole_trace(registry: Any) -> None:
    mem = _setup(registry, sample_ratio=0.1, tail_keep=True)
    n = 300
    for _ in range(n):
        _request(fail_at=3)
    spans = mem.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == n and len(spans) == 3 * n
    by_trace: dict[int, list[Any]] = {}
    for s in spans:
        by_trace.setdefault(s.context.trace_id, []).append(s)
    for chain in by_trace.values():
        assert sorted(s.name for s in chain) == ["GET /calls", "provider.call", "scheduling.book"]
        root = next(s for s in chain if s.parent is None)
        book = next(s for s in chain if s.name == "scheduling.book")
        call = next(s for s in chain if s.name == "provider.call")
        assert book.parent.span_id == root.context.span_id and call.parent.span_id == book.context.span_id
    # about 90 % were kept by the tail rule, not the head sampler
    kept_by_tail = sum(1 for s in roots if s.attributes.get("surefoot.tail_kept"))
    assert 0.8 * n <= kept_by_tail <= 0.97 * n


def test_server_errors_are_kept_and_client_errors_are_not(registry: Any) -> None:
    mem = _setup(registry, sample_ratio=0.0, tail_keep=True)
    _request(status=503)
    _request(status=404)
    _request()
    roots = [s for s in mem.get_finished_spans() if s.parent is None]
    assert [r.attributes["http.response.status_code"] for r in roots] == [503]


def test_without_tail_keep_errors_follow_the_head_sampler(registry: Any) -> None:
    mem = _setup(registry, sample_ratio=0.0, tail_keep=False)
    _request(fail_at=3)
    assert mem.get_finished_spans() == ()


def test_unsampled_traces_are_propagated_as_not_sampled(registry: Any) -> None:
    _setup(registry, sample_ratio=0.0, tail_keep=True)
    with tracing.span("x") as s:
        assert s.is_recording()
        headers = tracing.inject_headers({})
    assert headers["traceparent"].endswith("-00") or int(headers["traceparent"][-2:], 16) & 1 == 0


def _dropped(registry: Any, reason: str) -> float:
    value = registry.get_sample_value("surefoot_tracing_tail_dropped_spans_total", {"reason": reason})
    return value or 0.0


def test_tail_keep_memory_is_bounded_and_drops_are_counted(registry: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from surefoot.testing import FakeClock

    clock = FakeClock()
    mem = InMemorySpanExporter()
    tail = tracing.TailKeepProcessor(
        SimpleSpanProcessor(mem), max_traces=2, max_spans=3, max_seconds=10, registry=registry,
        clock=clock.monotonic,
    )
    provider = TracerProvider(sampler=tracing.TailKeepSampler(ALWAYS_OFF))
    provider.add_span_processor(tail)
    tracer = provider.get_tracer("t")
    roots = [tracer.start_span(f"root{i}") for i in range(3)]
    for i, root in enumerate(roots):
        from opentelemetry import trace

        with trace.use_span(root, end_on_exit=False):
            for _ in range(4 if i == 0 else 1):
                tracer.start_span("child").end()
    assert tail.held_traces == 2
    assert _dropped(registry, "max_traces") == 1  # third trace's child
    assert _dropped(registry, "max_spans") == 1  # fourth child of the first trace
    clock.advance(11)
    fresh = tracer.start_span("fresh-root")
    with trace.use_span(fresh, end_on_exit=False):
        tracer.start_span("child").end()  # a new trace: the old ones are let go
    assert tail.held_traces == 1
    assert _dropped(registry, "max_seconds") == 4  # 3 held of trace 0, 1 of trace 1
    roots[0].set_status(trace.Status(trace.StatusCode.ERROR))
    roots[0].end()  # its children were let go: only the root itself is left to keep
    assert [s.name for s in mem.get_finished_spans()] == ["root0"]


def test_shutdown_flushes_failed_traces_still_waiting_for_their_root(registry: Any) -> None:
    mem = _setup(registry, sample_ratio=0.0, tail_keep=True)
    from surefoot.tracing._api import STATE

    tracer = STATE.tracer
    root = tracer.start_span("long-running")
    from opentelemetry import trace

    with trace.use_span(root, end_on_exit=False), pytest.raises(KeyError), tracing.span("child"):
        raise KeyError("x")
    assert mem.get_finished_spans() == ()
    tracing.shutdown_tracing()
    assert [s.name for s in mem.get_finished_spans()] == ["child"]


@pytest.mark.parametrize("bounds", [{"max_traces": 0}, {"max_spans": -1}, {"max_seconds": 0}, {"max_traces": 1.5}])
def test_tail_keep_bounds_must_be_positive(bounds: dict[str, float], registry: Any) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    with pytest.raises(ConfigurationError, match=next(iter(bounds))):
        tracing.TailKeepProcessor(SimpleSpanProcessor(InMemorySpanExporter()), registry=registry, **bounds)
