"""pytest fixtures for services built with surefoot.

Enable them in your ``conftest.py``::

    pytest_plugins = ["surefoot.testing.pytest_plugin"]

Fixtures:

* ``surefoot_logs`` — the log lines of the test, as dicts (see :func:`capture_logs`);
* ``surefoot_registry`` — a fresh Prometheus registry, also the process default for the test
  (see :func:`fresh_registry`);
* ``fake_clock`` — a :class:`FakeClock`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._clock import FakeClock
from ._logs import CapturedLogs, capture_logs
from ._metrics import fresh_registry


@pytest.fixture
def surefoot_logs() -> Iterator[CapturedLogs]:
    """Every log line written during the test (after redaction)."""
    with capture_logs() as logs:
        yield logs


@pytest.fixture
def surefoot_registry() -> Iterator[Any]:
    """A fresh ``CollectorRegistry``, the process default while the test runs."""
    with fresh_registry() as registry:
        yield registry


@pytest.fixture
def fake_clock() -> FakeClock:
    """A virtual clock (sleeps advance it instantly)."""
    return FakeClock()
