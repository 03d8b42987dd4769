"""``Idempotency-Key`` (IETF httpapi draft) for the service's own POST/PATCH endpoints.

::

    from surefoot.idempotency import IdempotencyMiddleware, create_tables

    create_tables(engine)
    app.add_middleware(IdempotencyMiddleware, engine=engine, paths=["/bookings"], required=True)

Outcomes: missing key where required → 400; same key, different payload → 422; original
still running → 409; completed → the stored status, headers and body are replayed with
``Idempotent-Replayed: true``; a keyed body over ``max_body_bytes`` (1 MiB) → 413. Keys are
scoped to the principal that sent them (credential hash, plus ``trusted_headers`` the
service declares; never a client-chosen ``X-Tenant-ID``) and expire after 24 h.

Importing this package does not import SQLAlchemy; the names are loaded on first use.
"""

from __future__ import annotations

__all__ = [
    "IdempotencyMiddleware",
    "default_client_key",
    "create_tables",
    "acreate_tables",
    "purge_expired_keys",
    "apurge_expired_keys",
    "idempotency_keys",
    "REPLAYED_HEADER",
]

_LAZY = {
    "IdempotencyMiddleware": "._middleware",
    "default_client_key": "._middleware",
    "REPLAYED_HEADER": "._middleware",
    "create_tables": "._store",
    "acreate_tables": "._store",
    "idempotency_keys": "._store",
    "purge_expired_keys": "._retention",
    "apurge_expired_keys": "._retention",
}


from .._core.extras import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
