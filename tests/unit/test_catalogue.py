from prometheus_client import CollectorRegistry, generate_latest

from surefoot._core.catalogue import CIRCUIT_BREAKER_CALLS
from surefoot.metrics import CATALOGUE


def test_get_is_idempotent_per_registry():
    a, b = CollectorRegistry(), CollectorRegistry()
    fam_a = CIRCUIT_BREAKER_CALLS.get(a)
    assert CIRCUIT_BREAKER_CALLS.get(a) is fam_a
    fam_b = CIRCUIT_BREAKER_CALLS.get(b)
    assert fam_b is not fam_a
    fam_a.labels(name="x", kind="successful").inc()
    assert b"circuit_breaker_calls_total" in generate_latest(a)
    assert b'name="x"' not in generate_latest(b)


def test_catalogue_names_follow_prometheus_rules():
    for name, spec in CATALOGUE.items():
        assert name == spec.name
        if spec.kind == "counter":
            assert name.endswith("_total"), name
        assert not name.endswith("_ms"), name


def test_every_family_can_be_created_in_one_registry():
    reg = CollectorRegistry()
    for spec in CATALOGUE.values():
        spec.get(reg)
    text = generate_latest(reg).decode()
    assert "http_server_request_duration_seconds" in text
