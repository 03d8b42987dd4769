"""Business KPIs: declared once, bounded labels, exported names."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

import surefoot
from surefoot.errors import ConfigurationError
from surefoot.metrics import KPI, declared_kpis, metrics_app
from surefoot.testing import fresh_registry, metric_value


def _name(prefix: str = "k") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_seed_kpi_names_are_expressible() -> None:
    registry = CollectorRegistry()
    calls = KPI("calls_detected", description="missed calls detected",
                labels={"outcome": ("missed", "answered")}, registry=registry)
    conversations = KPI("conversations_started", description="conversations started", registry=registry)
    booked = KPI("appointments_booked", description="appointments booked", registry=registry)
    revenue = KPI("attributed_revenue", unit="cents", description="revenue attributed", registry=registry)
    calls.inc(outcome="missed")
    calls.inc(outcome="missed")
    conversations.inc()
    booked.inc(2)
    revenue.inc(1500)
    assert calls.metric_name == "kpi_calls_detected_total"
    assert revenue.metric_name == "kpi_attributed_revenue_cents_total"
    assert metric_value(registry, "kpi_calls_detected_total", {"outcome": "missed"}) == 2
    # every declared value is exported from the first increment on
    assert registry.get_sample_value("kpi_calls_detected_total", {"outcome": "answered"}) == 0
    assert metric_value(registry, "kpi_conversations_started_total") == 1
    assert metric_value(registry, "kpi_appointments_booked_total") == 2
    assert metric_value(registry, "kpi_attributed_revenue_cents_total") == 1500
    assert calls.value(outcome="missed") == 2 and revenue.value() == 1500
    text = generate_latest(registry).decode()
    assert "# TYPE kpi_attributed_revenue_cents_total counter" in text
    assert {k.metric_name for k in declared_kpis()} >= {
        "kpi_calls_detected_total", "kpi_conversations_started_total",
        "kpi_appointments_booked_total", "kpi_attributed_revenue_cents_total",
    }


def test_unit_is_not_repeated_and_default_registry_is_used_at_first_increment() -> None:
    kpi = KPI(_name() + "_cents", unit="cents", description="x")
    assert kpi.metric_name.endswith("_cents_total") and "_cents_cents" not in kpi.metric_name
    with fresh_registry() as registry:
        kpi.inc(3)
        assert metric_value(registry, kpi.metric_name) == 3
    with fresh_registry() as other:
        kpi.inc()
        assert metric_value(other, kpi.metric_name) == 1


@pytest.mark.parametrize("bad", [
    {"outcome": "missed"},  # a string, not a set of values
    {"outcome": ()},
    {"outcome": ("a", "a")},
    {"Outcome": ("a",)},
    {"le": ("a",)},
    {"outcome": ("a", "")},
])
def test_bad_label_declarations_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigurationError):
        KPI(_name(), description="x", labels=bad)


@pytest.mark.parametrize("name,unit", [("kpi_calls", None), ("calls_total", None), ("Calls", None),
                                       ("calls", "US Dollars"), ("", None)])
def test_bad_names_are_refused(name: str, unit: str | None) -> None:
    with pytest.raises(ConfigurationError):
        KPI(name, unit=unit, description="x")


def test_declared_once() -> None:
    name = _name()
    KPI(name, description="one", labels={"a": ("x",)})
    KPI(name, description="one", labels={"a": ("x",)})  # the same declaration again is fine
    with pytest.raises(ConfigurationError, match="already declared"):
        KPI(name, description="one", labels={"a": ("x", "y")})
    # a test's private registry does not clash with the application's declaration
    KPI(name, description="other", registry=CollectorRegistry())


def test_bad_increments_are_refused_with_what_is_allowed() -> None:
    kpi = KPI(_name(), description="x", labels={"outcome": ("missed", "answered")},
              registry=CollectorRegistry())
    with pytest.raises(ValueError, match="allowed: \\['missed', 'answered'\\]"):
        kpi.inc(outcome="dropped")
    with pytest.raises(ValueError, match="takes exactly the labels"):
        kpi.inc()
    with pytest.raises(ValueError, match="takes exactly the labels"):
        kpi.inc(outcome="missed", tenant="t1")
    with pytest.raises(ValueError, match="can only increase"):
        kpi.inc(-1, outcome="missed")
    with pytest.raises(ValueError, match="can only increase"):
        kpi.inc(float("nan"), outcome="missed")


def test_metrics_off_makes_increments_no_ops() -> None:
    registry = CollectorRegistry()
    kpi = KPI(_name(), description="x", registry=registry)
    surefoot.configure(metrics_enabled=False)
    kpi.inc(5)
    assert list(registry.collect()) == []


_ALLOWED = {"outcome": ("missed", "answered"), "channel": ("sms", "voice", "web")}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "outcome": st.one_of(st.sampled_from(_ALLOWED["outcome"]), st.text(max_size=12)),
    "channel": st.one_of(st.sampled_from(_ALLOWED["channel"]), st.text(max_size=12)),
}), max_size=25))
def test_no_label_value_outside_the_declared_set_reaches_the_exposition(attempts: list[dict]) -> None:
    registry = CollectorRegistry()
    kpi = KPI("hypothesis_channel_events", description="events by channel", labels=_ALLOWED,
              registry=registry)
    for labels in attempts:
        try:
            kpi.inc(**labels)
        except ValueError:
            assert any(labels[k] not in _ALLOWED[k] for k in labels)
    for family in registry.collect():
        for sample in family.samples:
            for label, value in sample.labels.items():
                assert value in _ALLOWED[label]


async def test_kpis_appear_on_the_metrics_endpoint() -> None:
    import httpx

    kpi = KPI(_name("served"), description="served", labels={"outcome": ("ok",)})
    with fresh_registry() as registry:
        kpi.inc(outcome="ok")
        app = metrics_app(registries=[registry])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            body = (await client.get("/metrics")).text
    assert f'{kpi.metric_name}{{outcome="ok"}} 1.0' in body
