"""``Idempotency-Key`` for the service's own POST/PATCH endpoints (IETF httpapi draft).

Per request carrying the header (after scoping the key to the client)::

    claim (scope, key) ──► new          run the request, store its response
                      ├──► completed    replay the stored status, headers and body (+ Idempotent-Replayed: true)
                      ├──► in progress  409 (the original is still running; retry later)
                      └──► mismatch     422 (the key was used with another payload)
    no key where required ──► 400

Decisions:

- The first *result* is stored, success or client error (2xx, 3xx, 4xx), as Stripe does.
  A 5xx (or an exception) releases the key instead, so the client can retry with the same
  key: in a transactional service a 5xx means the work was rolled back, and the retry is
  exactly what the key is for. ``store_server_errors=True`` stores 5xx responses too.
- The payload fingerprint is SHA-256 over method, path, query string and body.
- A key stuck ``in_progress`` past ``lock_timeout`` (its process died) is taken over by the
  next request with the same payload.
- Responses larger than ``max_stored_body`` are sent but not stored (the key is released
  and a warning logged): replaying a truncated body would be worse than running again.
- The request and response bodies of keyed requests are buffered (the fingerprint needs
  the whole request; the replay needs the whole response). A keyed request body over
  ``max_body_bytes`` (1 MiB) is refused with 413 before the key is claimed: from
  ``Content-Length`` before anything is read, or as soon as the streamed body passes the
  limit, so at most the limit is ever held. Requests without a key, and methods or paths
  not configured, pass through untouched.
- A stored response is only returned to the principal that created it. The scope of a key
  is ``scope(asgi_scope)``; the default, :func:`default_client_key`, is a hash of the
  credentials (``Authorization`` / ``X-API-Key``) plus the values of the headers the
  service declares trusted (``trusted_headers``, e.g. an ``X-Tenant-ID`` set by the
  gateway), else the peer address. A client-controlled header such as ``X-Tenant-ID`` is
  never part of the scope unless declared trusted: a client could otherwise pick another
  tenant's scope, or spread one key over many.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog

from .._core.clock import SYSTEM_CLOCK, Clock
from .._core.extras import require
from .._core.problem import Problem, problem_from_exception, problem_from_status
from .._sql import dialect_name
from ..errors import (
    ConfigurationError,
    ConflictError,
    HTTPError,
    UnprocessableError,
    ValidationError,
)
from . import _store

__all__ = ["IdempotencyMiddleware", "default_client_key", "REPLAYED_HEADER"]

log = structlog.get_logger("surefoot.idempotency")

REPLAYED_HEADER = "Idempotent-Replayed"
DEFAULT_REPLAY_HEADERS = (
    "content-type",
    "content-language",
    "location",
    "content-location",
    "etag",
    "last-modified",
    "retry-after",
    "cache-control",
)
MAX_KEY_LENGTH = 255
MAX_SCOPE_LENGTH = 255
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

Scope = dict[str, Any]


def _header(scope: Scope, name: bytes) -> str | None:
    k: bytes
    v: bytes
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def default_client_key(scope: Scope, *, trusted_headers: Iterable[str] = ()) -> str:
    """Who a key belongs to: the principal, as far as the request proves it.

    The parts, joined with ``|``:

    - ``cred:<hash>``: the SHA-256 of ``Authorization`` (else ``X-API-Key``), never stored in
      clear; a different credential is a different principal;
    - ``<header>=<value>`` for each of ``trusted_headers`` present (headers a gateway sets
      after authenticating, e.g. ``X-Tenant-ID``); only when the service declares them.

    With none of these, the peer address (``ip:<address>``, as the ASGI server reports it).
    ``X-Tenant-ID`` and the tenant bound from it in :mod:`surefoot.context` are chosen by the
    client, so they are not used unless listed in ``trusted_headers``. A scope longer than
    255 characters is replaced by its SHA-256.

    Args:
        scope: the ASGI scope of the request.
        trusted_headers: header names (any case) whose values identify the principal.
    """
    parts: list[str] = []
    for name in (b"authorization", b"x-api-key"):
        value = _header(scope, name)
        if value:
            parts.append("cred:" + hashlib.sha256(value.encode("latin-1")).hexdigest()[:40])
            break
    for trusted in trusted_headers:
        value = _header(scope, trusted.lower().encode("latin-1"))
        if value:
            parts.append(f"{trusted.lower()}={value}")
    if not parts:
        client = scope.get("client")
        return "ip:" + (client[0] if client else "unknown")
    joined = "|".join(parts)
    if len(joined) > MAX_SCOPE_LENGTH:
        return "sha256:" + hashlib.sha256(joined.encode("latin-1", "replace")).hexdigest()
    return joined


def _problem(exc: HTTPError | Problem, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    problem = exc if isinstance(exc, Problem) else problem_from_exception(exc, instance=scope.get("path"))
    body = problem.content()
    return problem.status, problem.raw_headers(len(body)), body


class IdempotencyMiddleware:
    """Pure ASGI middleware implementing ``Idempotency-Key`` on a database table.

    Args:
        app: the ASGI app.
        engine: SQLAlchemy ``Engine`` or ``AsyncEngine`` (PostgreSQL or SQLite) holding
            ``idempotency_keys`` (see :func:`create_tables`).
        methods: methods the key applies to (default POST and PATCH).
        paths: path prefixes the key applies to, or ``f(path) -> bool`` (default: all).
        required: refuse requests without a key with 400 (``True``, or ``f(scope) -> bool``).
        header: the request header carrying the key.
        scope: ``f(asgi_scope) -> str`` naming the principal a key belongs to; a stored
            response is only replayed to requests with the same scope (default
            :func:`default_client_key` with ``trusted_headers``).
        client_key: the former name of ``scope``.
        trusted_headers: request headers the service trusts to identify the principal
            (set by an authenticating gateway, e.g. ``["X-Tenant-ID"]``); part of the default
            scope. Not allowed together with a custom ``scope``.
        max_body_bytes: largest keyed request body buffered; larger ones get 413 (default 1 MiB).
        ttl: how long a completed key is replayed (default 24 h).
        lock_timeout: after this, an unfinished original is presumed dead (default 60 s).
        replay_headers: response headers stored and replayed (lower case).
        store_server_errors: store and replay 5xx responses too (default: release the key).
        max_stored_body: largest response body stored for replay, in bytes.
        clock: time source.

    Raises:
        ConfigurationError: an argument is invalid or the database is not PostgreSQL/SQLite.
    """

    def __init__(
        self,
        app: Any,
        *,
        engine: Any,
        methods: Iterable[str] = ("POST", "PATCH"),
        paths: Sequence[str] | Callable[[str], bool] | None = None,
        required: bool | Callable[[Scope], bool] = False,
        header: str = "Idempotency-Key",
        scope: Callable[[Scope], str] | None = None,
        client_key: Callable[[Scope], str] | None = None,
        trusted_headers: Iterable[str] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        ttl: dt.timedelta = dt.timedelta(hours=24),
        lock_timeout: dt.timedelta = dt.timedelta(seconds=60),
        replay_headers: Iterable[str] = DEFAULT_REPLAY_HEADERS,
        store_server_errors: bool = False,
        max_stored_body: int = 1_000_000,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        require("sqlalchemy", "sql")
        from sqlalchemy.ext.asyncio import AsyncEngine

        if dialect_name(engine) not in ("postgresql", "sqlite"):
            raise ConfigurationError(f"Idempotency-Key storage needs PostgreSQL or SQLite, not {dialect_name(engine)}")
        if ttl <= dt.timedelta(0) or lock_timeout <= dt.timedelta(0):
            raise ConfigurationError("ttl and lock_timeout must be positive durations")
        if not isinstance(max_body_bytes, int) or isinstance(max_body_bytes, bool) or max_body_bytes < 0:
            raise ConfigurationError(f"max_body_bytes must be a number of bytes (>= 0), got {max_body_bytes!r}")
        if scope is not None and client_key is not None:
            raise ConfigurationError("give scope= or its former name client_key=, not both")
        custom = scope if scope is not None else client_key
        if isinstance(trusted_headers, str):
            raise ConfigurationError("trusted_headers must be a list of header names, e.g. ['X-Tenant-ID']")
        trusted = tuple(trusted_headers)
        if custom is not None and trusted:
            raise ConfigurationError(
                "trusted_headers only applies to the default scope; read those headers in your scope= function"
            )
        self.app = app
        self.engine = engine
        self.is_async = isinstance(engine, AsyncEngine)
        self.methods = frozenset(m.upper() for m in methods)
        if paths is None:
            self._path_ok: Callable[[str], bool] = lambda path: True
        elif callable(paths):
            self._path_ok = paths
        else:
            prefixes = tuple(paths)
            self._path_ok = lambda path: path.startswith(prefixes)
        self._required: Callable[[Scope], bool] = required if callable(required) else (lambda scope: bool(required))
        self.header = header.lower().encode("latin-1")
        self.header_name = header
        self.trusted_headers = trusted
        self.client_key: Callable[[Scope], str] = custom or (
            lambda asgi_scope: default_client_key(asgi_scope, trusted_headers=trusted)
        )
        self.max_body_bytes = max_body_bytes
        self.ttl = ttl
        self.lock_timeout = lock_timeout
        self.replay_headers = frozenset(h.lower() for h in replay_headers)
        self.store_server_errors = store_server_errors
        self.max_stored_body = max_stored_body
        self.clock = clock

    async def _db(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        if self.is_async:
            async with self.engine.begin() as conn:
                return await conn.run_sync(lambda c: fn(c, **kwargs))
        import anyio.to_thread

        def run() -> Any:
            with self.engine.begin() as conn:
                return fn(conn, **kwargs)

        return await anyio.to_thread.run_sync(run)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.time(), dt.UTC)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in self.methods or not self._path_ok(scope["path"]):
            await self.app(scope, receive, send)
            return
        raw_key = _header(scope, self.header)
        if raw_key is None:
            if self._required(scope):
                await self._send(send, *_problem(ValidationError(
                    f"this endpoint needs an {self.header_name} header (a unique value per operation, e.g. a UUID)",
                    code="IDEMPOTENCY_KEY_REQUIRED", field=self.header_name,
                ), scope))
                return
            await self.app(scope, receive, send)
            return
        key = raw_key.strip()
        if len(key) >= 2 and key[0] == key[-1] == '"':  # the draft's structured-field string form
            key = key[1:-1]
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            await self._send(send, *_problem(ValidationError(
                f"{self.header_name} must be 1 to {MAX_KEY_LENGTH} printable characters",
                code="IDEMPOTENCY_KEY_INVALID", field=self.header_name,
            ), scope))
            return

        declared = _header(scope, b"content-length")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send, scope, int(declared))
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                # Stop reading: what was buffered is dropped, the rest is never received.
                chunks.clear()
                await self._too_large(send, scope, None)
                return
            if chunk:
                chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        del chunks
        digest = hashlib.sha256()
        for part in (scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        client = self._scope_of(scope)
        now = self._now()
        found: _store.Claim = await self._db(
            _store.claim, scope=client, key=key, fingerprint=digest.hexdigest(), method=scope["method"],
            path=scope["path"], now=now, lock_for=self.lock_timeout, ttl=self.ttl,
        )
        if found.outcome != "new":
            log.info(
                "idempotency_key_" + ("replayed" if found.outcome == "completed" else found.outcome),
                path=scope["path"], method=scope["method"],
            )
        if found.outcome == "mismatch":
            await self._send(send, *_problem(UnprocessableError(
                f"this {self.header_name} was already used with a different request; use a new key for a new operation",
                code="IDEMPOTENCY_KEY_REUSED",
            ), scope))
            return
        if found.outcome == "in_progress":
            await self._send(send, *_problem(ConflictError(
                f"a request with this {self.header_name} is still being processed; retry later",
                code="IDEMPOTENCY_KEY_IN_PROGRESS", headers={"Retry-After": "1"},
            ), scope))
            return
        if found.outcome == "completed":
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (found.headers or [])]
            payload = found.body or b""
            headers += [(b"content-length", str(len(payload)).encode()), (REPLAYED_HEADER.lower().encode(), b"true")]
            await self._send(send, found.status or 200, headers, payload)
            return
        await self._run(scope, body, receive, send, found.row_id)

    def _scope_of(self, scope: Scope) -> str:
        """The principal a key belongs to, as stored: a scope over 255 characters becomes its
        SHA-256 (never cut short, which could merge two principals)."""
        value = self.client_key(scope)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(
                f"the Idempotency-Key scope function must return a non-empty string naming the principal, "
                f"got {value!r}"
            )
        if len(value) > MAX_SCOPE_LENGTH:
            return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return value

    async def _run(self, scope: Scope, body: bytes, receive: Any, send: Any, row_id: int | None) -> None:
        replayed = False

        async def replay_receive() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message: dict[str, Any] = await receive()
            return message

        status = 500
        stored_headers: list[list[str]] = []
        out: list[bytes] = []
        size = 0

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                for k, v in message.get("headers") or ():
                    name = k.decode("latin-1").lower()
                    if name in self.replay_headers:
                        stored_headers.append([name, v.decode("latin-1")])
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= self.max_stored_body:
                    out.append(chunk)
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            await self._db(_store.release, row_id=row_id)
            raise
        if (status >= 500 and not self.store_server_errors) or size > self.max_stored_body:
            if size > self.max_stored_body:
                log.warning("idempotency_response_not_stored", path=scope["path"], size=size, limit=self.max_stored_body)
            await self._db(_store.release, row_id=row_id)
            return
        await self._db(
            _store.complete, row_id=row_id, status=status, headers=stored_headers, body=b"".join(out),
            expires_at=self._now() + self.ttl,
        )

    async def _too_large(self, send: Any, scope: Scope, declared: int | None) -> None:
        log.warning(
            "idempotency_body_too_large", path=scope["path"], method=scope["method"],
            size=declared, limit=self.max_body_bytes,
        )
        problem = problem_from_status(
            413,
            f"a request with an {self.header_name} may carry at most {self.max_body_bytes} bytes "
            "(it is buffered to detect a reused key); send a smaller body or omit the key",
            code="PAYLOAD_TOO_LARGE",
            instance=scope.get("path"),
        )
        await self._send(send, *_problem(problem, scope))

    @staticmethod
    async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
