"""Key scoping and argument checks of the Idempotency-Key middleware (no database traffic)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from surefoot.context import bound


def scope(headers: dict[str, str], client: tuple[str, int] | None = ("192.0.2.1", 1)) -> dict[str, Any]:
    return {"type": "http", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "client": client}


def test_default_client_key_prefers_credentials_then_tenant_then_address() -> None:
    from surefoot.idempotency import default_client_key

    a = default_client_key(scope({"Authorization": "Bearer secret-token"}))
    assert a.startswith("cred:") and "secret-token" not in a
    assert default_client_key(scope({"X-API-Key": "k1"})) != default_client_key(scope({"X-API-Key": "k2"}))
    assert default_client_key(scope({"X-Tenant-ID": "t-9"})) == "tenant:t-9"
    with bound(tenant_id="t-ctx"):
        assert default_client_key(scope({})) == "tenant:t-ctx"
    assert default_client_key(scope({})) == "ip:192.0.2.1"
    assert default_client_key(scope({}, client=None)) == "ip:unknown"


def test_bad_arguments_are_configuration_errors(tmp_path: Any) -> None:
    import sqlalchemy as sa

    from surefoot.errors import ConfigurationError
    from surefoot.idempotency import IdempotencyMiddleware

    engine = sa.create_engine(f"sqlite:///{tmp_path}/k.db")
    with pytest.raises(ConfigurationError):
        IdempotencyMiddleware(None, engine=engine, ttl=dt.timedelta(0))


async def test_other_scopes_and_methods_pass_through(tmp_path: Any) -> None:
    import sqlalchemy as sa

    from surefoot.idempotency import IdempotencyMiddleware

    calls = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    mw = IdempotencyMiddleware(app, engine=sa.create_engine(f"sqlite:///{tmp_path}/k.db"), required=True)
    await mw({"type": "lifespan"}, None, None)
    await mw({"type": "http", "method": "GET", "path": "/", "headers": []}, None, None)
    assert calls == ["lifespan", "http"]
