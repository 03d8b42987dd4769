"""Key scoping and argument checks of the Idempotency-Key middleware (no database traffic)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from surefoot.context import bound


def scope(headers: dict[str, str], client: tuple[str, int] | None = ("192.0.2.1", 1)) -> dict[str, Any]:
    return {"type": "http", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "client": client}


def test_default_scope_is_the_credential_else_the_address() -> None:
    from surefoot.idempotency import default_client_key

    a = default_client_key(scope({"Authorization": "Bearer secret-token"}))
    assert a.startswith("cred:") and "secret-token" not in a
    assert default_client_key(scope({"X-API-Key": "k1"})) != default_client_key(scope({"X-API-Key": "k2"}))
    assert default_client_key(scope({})) == "ip:192.0.2.1"
    assert default_client_key(scope({}, client=None)) == "ip:unknown"


def test_client_controlled_tenant_is_not_part_of_the_default_scope() -> None:
    from surefoot.idempotency import default_client_key

    assert default_client_key(scope({"X-Tenant-ID": "t-9"})) == "ip:192.0.2.1"
    with bound(tenant_id="t-ctx"):  # bound from the same client header by the HTTP middleware
        assert default_client_key(scope({})) == "ip:192.0.2.1"
    cred = default_client_key(scope({"Authorization": "Bearer x"}))
    assert default_client_key(scope({"Authorization": "Bearer x", "X-Tenant-ID": "t-9"})) == cred


def test_trusted_headers_narrow_the_scope() -> None:
    from surefoot.idempotency import default_client_key

    cred = default_client_key(scope({"Authorization": "Bearer x"}))
    both = default_client_key(scope({"Authorization": "Bearer x", "X-Tenant-ID": "t-9"}), trusted_headers=["X-Tenant-ID"])
    assert both == cred + "|x-tenant-id=t-9"
    assert default_client_key(scope({"X-Tenant-ID": "t-9"}), trusted_headers=["x-tenant-id"]) == "x-tenant-id=t-9"
    long = default_client_key(scope({"X-Tenant-ID": "t" * 400}), trusted_headers=["X-Tenant-ID"])
    assert long.startswith("sha256:") and len(long) <= 255


def test_bad_arguments_are_configuration_errors(tmp_path: Any) -> None:
    import sqlalchemy as sa

    from surefoot.errors import ConfigurationError
    from surefoot.idempotency import IdempotencyMiddleware

    engine = sa.create_engine(f"sqlite:///{tmp_path}/k.db")
    with pytest.raises(ConfigurationError):
        IdempotencyMiddleware(None, engine=engine, ttl=dt.timedelta(0))
    with pytest.raises(ConfigurationError, match="max_body_bytes"):
        IdempotencyMiddleware(None, engine=engine, max_body_bytes=-1)
    with pytest.raises(ConfigurationError, match="not both"):
        IdempotencyMiddleware(None, engine=engine, scope=lambda s: "a", client_key=lambda s: "b")
    with pytest.raises(ConfigurationError, match="trusted_headers"):
        IdempotencyMiddleware(None, engine=engine, scope=lambda s: "a", trusted_headers=["X-Tenant-ID"])
    with pytest.raises(ConfigurationError, match="list of header names"):
        IdempotencyMiddleware(None, engine=engine, trusted_headers="X-Tenant-ID")


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


async def test_purging_with_the_wrong_twin_says_which_one_to_use(tmp_path: Any) -> None:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from surefoot.errors import ConfigurationError
    from surefoot.idempotency import apurge_expired_keys, purge_expired_keys

    sync_engine = sa.create_engine(f"sqlite:///{tmp_path}/k.db")
    async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/k.db")
    try:
        with pytest.raises(ConfigurationError, match="apurge_expired_keys"):
            purge_expired_keys(async_engine)
        with pytest.raises(ConfigurationError, match="call purge_expired_keys"):
            await apurge_expired_keys(sync_engine)
        with pytest.raises(ConfigurationError, match="batch_size"):
            purge_expired_keys(sync_engine, batch_size=0)
    finally:
        sync_engine.dispose()
        await async_engine.dispose()
