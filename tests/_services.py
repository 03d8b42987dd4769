"""Where the local services are, and how a test asks for one.

A test that needs a service calls :func:`need` (or uses a fixture from ``conftest.py``). When
the service does not answer, the test is skipped with the reason — or fails, when
``SUREFOOT_REQUIRE_SERVICES=1`` (CI sets it), so a missing service is never a silent pass.
"""

from __future__ import annotations

import functools
import os
import socket

import pytest

SERVICES = {
    "postgres": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
    "nats": ("127.0.0.1", 4222),
    "rabbitmq": ("127.0.0.1", 5672),
}

URLS = {
    "postgres": os.environ.get("SUREFOOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "redis": os.environ.get("SUREFOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "nats": os.environ.get("SUREFOOT_TEST_NATS_URL", "nats://127.0.0.1:4222"),
    "rabbitmq": os.environ.get("SUREFOOT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
}


def required() -> bool:
    return os.environ.get("SUREFOOT_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


@functools.cache
def _reachable(name: str) -> str | None:
    host, port = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as exc:
        return f"{name} is not reachable at {host}:{port} ({exc})"


def need(name: str) -> str:
    """Return the URL of service ``name``, or skip (fail under SUREFOOT_REQUIRE_SERVICES=1)."""
    problem = _reachable(name)
    if problem is not None:
        if required():
            pytest.fail(f"{problem}; SUREFOOT_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(problem)
    return URLS[name]
