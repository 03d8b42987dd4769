"""The missed-call service as it is deployed: migrate, web (uvicorn) and worker processes,
talking to a TwilioFake over real HTTP; calls come from the CallSimulator."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from surefoot.testing import CallSimulator, TwilioFake

from tests._services import need

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

from missed_call.stack import Stack  # noqa: E402

SRC = Path(__file__).resolve().parents[3] / "src"

# Fast retries for tests: the seed's values are the defaults in production.
FAST = {
    "SUREFOOT_LOG_FORMAT": "json",
    "SUREFOOT_OUTBOX_BACKOFF_BASE_SECONDS": "0.05",
    "SUREFOOT_OUTBOX_BACKOFF_CAP_SECONDS": "0.5",
    "SUREFOOT_OUTBOX_POLL_INTERVAL_SECONDS": "0.2",
    "SUREFOOT_OUTBOX_STATS_INTERVAL_SECONDS": "0.5",
    "SUREFOOT_OUTBOX_LEASE_SECONDS": "5",
    "PYTHONUNBUFFERED": "1",
}


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


@dataclass
class Service:
    """A running service with its fake and helpers."""

    stack: Stack
    fake: TwilioFake
    engine: sa.Engine
    log_dir: Path

    @property
    def url(self) -> str:
        return self.stack.base_url

    def simulator(self, to: str, **kwargs: Any) -> CallSimulator:
        return CallSimulator(self.url + "/webhooks/twilio/voice", self.fake.auth_token,
                             account_sid=self.fake.account_sid, to=[to],
                             sms_url=self.url + "/webhooks/twilio/sms", **kwargs)

    def add_tenant(self, phone: str, *, compliance: str = "approved", template: str | None = None,
                   tenant_id: str | None = None) -> str:
        tenant_id = tenant_id or "t" + uuid.uuid4().hex[:10]
        body = {"tenant_id": tenant_id, "business_name": "Acme Plumbing", "phone": phone,
                "compliance_status": compliance}
        if template is not None:
            body["first_reply_template"] = template
        with self.stack.admin() as client:
            response = client.post("/admin/tenants", json=body)
        assert response.status_code == 201, response.text
        return tenant_id

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).mappings())

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def messages(self, tenant_id: str) -> list[Any]:
        return self.rows("SELECT * FROM messages WHERE tenant_id = :t ORDER BY created_at", t=tenant_id)

    def status(self) -> dict[str, Any]:
        return httpx.get(self.url + "/status.json", timeout=10).json()

    def output(self, name: str) -> str:
        return self.stack.output(name)


def sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A PostgreSQL database of its own for one service test (web and worker share it)."""
    admin_url = need("postgres")
    name = f"missed_call_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def start_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Service]]:
    """Start fake + migrate + web + worker; everything stopped at teardown."""
    started: list[Service] = []

    def start(database_url: str | None = None, *, web_workers: int = 1, env: dict[str, str] | None = None,
              **fake_options: Any) -> Service:
        log_dir = tmp_path_factory.mktemp("missed-call")
        url = database_url or f"sqlite:///{log_dir / 'service.db'}"
        fake = TwilioFake(seed=fake_options.pop("seed", 1), **fake_options).start()
        path = os.environ.get("PYTHONPATH", "")
        stack = Stack(database_url=url, twilio_url=fake.url, account_sid=fake.account_sid,
                      auth_token=fake.auth_token, web_workers=web_workers, log_dir=log_dir,
                      env={**FAST, "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES), str(SRC), path])),
                           **(env or {})})
        service = Service(stack, fake, sa.create_engine(sync_url(url)), log_dir)
        started.append(service)
        stack.start()
        return service

    yield start
    for service in started:
        service.stack.stop()
        service.fake.stop()
        service.engine.dispose()


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One SQLite service for the behaviour tests of a module (each test uses its own tenant)."""
    log_dir = tmp_path_factory.mktemp("missed-call-shared")
    fake = TwilioFake(seed=2).start()
    path = os.environ.get("PYTHONPATH", "")
    stack = Stack(database_url=f"sqlite:///{log_dir / 'service.db'}", twilio_url=fake.url,
                  account_sid=fake.account_sid, auth_token=fake.auth_token, log_dir=log_dir,
                  env={**FAST, "PYTHONPATH": os.pathsep.join(filter(None, [str(EXAMPLES), str(SRC), path]))})
    service = Service(stack, fake, sa.create_engine(f"sqlite:///{log_dir / 'service.db'}"), log_dir)
    try:
        stack.start()
        yield service
    finally:
        stack.stop()
        fake.stop()
        service.engine.dispose()


_numbers = iter(range(1000, 10_000))


def new_number(prefix: str = "+1415555") -> str:
    """A fresh E.164 number for a test (tenants and callers never collide)."""
    return f"{prefix}{next(_numbers):04d}"
