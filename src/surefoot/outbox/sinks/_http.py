"""Outbound webhook sink (extra ``http``): Standard Webhooks-signed POSTs with httpx.

Status handling follows the Standard Webhooks guidance: 2xx delivered; 3xx a failure
(redirects are never followed); 410 disables the endpoint; 429, 502, 503 and 504 mean
"later", honouring ``Retry-After``; every other status is a failure the dispatcher retries
with backoff.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ..._core.clock import SYSTEM_CLOCK, Clock
from ..._core.extras import require
from ..._core.retry_after import parse_retry_after
from ..._core.signing import decode_standard_secret, standard_signature
from ...errors import ConfigurationError
from .._event import Event, RetryLater, SinkDisabled, SinkError
from ._base import BaseSink, NameResolver, encode, outcome

__all__ = ["HttpSink", "DisabledEndpoint", "parse_retry_after", "RETRY_LATER_STATUSES"]

_log = structlog.get_logger("surefoot.outbox")

RETRY_LATER_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses that mean "the endpoint is overloaded or briefly away; try again later"."""

_RESERVED_HEADERS = frozenset({
    "content-type", "webhook-id", "webhook-timestamp", "webhook-signature", "x-event-name",
    "x-event-schema-version", "x-correlation-id", "x-causation-id", "x-tenant-id",
})
_MAX_SNIPPET = 512


@dataclass(frozen=True)
class DisabledEndpoint:
    """Why an endpoint was disabled: when (wall seconds), the status and the event that saw it."""

    url: str
    disabled_at: float
    status_code: int
    event_id: str


EndpointSpec = str | Mapping[str, str] | Callable[[Event], str]


