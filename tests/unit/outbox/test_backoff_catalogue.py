"""Backoff bounds and catalogue validation (property-based)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surefoot.errors import ConfigurationError
from surefoot.outbox import EventCatalogue, EventSchemaError, FullJitter


@given(
    base=st.floats(0, 100),
    cap=st.floats(0, 10_000),
    attempts=st.integers(-5, 5000),
    seed=st.integers(0, 2**32),
)
def test_full_jitter_stays_within_its_ceiling(base, cap, attempts, seed):
    b = FullJitter(base=base, cap=cap)
    delay = b.delay(attempts, random.Random(seed))
    ceiling = b.ceiling(attempts)
    assert 0.0 <= delay <= ceiling <= cap
    if 1 <= attempts <= 60:
        assert ceiling == min(cap, base * 2.0 ** (attempts - 1))


@given(attempts=st.integers(1, 60))
def test_ceiling_grows_monotonically_until_the_cap(attempts):
    b = FullJitter(base=0.5, cap=300)
    assert b.ceiling(attempts) <= b.ceiling(attempts + 1) <= 300


def test_bad_backoff_is_refused():
    with pytest.raises(ConfigurationError):
        FullJitter(base=-1)


SCHEMA = {
    "type": "object",
    "required": ["sid", "to"],
    "properties": {
        "sid": {"type": "string", "minLength": 1},
        "to": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.dictionaries(st.sampled_from(["sid", "to", "x"]), st.one_of(
    st.text(max_size=3), st.integers(), st.lists(st.one_of(st.text(max_size=2), st.integers()), max_size=3)
)))
def test_catalogue_accepts_exactly_the_conforming_payloads(payload):
    import jsonschema

    cat = EventCatalogue()
    cat.register("SmsQueued", SCHEMA)
    valid = jsonschema.Draft202012Validator(SCHEMA).is_valid(payload)
    if valid:
        cat.validate("SmsQueued", payload)
    else:
        with pytest.raises(EventSchemaError) as info:
            cat.validate("SmsQueued", payload)
        assert info.value.errors and all("msg" in e and "loc" in e for e in info.value.errors)
        assert "payload" in str(info.value)


def test_catalogue_names_nested_field_path_and_versions():
    cat = EventCatalogue()
    cat.register("SmsQueued", SCHEMA)
    cat.register("SmsQueued", {"type": "object"}, version=2)
    with pytest.raises(EventSchemaError, match=r"payload\.to\[1\]: 3 is not of type 'string'"):
        cat.validate("SmsQueued", {"sid": "x", "to": ["a", 3]})
    cat.validate("SmsQueued", {"anything": 1}, version=2)
    cat.validate("Unregistered", {"anything": 1})
    assert cat.versions("SmsQueued") == [1, 2]
    with pytest.raises(ConfigurationError, match="bump the version"):
        cat.register("SmsQueued", {"type": "object", "required": ["y"]})
    with pytest.raises(ConfigurationError, match="invalid"):
        cat.register("Bad", {"type": "nonsense"})
