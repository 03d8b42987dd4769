from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._services import need

pytest_plugins = ["tests._no_extras"]

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture(autouse=True)
def _fresh_surefoot_config() -> Iterator[None]:
    """Every test starts from surefoot's start-up state: settings, registry, logging, breakers, ..."""
    from surefoot._core.state import reset_all

    reset_all()
    yield
    reset_all()


@pytest.fixture
def registry():
    """A private Prometheus registry for one test."""
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


@pytest.fixture
def fake_clock():
    from surefoot.testing import FakeClock

    return FakeClock()


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for a subprocess that must import this checkout's surefoot."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@pytest.fixture
def python_exe() -> str:
    return sys.executable


def _pg_admin_url() -> str:
    return need("postgres")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of its own for this test session; dropped at the end."""
    import sqlalchemy as sa

    admin_url = _pg_admin_url()
    name = f"surefoot_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """URL (``postgresql+psycopg://``) of the session's PostgreSQL test database."""
    return pg_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def redis_url() -> str:
    return need("redis")


@pytest.fixture
def nats_url() -> str:
    return need("nats")


@pytest.fixture
def amqp_url() -> str:
    return need("rabbitmq")


@pytest.fixture
def unique() -> str:
    """A short unique string for names of keys, streams, queues and tables."""
    return uuid.uuid4().hex[:10]
