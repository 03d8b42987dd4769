"""``tracing.span`` as people write it: sync blocks that raise, ``asyncio.timeout``, kinds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from surefoot import tracing


def test_sync_span_records_the_exception_and_reraises(exporter: Any) -> None:
    with (
        tracing.span("checkout"),
        pytest.raises(ValueError, match="card declined"),
        tracing.span("payment.charge", amount=1200),
    ):
        raise ValueError("card declined")
    charge, checkout = exporter.get_finished_spans()
    assert charge.status.status_code.name == "ERROR"
    assert charge.attributes["error.type"] == "ValueError"
    (event,) = charge.events
    assert event.name == "exception" and event.attributes["exception.message"] == "card declined"
    # the block around it caught the exception: not an error there
    assert checkout.status.status_code.name == "UNSET" and "error.type" not in checkout.attributes


async def test_a_timeout_is_recorded_on_the_span_around_it(exporter: Any) -> None:
    with pytest.raises(TimeoutError):
        async with tracing.span("provider.call"), asyncio.timeout(0.01), tracing.span("provider.wait"):
            await asyncio.Event().wait()
    wait, call = exporter.get_finished_spans()
    assert call.status.status_code.name == "ERROR" and call.attributes["error.type"] == "TimeoutError"
    # the cancelled block ends its span, which is not marked failed
    assert wait.end_time is not None and wait.status.status_code.name == "UNSET"
    assert wait.parent.span_id == call.context.span_id


def test_a_span_kind_is_used(exporter: Any) -> None:
    from opentelemetry.trace import SpanKind

    with tracing.span("sms.send", kind=SpanKind.PRODUCER):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.PRODUCER


@pytest.mark.parametrize("tracing_on", [True, False], ids=["on", "off"])
def test_a_kind_that_is_not_a_span_kind_is_refused(tracing_on: bool, registry: Any) -> None:
    if tracing_on:
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        tracing.setup_tracing(exporter=InMemorySpanExporter(), set_global=False, registry=registry)
    with pytest.raises(TypeError, match=r"SpanKind.*set_attribute\('kind'"):
        tracing.span("booking.create", kind="vip")


@pytest.mark.parametrize("flag", ["tail_keep", "batch", "set_global"])
def test_a_setup_flag_that_is_not_a_bool_is_refused(flag: str, registry: Any) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from surefoot.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=f"{flag} must be True or False; got 'false'"):
        tracing.setup_tracing(exporter=InMemorySpanExporter(), registry=registry, **{flag: "false"})
    assert tracing.active_tracer() is None
