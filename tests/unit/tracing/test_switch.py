from __future__ import annotations

import os

import pytest

from surefoot.tracing._switch import tracing_requested


@pytest.mark.parametrize("name", ["SUREFOOT_TRACING", "surefoot_tracing_exporter", "SUREFOOT_SENTRY_DSN"])
def test_a_tracing_or_sentry_variable_asks_for_the_setup(monkeypatch, name) -> None:
    for key in list(os.environ):
        if key.upper().startswith(("SUREFOOT_TRACING", "SUREFOOT_SENTRY")):
            monkeypatch.delenv(key)
    assert not tracing_requested()
    monkeypatch.setenv(name, "x")
    assert tracing_requested()
