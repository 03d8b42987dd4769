from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace")


@pytest.fixture
def exporter(registry: Any) -> Iterator[Any]:
    """Tracing on (not global) with an in-memory exporter; every span sampled."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from surefoot import tracing

    mem = InMemorySpanExporter()
    tracing.setup_tracing(exporter=mem, set_global=False, sample_ratio=1.0, registry=registry)
    yield mem
    tracing.reset_tracing()


@pytest.fixture(autouse=True)
def _tracing_off_after() -> Iterator[None]:
    yield
    from surefoot import tracing

    tracing.reset_tracing()
