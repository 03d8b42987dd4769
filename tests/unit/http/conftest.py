from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from surefoot import context


def _add_ids(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # What the logging configuration does in production: ids come from the context.
    for key, value in context.current().items():
        event_dict.setdefault(key, value)
    return event_dict


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event of the test, with the context ids bound when it was emitted."""
    structlog.reset_defaults()
    with capture_logs(processors=[_add_ids]) as captured:
        yield captured
    structlog.reset_defaults()


def client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, **kwargs), base_url="http://testserver")


def samples(registry: Any, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``{sorted label items: value}`` for every sample called ``name``."""
    out = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def count(registry: Any, **labels: str) -> float:
    """Sum of http_server_request_duration_seconds_count over samples matching ``labels``."""
    total = 0.0
    for key, value in samples(registry, "http_server_request_duration_seconds_count").items():
        items = dict(key)
        if all(items.get(k) == v for k, v in labels.items()):
            total += value
    return total
