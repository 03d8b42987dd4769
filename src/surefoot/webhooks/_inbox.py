"""The idempotent webhook inbox: verify, store once, handle in the same transaction.

One delivery goes through these steps::

    raw body ─► verifier (401 + reason on failure)
             ─► BEGIN
                INSERT INTO webhook_events (..., status = 'processed') ... ON CONFLICT
                (provider, dedupe_key) DO NOTHING* RETURNING id
                                      ── no row: duplicate → 2xx, handler not run
             ─► handler(delivery)     ── business rows + outbox events on delivery.conn
             ─► COMMIT                ── the row commits with the handler's writes, or not at all

    * a row left ``failed`` by an earlier attempt is claimed again.

Decisions:

- **Handler raises** → the whole transaction rolls back (business rows, outbox events and
  the inbox row), the delivery is then recorded as ``failed`` with the error in a short
  transaction of its own, and the provider gets a 500 problem body so that it retries; the
  retry claims the ``failed`` row and runs the handler again.
- **Handler signals** :class:`Ignore` (unknown tenant, unknown number) → its writes are
  rolled back, the row is kept with status ``ignored`` (so duplicates are still answered
  without running the handler and the delivery stays visible for 90 days), a WARN line
  names the provider and event id, and the provider gets 200.
- **Duplicates** get the status code the first delivery was answered with (200 for an
  ignored one) and an empty body; ``webhook_dedupe_hits_total{provider}`` counts them.
- Stored headers are redacted (signatures, credentials, cookies).
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from .._core.catalogue import (
    WEBHOOK_DEDUPE_HITS,
    WEBHOOK_HANDLER_DURATION,
    WEBHOOK_SIGNATURE_FAILURES,
)
from .._core.clock import SYSTEM_CLOCK, Clock
from .._core.extras import require
from .._sql import dialect_name
from ..errors import ConfigurationError, HTTPError
from ..tracing._hooks import webhook_delivery, webhook_outcome, webhook_span
from . import _store
from ._verify import PayloadTooLargeError, SignatureError, VerifiedDelivery, Verifier, _fit_key

__all__ = ["WebhookInbox", "Delivery", "Ignore", "redact_headers", "REDACTED_HEADERS", "VERIFY_IN_THREAD_BYTES"]

log = structlog.get_logger("surefoot.webhooks")

REDACTED_HEADERS = frozenset(
    {
        "x-twilio-signature",
        "stripe-signature",
        "webhook-signature",
        "svix-signature",
        "x-hub-signature",
        "x-hub-signature-256",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
    }
)
_MASK = "[redacted]"

# Bodies larger than this are joined, verified and decoded in a worker thread, so that an
# unauthenticated request never holds the event loop for more than a few milliseconds.
VERIFY_IN_THREAD_BYTES = 64 * 1024
# The width of webhook_events.provider.
MAX_PROVIDER_LENGTH = 64


def redact_headers(headers: Mapping[str, str], extra: frozenset[str] = frozenset()) -> dict[str, str]:
    """Return ``headers`` (names lower-cased) with signatures and credentials masked."""
    hidden = REDACTED_HEADERS | extra
    return {k.lower(): (_MASK if k.lower() in hidden else v) for k, v in headers.items()}


class Ignore(Exception):
    """Raise (or return) from a handler to acknowledge a delivery without acting on it.

    Use it when the delivery cannot be mapped (unknown tenant, unknown phone number): the
    provider gets 200 so it stops retrying, nothing the handler wrote is kept, the inbox
    row is stored as ``ignored`` with ``reason``, and a WARN line is logged.

    Args:
        reason: why the delivery is ignored (logged and stored, keep it free of PII).
        response: the response to send instead of an empty 200 (e.g. empty TwiML).
    """

    def __init__(self, reason: str, *, response: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


@dataclass
class Delivery:
    """What a handler receives: the verified delivery and the open transaction.

    Attributes:
        verified: the :class:`VerifiedDelivery` (raw body, headers, dedupe key).
        conn: the transaction's connection (``Connection`` on a sync engine,
            ``AsyncConnection`` on an async one); write business rows and outbox events
            through it so they commit, or roll back, with the inbox row.
        inbox_id: the ``webhook_events.id`` of this delivery.
        request: the Starlette request; its body is cached, so ``await request.form()``
            and ``await request.json()`` work in async handlers.
    """

    verified: VerifiedDelivery
    conn: Any
    inbox_id: int
    request: Any = None

    @property
    def provider(self) -> str:
        return self.verified.provider

    @property
    def dedupe_key(self) -> str:
        return self.verified.dedupe_key

    @property
    def body(self) -> bytes:
        return self.verified.body

    @property
    def headers(self) -> Mapping[str, str]:
        return self.verified.headers

    @property
    def payload(self) -> Any:
        """The parsed body (JSON, form dict or text); see :attr:`VerifiedDelivery.payload`."""
        return self.verified.payload

    def json(self) -> Any:
        """The body parsed as JSON."""
        return self.verified.json()

    def form(self) -> dict[str, str]:
        """The body parsed as a form (last value per name)."""
        return self.verified.form()

    def parse(self, model: Any) -> Any:
        """Validate the JSON body with a pydantic model class and return the instance."""
        return model.model_validate_json(self.verified.body)

    def add_event(self, event_name: str, payload: Mapping[str, Any], **kwargs: Any) -> Any:
        """Write an outbox event in this delivery's transaction (see ``surefoot.outbox.add``).

        ``causation_id`` defaults to ``"<provider>:<dedupe key>"`` so consumers can trace
        the event back to this delivery. On an async engine, await the result.
        """
        from .. import outbox

        kwargs.setdefault("causation_id", causation_id(self.provider, self.dedupe_key))
        return outbox.add(self.conn, event_name, payload, **kwargs)


Handler = Callable[[Delivery], Any]


def causation_id(provider: str, dedupe_key: str) -> str:
    """The causation id of events caused by a delivery: ``<provider>:<dedupe key>`` (hashed past 128 chars)."""
    value = f"{provider}:{dedupe_key}"
    if len(value) <= 128:
        return value
    import hashlib

    return f"{provider[:50]}:sha256:{hashlib.sha256(dedupe_key.encode()).hexdigest()}"


def _verify_joined(
    verifier: Verifier, chunks: list[bytes], headers: Any, url: str, client: str | None
) -> tuple[bytes, VerifiedDelivery, str]:
    """Join the body, verify it and decode the text to store (in a worker thread for large bodies)."""
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    verified = verifier.verify(body, headers, url=url, client=client)
    _check_provider(verified)
    key = verified.dedupe_key
    if not isinstance(key, str) or not key:
        # An empty key would make every later delivery a "duplicate" of the first one.
        raise ConfigurationError(
            f"the {verified.provider!r} verifier returned no dedupe key ({key!r}); it must name the "
            "delivery from signed content (see body_hash_key)"
        )
    verified.dedupe_key = _fit_key(key)
    return body, verified, body.decode("utf-8", "replace")


def _check_provider(source: Any) -> None:
    """A verifier's (or a verified delivery's) provider must fit the metric label and the column."""
    provider = getattr(source, "provider", "custom")
    if not isinstance(provider, str) or not 1 <= len(provider) <= MAX_PROVIDER_LENGTH:
        raise ConfigurationError(
            f"a verifier's provider must be a name of 1 to {MAX_PROVIDER_LENGTH} characters "
            f"(it is a metric label and a column of webhook_events), got {provider!r}"
        )


def _replaying(request: Any, body: bytes) -> Any:
    """A request that replays ``body``, so the handler can still call ``request.body()``,
    ``.form()`` or ``.json()``."""
    from starlette.requests import Request

    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return Request(request.scope, replay)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class WebhookInbox:
    """Declares signed, idempotent webhook endpoints on a FastAPI/Starlette app or router.

    Example::

        inbox = WebhookInbox(engine)

        @inbox.endpoint(app, "/webhooks/twilio/voice", verifier=TwilioVerifier(token, base_url=URL))
        async def missed_call(delivery: Delivery) -> Response | None:
            tenant = await find_tenant(delivery.conn, delivery.form()["To"])
            if tenant is None:
                raise Ignore("unknown number")
            await delivery.add_event("call.missed", {...}, tenant_id=tenant)

    On a sync ``Engine`` the handler must be a plain function (it runs in a worker thread
    with a ``Connection``); on an ``AsyncEngine`` it must be a coroutine function (it gets
    an ``AsyncConnection``).

    Args:
        engine: SQLAlchemy ``Engine`` or ``AsyncEngine`` (PostgreSQL or SQLite) holding
            ``webhook_events`` (create it with :func:`create_tables` or your migrations).
        registry: Prometheus registry for the webhook metrics (process default when ``None``).
        clock: time source for ``received_at`` / ``processed_at`` and durations.
        redact: extra header names to mask in stored rows.
        max_body_bytes: a ceiling for every endpoint: bodies larger than the smaller of this
            and the verifier's own ``max_body_bytes`` (its provider default) are refused
            with 413 before verification, from ``Content-Length`` or while streaming
            (default 25 MiB).
        verify_threads: how many large bodies (over 64 KiB) are verified in worker threads
            at once; more wait their turn without blocking the event loop (default 4).

    Raises:
        ConfigurationError: the engine's database is neither PostgreSQL nor SQLite.
    """

    def __init__(
        self,
        engine: Any,
        *,
        registry: Any = None,
        clock: Clock = SYSTEM_CLOCK,
        redact: frozenset[str] | set[str] = frozenset(),
        max_body_bytes: int = 25 * 1024 * 1024,
        verify_threads: int = 4,
    ) -> None:
        require("sqlalchemy", "sql")
        if max_body_bytes < 1:
            raise ConfigurationError("max_body_bytes must be positive")
        if verify_threads < 1:
            raise ConfigurationError("verify_threads must be positive")
        self.max_body_bytes = max_body_bytes
        self.verify_threads = verify_threads
        self._limiter: Any = None
        from sqlalchemy.ext.asyncio import AsyncEngine

        self.engine = engine
        self.is_async = isinstance(engine, AsyncEngine)
        dialect = dialect_name(engine)
        if dialect not in ("postgresql", "sqlite"):
            raise ConfigurationError(f"the webhook inbox needs PostgreSQL or SQLite, not {dialect}")
        self.clock = clock
        self.redact = frozenset(h.lower() for h in redact)
        self._duration = WEBHOOK_HANDLER_DURATION.get(registry)
        self._dedupe_hits = WEBHOOK_DEDUPE_HITS.get(registry)
        self._signature_failures = WEBHOOK_SIGNATURE_FAILURES.get(registry)

    # -- declaration ---------------------------------------------------------------------

    def endpoint(
        self,
        router: Any,
        path: str,
        *,
        verifier: Verifier,
        methods: tuple[str, ...] = ("POST",),
        name: str | None = None,
        include_in_schema: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Register ``path`` on ``router`` (FastAPI app/APIRouter or Starlette app/Router).

        Args:
            router: where the route is added.
            path: the route path, e.g. ``"/webhooks/stripe"``.
            verifier: checks signatures and names the dedupe key.
            methods: HTTP methods (Twilio can be configured to use GET).
            name: route name (default: the handler's name).
            include_in_schema: list the route in the OpenAPI schema (FastAPI only).

        Returns:
            A decorator that registers the handler and returns it unchanged.

        Raises:
            ConfigurationError: the handler's kind does not match the engine (sync/async).
        """

        _check_provider(verifier)

        def decorate(handler: Handler) -> Handler:
            self._check_handler(handler)

            provider = getattr(verifier, "provider", "custom")

            async def route(request: Any) -> Any:
                # Checked once above, not per delivery as handle() must.
                with webhook_span(provider, path, request):
                    return await self._handle(request, verifier=verifier, handler=handler, endpoint=path)

            route_name: str = name if name else getattr(handler, "__name__", "webhook")
            route.__name__ = route_name
            route.__doc__ = handler.__doc__
            if hasattr(router, "add_api_route"):
                from starlette.requests import Request

                route.__annotations__ = {"request": Request}
                router.add_api_route(
                    path, route, methods=list(methods), name=route.__name__, include_in_schema=include_in_schema
                )
            else:
                router.add_route(path, route, methods=list(methods), name=route.__name__)
            return handler

        return decorate

    # -- one delivery --------------------------------------------------------------------

    async def handle(self, request: Any, *, verifier: Verifier, handler: Handler, endpoint: str) -> Any:
        """Process one request end to end and return the response to send.

        Usable directly from a route of your own: ``return await inbox.handle(request, ...)``.
        With tracing on, it runs in a ``webhook.<provider>.<endpoint>`` span.

        Raises:
            ConfigurationError: the handler's kind does not match the engine (``async def``
                with an ``AsyncEngine``, a plain ``def`` with an ``Engine``), or the
                verifier's ``provider`` is not a name of 1 to 64 characters.
        """
        _check_provider(verifier)
        self._check_handler(handler)
        with webhook_span(getattr(verifier, "provider", "custom"), endpoint, request):
            return await self._handle(request, verifier=verifier, handler=handler, endpoint=endpoint)

    async def _handle(self, request: Any, *, verifier: Verifier, handler: Handler, endpoint: str) -> Any:
        from starlette.responses import Response

        started = self.clock.monotonic()
        provider = getattr(verifier, "provider", "custom")
        limit = self.body_limit(verifier)
        client = request.client.host if request.client else None
        try:
            chunks, size = await self._read(request, limit)
            if size > VERIFY_IN_THREAD_BYTES:
                # Joining, hashing and (for Twilio) parsing a large body happen off the loop.
                import anyio.to_thread

                if self._limiter is None:
                    self._limiter = anyio.CapacityLimiter(self.verify_threads)
                headers, url = request.headers, str(request.url)
                body, verified, payload_text = await anyio.to_thread.run_sync(
                    lambda: _verify_joined(verifier, chunks, headers, url, client), limiter=self._limiter
                )
            else:
                body, verified, payload_text = _verify_joined(verifier, chunks, request.headers, str(request.url), client)
        except SignatureError as exc:
            self._signature_failures.labels(provider, exc.reason).inc()
            webhook_outcome("signature_failure")
            log.warning(
                "webhook_signature_rejected",
                provider=provider,
                reason=exc.reason,
                endpoint=endpoint,
                headers=redact_headers(request.headers, self.redact),
            )
            self._observe(provider, endpoint, "rejected", started)
            return self._problem(exc, request)
        except HTTPError as exc:
            log.warning("webhook_rejected", provider=provider, endpoint=endpoint, error_code=exc.code, error_message=exc.detail)
            self._observe(provider, endpoint, "rejected", started)
            return self._problem(exc, request)
        request = _replaying(request, body)

        webhook_delivery(verified.provider, verified.dedupe_key)
        received_at = _utc(self.clock.time())
        row = {
            "provider": verified.provider,
            "dedupe_key": verified.dedupe_key,
            "endpoint": endpoint,
            "received_at": received_at,
            "headers": redact_headers(verified.headers, self.redact),
            "payload": payload_text,
        }
        if self.is_async:
            outcome, result = await self._process_async(verified, row, handler, request)
        else:
            from starlette.concurrency import run_in_threadpool

            outcome, result = await run_in_threadpool(self._process_sync, verified, row, handler, request)

        event_id = verified.dedupe_key
        if outcome == "duplicate":
            self._dedupe_hits.labels(verified.provider).inc()
            log.info("webhook_duplicate", provider=verified.provider, event_id=event_id, endpoint=endpoint)
            response = Response(status_code=result or 200)
        elif outcome == "ignored":
            log.warning(
                "webhook_ignored", provider=verified.provider, event_id=event_id, endpoint=endpoint, reason=result.reason
            )
            response = result.response if result.response is not None else Response(status_code=200)
        elif outcome == "failed":
            webhook_outcome("failed", result)
            log.error(
                "webhook_handler_failed",
                provider=verified.provider,
                event_id=event_id,
                endpoint=endpoint,
                error_code=type(result).__name__,
                error_message=str(result),
                exc_info=result,
            )
            response = self._problem(
                HTTPError("the webhook handler failed; the delivery was rolled back and can be retried"), request
            )
        else:
            log.info("webhook_processed", provider=verified.provider, event_id=event_id, endpoint=endpoint)
            response = result
        self._observe(verified.provider, endpoint, outcome, started)
        return response

    def _check_handler(self, handler: Handler) -> None:
        is_coroutine = inspect.iscoroutinefunction(handler)
        what = getattr(handler, "__qualname__", repr(handler))
        if self.is_async and not is_coroutine:
            raise ConfigurationError(
                f"{what}: with an AsyncEngine the handler must be 'async def' "
                "(it receives an AsyncConnection)"
            )
        if not self.is_async and is_coroutine:
            raise ConfigurationError(
                f"{what}: with a sync Engine the handler must be a plain 'def' "
                "(it runs in a worker thread with a Connection); use an AsyncEngine for 'async def'"
            )

    def body_limit(self, verifier: Verifier) -> int:
        """The largest body accepted for ``verifier``: the smaller of the inbox's ceiling and
        the verifier's ``max_body_bytes`` (when it has one)."""
        own = getattr(verifier, "max_body_bytes", None)
        return min(self.max_body_bytes, own) if isinstance(own, int) and own > 0 else self.max_body_bytes

    @staticmethod
    async def _read(request: Any, limit: int) -> tuple[list[bytes], int]:
        """Read the raw body in chunks, refusing more than ``limit`` bytes: from
        ``Content-Length`` before reading, or as soon as the stream passes the limit."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(f"the body is larger than {limit} bytes", limit=limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"the body is larger than {limit} bytes", limit=limit)
            if chunk:
                chunks.append(chunk)
        return chunks, size

    def _observe(self, provider: str, endpoint: str, outcome: str, started: float) -> None:
        webhook_outcome(outcome)
        self._duration.labels(provider, endpoint, outcome).observe(max(0.0, self.clock.monotonic() - started))

    @staticmethod
    def _problem(exc: HTTPError, request: Any) -> Any:
        from ..http import problem_response

        return problem_response(exc, instance=request.url.path)

    @staticmethod
    def _response(result: Any) -> Any:
        from starlette.responses import Response

        if result is None:
            return Response(status_code=200)
        if isinstance(result, Response):
            return result
        raise ConfigurationError(
            f"a webhook handler must return None, a Response or Ignore(...) (whose response= is a Response), "
            f"not {type(result).__name__}"
        )

    @staticmethod
    def _log_unrecorded(row: dict[str, Any], exc: BaseException) -> None:
        # The delivery is still answered with 500 (so the provider retries); only the
        # 'failed' bookkeeping row could not be written, e.g. because the database is down.
        log.error(
            "webhook_failure_not_recorded",
            provider=row["provider"],
            event_id=row["dedupe_key"],
            error_code=type(exc).__name__,
            error_message=str(exc),
            exc_info=exc,
        )

    def _after_rollback(self, row: dict[str, Any], status: str, response_status: int, error: str | None) -> dict[str, Any]:
        return dict(
            row, status=status, processed_at=_utc(self.clock.time()), response_status=response_status, error=error
        )

    def _process_sync(self, verified: VerifiedDelivery, row: dict[str, Any], handler: Handler, request: Any) -> tuple[str, Any]:
        with self.engine.connect() as conn:
            trans = conn.begin()
            try:
                inbox_id = _store.claim(conn, **row)
                if inbox_id is None:
                    found = _store.lookup(conn, provider=row["provider"], dedupe_key=row["dedupe_key"])
                    trans.commit()
                    return "duplicate", found[2] if found else None
                try:
                    result = handler(Delivery(verified, conn, inbox_id, request))
                    response = result if isinstance(result, Ignore) else self._response(result)
                except Ignore as ignore:
                    response = ignore
                if isinstance(response, Ignore) and response.response is not None:
                    self._response(response.response)  # a Response, or a ConfigurationError naming what it got
                if isinstance(response, Ignore):
                    trans.rollback()
                    with conn.begin():
                        status = response.response.status_code if response.response is not None else 200
                        _store.record_outcome(conn, **self._after_rollback(row, "ignored", status, response.reason))
                    return "ignored", response
                if response.status_code != 200:
                    _store.set_response_status(conn, inbox_id, response.status_code)
                trans.commit()
                return "processed", response
            except Exception as exc:  # noqa: BLE001 - recorded, logged and answered with 500 below
                if trans.is_active:
                    trans.rollback()
                try:
                    with conn.begin():
                        _store.record_outcome(conn, **self._after_rollback(row, "failed", 500, _error_text(exc)))
                except Exception as record_exc:  # noqa: BLE001 - logged; the original error is answered
                    self._log_unrecorded(row, record_exc)
                return "failed", exc

    async def _process_async(
        self, verified: VerifiedDelivery, row: dict[str, Any], handler: Handler, request: Any
    ) -> tuple[str, Any]:
        async with self.engine.connect() as conn:
            trans = await conn.begin()
            try:
                inbox_id = await conn.run_sync(lambda c: _store.claim(c, **row))
                if inbox_id is None:
                    found = await conn.run_sync(
                        lambda c: _store.lookup(c, provider=row["provider"], dedupe_key=row["dedupe_key"])
                    )
                    await trans.commit()
                    return "duplicate", found[2] if found else None
                try:
                    result = await handler(Delivery(verified, conn, inbox_id, request))
                    response = result if isinstance(result, Ignore) else self._response(result)
                except Ignore as ignore:
                    response = ignore
                if isinstance(response, Ignore) and response.response is not None:
                    self._response(response.response)  # a Response, or a ConfigurationError naming what it got
                if isinstance(response, Ignore):
                    await trans.rollback()
                    status = response.response.status_code if response.response is not None else 200
                    outcome = self._after_rollback(row, "ignored", status, response.reason)
                    async with conn.begin():
                        await conn.run_sync(lambda c: _store.record_outcome(c, **outcome))
                    return "ignored", response
                if response.status_code != 200:
                    status_code = response.status_code
                    await conn.run_sync(lambda c: _store.set_response_status(c, inbox_id, status_code))
                await trans.commit()
                return "processed", response
            except Exception as exc:  # noqa: BLE001 - recorded, logged and answered with 500 below
                if trans.is_active:
                    await trans.rollback()
                failed = self._after_rollback(row, "failed", 500, _error_text(exc))
                try:
                    async with conn.begin():
                        await conn.run_sync(lambda c: _store.record_outcome(c, **failed))
                except Exception as record_exc:  # noqa: BLE001 - logged; the original error is answered
                    self._log_unrecorded(row, record_exc)
                return "failed", exc