def _safe_url(url: str) -> str:
    """The URL without credentials, query or fragment (for logs and error messages)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _check_url(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "an endpoint must be an absolute http:// or https:// URL"
    return None


class HttpSink(BaseSink):
    """POST each event's JSON envelope to a webhook endpoint, signed per Standard Webhooks.

    Each request carries ``webhook-id`` (= ``event_id``, the receiver's dedupe key),
    ``webhook-timestamp`` (unix seconds from ``clock``) and ``webhook-signature``: one
    ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` token per secret, space-separated,
    so a receiver can rotate secrets with no gap. Correlation headers: ``X-Event-Name``,
    ``X-Event-Schema-Version``, ``X-Correlation-ID``, ``X-Causation-ID``, ``X-Tenant-ID``
    (when set), and the ``forward_headers`` of ``event.headers`` (``traceparent``,
    ``tracestate``).

    Outcome per event: 2xx ``None``; 410 :class:`SinkDisabled` and the endpoint is
    disabled (later events for it fail at once with :class:`SinkDisabled`, without a
    request, until :meth:`enable`); 429/502/503/504 :class:`RetryLater` with
    ``retry_after`` from ``Retry-After``; 3xx and other statuses, timeouts and connection
    errors :class:`SinkError`. HTTP errors carry ``status_code`` on the exception.

    Order: events of one ``key`` in a batch are sent one after the other in batch order;
    after a failure the later events of that key are not sent (they fail with
    :class:`SinkError`) so the endpoint never sees them out of order. Other events go in
    parallel, at most ``max_concurrency`` requests at a time per endpoint.

    Reconnects: httpx pools connections and opens new ones as needed; nothing to restore.

    Args:
        endpoint: one URL; a template over ``event_name``/``schema_version``/``tenant_id``/
            ``key`` (``"https://hooks.example.com/{event_name}"``); a mapping from event
            name to URL (``"*"`` as the fallback); or a callable ``(event) -> url``.
        secrets: one or more Standard Webhooks secrets (``whsec_<base64>``) or raw key
            bytes; every one signs each message (rotation: add the new one, then drop the
            old one once receivers use it).
        timeout: seconds for the whole request (default 15; 15-30 s is the guidance).
        max_concurrency: most requests in flight per endpoint.
        headers: extra static headers (e.g. ``Authorization``); the ones the sink sets
            itself (``webhook-*``, ``X-Event-*``, the id headers, ``content-type``) are refused.
        forward_headers: which ``event.headers`` entries to send along.
        client: an ``httpx.AsyncClient`` to use (not closed by ``close()``); redirects
            are never followed whatever its setting.
        clock: the clock for ``webhook-timestamp`` and HTTP-date ``Retry-After``.
        max_retry_after: the longest ``Retry-After`` honoured, seconds.
        on_disabled: called with a :class:`DisabledEndpoint` when an endpoint is disabled;
            an exception it raises is logged, never propagated.
        registry: Prometheus registry for ``integration_http_requests_total`` and
            ``integration_http_latency_seconds`` (labels ``provider`` = the sink's name,
            ``endpoint`` = the endpoint's host, ``status`` = the code, ``timeout`` or
            ``error``); default: the process registry.
        name: the sink's name (metrics label ``sink``, ``provider`` on the HTTP metrics).

    Raises:
        ConfigurationError: a bad argument (no secret, malformed secret, bad URL...).
        MissingExtraError: httpx is not installed (``pip install 'surefoot[http]'``).
    """

    def __init__(
        self,
        endpoint: EndpointSpec,
        *,
        secrets: str | bytes | Sequence[str | bytes],
        timeout: float = 15.0,
        max_concurrency: int = 10,
        headers: Mapping[str, str] | None = None,
        forward_headers: Sequence[str] = ("traceparent", "tracestate"),
        client: Any = None,
        clock: Clock = SYSTEM_CLOCK,
        max_retry_after: float = 3600.0,
        on_disabled: Callable[[DisabledEndpoint], None] | None = None,
        registry: Any = None,
        name: str = "http",
    ) -> None:
        require("httpx", "http")
        super().__init__(name=name)
        self._route = _endpoint_resolver(endpoint)
        if isinstance(secrets, (str, bytes)):
            secrets = [secrets]
        keys = [decode_standard_secret(secret) for secret in secrets]
        if not keys or any(not key for key in keys):
            raise ConfigurationError("HttpSink needs at least one non-empty signing secret ('whsec_...')")
        self._keys = keys
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        if not max_retry_after >= 0:
            raise ConfigurationError(f"max_retry_after must be >= 0 seconds, got {max_retry_after!r}")
        self._timeout = float(timeout)
        self._max_concurrency = max_concurrency
        self._static_headers = {str(k): str(v) for k, v in (headers or {}).items()}
        clash = sorted(k for k in self._static_headers if k.lower() in _RESERVED_HEADERS)
        if clash:
            raise ConfigurationError(f"headers= may not set {clash}: the sink sets them for each event")
        self._forward = tuple(h.lower() for h in forward_headers)
        self._client = client
        self._owns_client = client is None
        self._clock = clock
        self._max_retry_after = float(max_retry_after)
        self._on_disabled = on_disabled
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._disabled: dict[str, DisabledEndpoint] = {}
        self._registry = registry
        self._requests: Any = None
        self._latency: Any = None
        self._children: dict[tuple[str, ...], Any] = {}

    # -- endpoint state ---------------------------------------------------------------

    @property
    def disabled_endpoints(self) -> dict[str, DisabledEndpoint]:
        """The endpoints disabled by a 410, by URL (a copy)."""
        return dict(self._disabled)

    def is_disabled(self, url: str) -> bool:
        """True when ``url`` answered 410 and has not been re-enabled."""
        return url in self._disabled

    def enable(self, url: str | None = None) -> list[str]:
        """Re-enable ``url`` (or every disabled endpoint when ``None``).

        Returns:
            The URLs that were re-enabled.
        """
        urls = list(self._disabled) if url is None else ([url] if url in self._disabled else [])
        for item in urls:
            del self._disabled[item]
            _log.info("sink_endpoint_enabled", sink=self.name, endpoint=_safe_url(item))
        return urls

    def _disable(self, url: str, event: Event, status: int) -> None:
        record = DisabledEndpoint(url=url, disabled_at=self._clock.time(), status_code=status, event_id=event.event_id)
        self._disabled[url] = record
        _log.warning(
            "sink_endpoint_disabled", sink=self.name, endpoint=_safe_url(url), status=status, event_id=event.event_id
        )
        if self._on_disabled is not None:
            try:
                self._on_disabled(record)
            except Exception as exc:  # a user hook must never break delivery
                _log.error("sink_hook_failed", sink=self.name, hook="on_disabled", error_message=repr(exc))

    # -- lifecycle --------------------------------------------------------------------

    def _observe(self, url: str, status: str, seconds: float) -> None:
        host = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
        counter = self._children.get((host, status))
        if counter is None:
            counter = self._children[(host, status)] = self._requests.labels(self.name, host, status)
        counter.inc()
        histogram = self._children.get((host,))
        if histogram is None:
            histogram = self._children[(host,)] = self._latency.labels(self.name, host)
        histogram.observe(seconds)

    async def _connect(self) -> None:
        httpx = require("httpx", "http")
        if self._requests is None:
            from ..._core import catalogue

            self._requests = catalogue.INTEGRATION_HTTP_REQUESTS.get(self._registry)
            self._latency = catalogue.INTEGRATION_HTTP_LATENCY.get(self._registry)
        if self._owns_client:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=False,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            )

    async def _disconnect(self) -> None:
        client = self._client
        if self._owns_client and client is not None:
            self._client = None
            await client.aclose()

    # -- sending ----------------------------------------------------------------------

    def signature_headers(self, event: Event, body: bytes, timestamp: int) -> dict[str, str]:
        """The headers of one delivery (signature, ids, correlation, trace).

        Args:
            event: the event being delivered.
            body: the exact request body.
            timestamp: the ``webhook-timestamp`` (unix seconds).
        """
        headers = dict(self._static_headers)
        for key, value in event.headers.items():
            if key.lower() in self._forward and value is not None:
                headers[key.lower()] = str(value)
        headers["X-Event-Name"] = event.event_name
        headers["X-Event-Schema-Version"] = str(event.schema_version)
        if event.correlation_id is not None:
            headers["X-Correlation-ID"] = event.correlation_id
        if event.causation_id is not None:
            headers["X-Causation-ID"] = event.causation_id
        if event.tenant_id is not None:
            headers["X-Tenant-ID"] = event.tenant_id
        headers["content-type"] = "application/json"
        headers["webhook-id"] = event.event_id
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = " ".join(
            standard_signature(key, event.event_id, timestamp, body) for key in self._keys
        )
        return headers

    async def _send(self, events: Sequence[Event]) -> list[BaseException | None]:
        # Events sharing a key run as one chain, in batch order; the chains run in parallel.
        chains: dict[object, list[int]] = {}
        for index, event in enumerate(events):
            chain_key: object = ("key", event.key) if event.key is not None else ("one", index)
            chains.setdefault(chain_key, []).append(index)
        results: list[BaseException | None] = [None] * len(events)

        async def run_chain(indexes: list[int]) -> None:
            failed: BaseException | None = None
            for index in indexes:
                event = events[index]
                if failed is not None and not isinstance(failed, SinkDisabled):
                    err = SinkError(
                        f"event {event.event_id} not sent: an earlier event of key {event.key!r} "
                        f"in this batch failed ({failed})"
                    )
                    err.__cause__ = failed
                    results[index] = err
                    continue
                result = await outcome(self._deliver(event), sink=self.name)
                results[index] = result
                if result is not None:
                    failed = result

        await asyncio.gather(*(run_chain(indexes) for indexes in chains.values()))
        return results

    async def _deliver(self, event: Event) -> None:
        httpx = require("httpx", "http")
        url = self._route(event)
        if url in self._disabled:
            raise SinkDisabled(
                f"endpoint {_safe_url(url)} is disabled (it answered 410 Gone); "
                f"event {event.event_id} not sent — re-enable it with enable()"
            )
        body = encode(event)
        semaphore = self._semaphores.get(url)
        if semaphore is None:
            semaphore = self._semaphores[url] = asyncio.Semaphore(self._max_concurrency)
        async with semaphore:
            if url in self._disabled:  # disabled while this one waited for a slot
                raise SinkDisabled(f"endpoint {_safe_url(url)} is disabled (410 Gone); event {event.event_id} not sent")
            headers = self.signature_headers(event, body, int(self._clock.time()))
            started = self._clock.monotonic()
            try:
                response = await self._client.post(
                    url, content=body, headers=headers, timeout=self._timeout, follow_redirects=False
                )
            except httpx.TimeoutException as exc:
                self._observe(url, "timeout", self._clock.monotonic() - started)
                raise SinkError(
                    f"webhook to {_safe_url(url)} timed out after {self._timeout:g} s (event {event.event_id})"
                ) from exc
            except httpx.HTTPError as exc:
                self._observe(url, "error", self._clock.monotonic() - started)
                raise SinkError(
                    f"webhook to {_safe_url(url)} failed for event {event.event_id}: {exc!r}"
                ) from exc
            self._observe(url, str(response.status_code), self._clock.monotonic() - started)
        self._check_status(url, event, response)

    def _check_status(self, url: str, event: Event, response: Any) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        where = f"{_safe_url(url)} answered {status} for event {event.event_id}"
        err: SinkError
        if status == 410:
            self._disable(url, event, status)
            err = SinkDisabled(f"{where}: the endpoint is gone and is now disabled")
        elif status in RETRY_LATER_STATUSES:
            retry_after = parse_retry_after(
                response.headers.get("retry-after"), now=self._clock.time(), max_delay=self._max_retry_after
            )
            err = RetryLater(f"{where}; retry later", retry_after=retry_after)
        elif 300 <= status < 400:
            location = response.headers.get("location")
            err = SinkError(
                f"{where}: redirects are not followed; configure the final URL"
                + (f" ({_safe_url(location)})" if location else "")
            )
        else:
            snippet = response.text[:_MAX_SNIPPET] if response.content else ""
            err = SinkError(f"{where}" + (f": {snippet}" if snippet else ""))
        err.status_code = status  # type: ignore[attr-defined]
        raise err


def _endpoint_resolver(endpoint: EndpointSpec) -> Callable[[Event], str]:
    if isinstance(endpoint, Mapping):
        table = {str(k): str(v) for k, v in endpoint.items()}
        if not table:
            raise ConfigurationError("the endpoint mapping is empty; map event names to URLs")
        for url in table.values():
            problem = _check_url(url)
            if problem:
                raise ConfigurationError(f"invalid endpoint {_safe_url(url)!r}: {problem}")
        fallback = table.get("*")

        def lookup(event: Event) -> str:
            url = table.get(event.event_name, fallback)
            if url is None:
                raise SinkError(f"no webhook endpoint for event name {event.event_name!r} (and no '*' fallback)")
            return url

        return lookup
    return NameResolver(endpoint, what="webhook endpoint", validate=_check_url)
