"""An instrumented, resilient httpx transport for calls to providers (extra ``http``).

Each request goes through a named :class:`~surefoot.resilience.Policy` per provider::

    client = provider_client("twilio", base_url="https://api.twilio.com",
                             endpoints=["/2010-04-01/Accounts/{sid}/Messages.json"],
                             policy=http_policy("twilio", breaker=twilio_breaker, deadline=10))

What the transport does per request:

* **headers**: adds ``X-Correlation-ID`` / ``X-Causation-ID`` from :mod:`surefoot.context` and
  W3C ``traceparent``/``tracestate`` through the OpenTelemetry propagator when OpenTelemetry
  is installed (headers the caller set are kept);
* **results, not exceptions**: a ``429`` or ``5xx`` answer is a *failed result* — retried (with
  ``Retry-After`` honoured), counted by the breaker — and when the retries are used up the
  **last response is returned** to the caller, like any httpx response (call
  ``raise_for_status()`` if you want an exception). Transport errors (connect errors,
  timeouts) are retried and, at the end, re-raised;
* **no duplicate side effects**: a request that may have reached the provider is retried only
  when that is safe — idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or a request
  carrying an ``Idempotency-Key`` header. Otherwise only failures that prove the request was
  not processed are retried: connection/pool errors before sending, ``429`` and ``503``, and
  local refusals (open breaker, full bulkhead, rate limit — their ``retry_after`` is honoured,
  or the retry gives up at once when it is longer than ``max_retry_after``);
* **metrics** per attempt (each real HTTP request):
  ``integration_http_requests_total{provider,endpoint,status}`` (``status`` is the code, or the
  httpx error name such as ``ConnectError``) and
  ``integration_http_latency_seconds{provider,endpoint}``. ``endpoint`` is bounded: a matching
  template from ``endpoints`` (``"POST /2010-04-01/Accounts/{sid}/Messages.json"``), else the
  path with id-like segments replaced by ``{id}``; at most ``max_endpoints`` distinct values,
  then ``other``. A request may name its endpoint: ``extensions={"endpoint": "send_sms"}``.

Responses that are retried are read and closed first so their connections go back to the pool.
"""

from __future__ import annotations

import contextvars
import importlib.util
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .. import context as _context
from .._core.extras import require
from ..errors import ConfigurationError, RateLimitError, ServiceUnavailableError
from ..tracing._api import NOOP_SPAN, active_tracer
from ..tracing._hooks import client_attempt, client_result, client_span, trace_resilience
from ._breaker import CircuitBreaker, http_failure
from ._policy import Policy
from ._retry import RETRYABLE_STATUS, Retry
from ._timeout import CallTimeoutError

__all__ = [
    "ResilientTransport",
    "AsyncResilientTransport",
    "provider_client",
    "aprovider_client",
    "http_policy",
    "IDEMPOTENT_METHODS",
]

if TYPE_CHECKING:
    import httpx
else:
    httpx = require("httpx", "http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_ALWAYS_RETRYABLE_STATUS = frozenset({429, 503})

_current_request: contextvars.ContextVar[Any] = contextvars.ContextVar("surefoot_http_request", default=None)


def _request_of(outcome: Any) -> Any:
    try:
        request = outcome.request
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError when it was never set
        request = None
    return request if request is not None else _current_request.get()


def _replay_safe(request: Any) -> bool:
    return request is not None and (
        request.method in IDEMPOTENT_METHODS or "idempotency-key" in request.headers
    )


def retryable_http_error(exc: BaseException) -> bool:
    """Retry when the request was not sent, or when replaying it is safe.

    Not sent: connection and pool errors, and local refusals (open breaker, full bulkhead,
    rate limit) — these carry ``retry_after``, which the retry honours or gives up on. A
    timeout or a broken connection after sending is retried only for replay-safe requests.
    """
    if isinstance(exc, _NOT_SENT):
        return True
    if isinstance(exc, CallTimeoutError):
        return _replay_safe(_request_of(exc))
    if isinstance(exc, (ServiceUnavailableError, RateLimitError)):
        return True
    return isinstance(exc, httpx.TransportError) and _replay_safe(_request_of(exc))


def _result_predicate(statuses: frozenset[int]) -> Callable[[Any], bool]:
    def retryable_response(response: Any) -> bool:
        status = response.status_code
        if status not in statuses:
            return False
        return status in _ALWAYS_RETRYABLE_STATUS or _replay_safe(_request_of(response))

    return retryable_response


def http_policy(
    provider: str,
    *,
    max_attempts: int = 3,
    retry_statuses: Iterable[int] = RETRYABLE_STATUS,
    base_delay: float = 0.5,
    max_delay: float = 10.0,
    deadline: float | None = None,
    retry_options: Mapping[str, Any] | None = None,
    **components: Any,
) -> Policy:
    """A :class:`Policy` whose retry understands HTTP (see the module docs for what is retried).

    Args:
        provider: the provider name (names the policy, retry budget and metrics).
        max_attempts: attempts including the first.
        retry_statuses: answers that count as failed results (default 408, 425, 429, 5xx).
        base_delay, max_delay, deadline: see :class:`Retry`.
        retry_options: other :class:`Retry` arguments (``clock``, ``rng``, ``hooks`` ...).
        **components: ``breaker``, ``timeout``, ``bulkhead``, ``rate_limit``, ``chaos``.
    """
    retry = Retry(
        name=provider,
        max_attempts=max_attempts,
        on=(httpx.TransportError, ServiceUnavailableError, RateLimitError),
        retry_if=retryable_http_error,
        retry_on_result=_result_predicate(frozenset(retry_statuses)),
        base_delay=base_delay,
        max_delay=max_delay,
        deadline=deadline,
        return_last_result=True,
        **dict(retry_options or {}),
    )
    return _HttpPolicy(name=provider, retry=retry, **components)


class _HttpPolicy(Policy):
    """The policy of a provider client: its breaker counts 429/5xx answers as failures."""

    def _attempt_breaker(self) -> Any:
        breaker = self.breaker
        if isinstance(breaker, CircuitBreaker):
            return _AnswersFail(breaker)
        return breaker


class _AnswersFail:
    """A :class:`CircuitBreaker` seen through an HTTP policy: a 429 or 5xx response is a failed
    call (with its ``Retry-After``), whether or not the breaker was given ``result_failure``.
    Everything else is the breaker's own."""

    __slots__ = ("_breaker",)

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._breaker, name)

    def on_result(self, duration: float, result: Any) -> None:
        if http_failure(result):
            self._breaker._failed_result(duration, result)
        else:
            self._breaker.on_result(duration, result)

    async def aon_result(self, duration: float, result: Any) -> None:
        if http_failure(result):
            await self._breaker._afailed_result(duration, result)
        else:
            await self._breaker.aon_result(duration, result)


# --------------------------------------------------------------------------- endpoints

_ID_SEGMENT = re.compile(
    r"^(\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|(?=[A-Za-z0-9_\-]{8,}$)(?=.*\d)[A-Za-z0-9_\-]+)$"
)


# API versions look like ids but are part of the route: /2010-04-01/..., /v2/...
_VERSION_SEGMENT = re.compile(r"^(\d{4}-\d{2}-\d{2}|v\d+(\.\d+)*)$")


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", template)
    pattern = "".join("[^/]+" if p.startswith("{") and p.endswith("}") else re.escape(p) for p in parts)
    return re.compile(f"^{pattern}$")


class _Endpoints:
    """Maps a request to a bounded endpoint label."""

    def __init__(self, templates: Iterable[str] | None, max_endpoints: int) -> None:
        self._templates: list[tuple[str | None, re.Pattern[str], str]] = []
        for template in templates or ():
            method, _, path = template.partition(" ") if " " in template else ("", "", template)
            self._templates.append((method.upper() or None, _template_regex(path), path))
        self._max = max_endpoints
        self._seen: set[str] = set()

    def __call__(self, request: Any) -> str:
        named = request.extensions.get("endpoint")
        if named:
            return self._bounded(str(named))
        method = request.method
        path = request.url.path
        for want_method, regex, template in self._templates:
            if (want_method is None or want_method == method) and regex.match(path):
                return self._bounded(f"{method} {template}")
        segments = [
            "{id}" if _ID_SEGMENT.match(s) and not _VERSION_SEGMENT.match(s) else s for s in path.split("/")
        ]
        return self._bounded(f"{method} {'/'.join(segments) or '/'}")

    def _bounded(self, label: str) -> str:
        if label in self._seen:
            return label
        if len(self._seen) >= self._max:
            return "other"
        self._seen.add(label)
        return label


# --------------------------------------------------------------------------- instrumentation


class _Instrumentation:
    def __init__(
        self, provider: str, endpoints: Iterable[str] | None, max_endpoints: int, registry: Any,
        propagate: bool,
    ) -> None:
        from .._core.catalogue import INTEGRATION_HTTP_LATENCY, INTEGRATION_HTTP_REQUESTS

        self.provider = provider
        self.endpoint_of = _Endpoints(endpoints, max_endpoints)
        self._requests = INTEGRATION_HTTP_REQUESTS.get(registry)
        self._latency = INTEGRATION_HTTP_LATENCY.get(registry)
        self._children: dict[tuple[str, str], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self.propagate = propagate
        self._otel_inject: Callable[[dict[str, str]], None] | None = None
        self._otel_checked = False

    def _inject_trace(self, request: Any) -> None:
        if not self._otel_checked:
            self._otel_checked = True
            if importlib.util.find_spec("opentelemetry") is not None:
                from opentelemetry import propagate as otel_propagate

                self._otel_inject = otel_propagate.inject
        inject = self._otel_inject
        if inject is None:
            return
        carrier: dict[str, str] = {}
        inject(carrier)
        for key, value in carrier.items():
            if key not in request.headers:
                request.headers[key] = value

    def prepare(self, request: Any) -> None:
        if not self.propagate:
            return
        headers = request.headers
        correlation = _context.get_correlation_id()
        if correlation is not None and "x-correlation-id" not in headers:
            headers["X-Correlation-ID"] = correlation
        causation = _context.get_causation_id()
        if causation is not None and "x-causation-id" not in headers:
            headers["X-Causation-ID"] = causation
        self._inject_trace(request)

    def span(self, request: Any, policy: Any) -> Any:
        if active_tracer() is None:
            return NOOP_SPAN
        trace_resilience(policy)  # once per policy: decisions become span events
        return client_span(self.provider, request, self.endpoint_of(request))

    def record(self, request: Any, status: str, seconds: float) -> None:
        endpoint = self.endpoint_of(request)
        client_attempt(status, seconds)
        child = self._children.get((endpoint, status))
        if child is None:
            child = self._children[(endpoint, status)] = self._requests.labels(self.provider, endpoint, status)
        child.inc()
        latency = self._latency_children.get(endpoint)
        if latency is None:
            latency = self._latency_children[endpoint] = self._latency.labels(self.provider, endpoint)
        latency.observe(seconds)


def _default_policy(provider: str) -> Policy:
    return http_policy(provider)


class ResilientTransport(httpx.BaseTransport):
    """A sync httpx transport running every request through a provider's policy.

    Args:
        provider: the provider name (metrics label, default policy name).
        policy: the :class:`Policy` (default: :func:`http_policy` with 3 attempts).
        transport: the transport doing the real I/O (default ``httpx.HTTPTransport()``).
        endpoints: path templates (optionally prefixed by a method) for the endpoint label.
        max_endpoints: cap on distinct endpoint labels.
        registry: Prometheus registry for the integration metrics.
        propagate: add correlation and trace-context headers.
        retry_statuses: statuses whose responses are read and closed before a retry.
    """

    def __init__(
        self,
        provider: str,
        *,
        policy: Policy | None = None,
        transport: Any = None,
        endpoints: Iterable[str] | None = None,
        max_endpoints: int = 100,
        registry: Any = None,
        propagate: bool = True,
        retry_statuses: Iterable[int] = RETRYABLE_STATUS,
    ) -> None:
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigurationError(f"policy must be a surefoot Policy; got {policy!r}")
        self.provider = provider
        self.policy = policy if policy is not None else _default_policy(provider)
        self._inner = transport if transport is not None else httpx.HTTPTransport()
        self._instr = _Instrumentation(provider, endpoints, max_endpoints, registry, propagate)
        self._statuses = frozenset(retry_statuses)
        self._buffer = self.policy.retry is not None

    def handle_request(self, request: Any) -> Any:
        with self._instr.span(request, self.policy) as span:  # CLIENT span when tracing is on
            self._instr.prepare(request)
            if self._buffer:
                request.read()  # a retried request must be able to send its body again
            token = _current_request.set(request)
            try:
                response = self.policy.call(self._attempt, request)
            finally:
                _current_request.reset(token)
            client_result(span, response)
            return response

    def _attempt(self, request: Any) -> Any:
        start = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as exc:
            self._instr.record(request, type(exc).__name__, time.perf_counter() - start)
            raise
        self._instr.record(request, str(response.status_code), time.perf_counter() - start)
        if response.status_code in self._statuses:
            try:
                response.read()
            finally:
                response.close()
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncResilientTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`ResilientTransport` (same arguments; default inner
    transport ``httpx.AsyncHTTPTransport()``)."""

    def __init__(
        self,
        provider: str,
        *,
        policy: Policy | None = None,
        transport: Any = None,
        endpoints: Iterable[str] | None = None,
        max_endpoints: int = 100,
        registry: Any = None,
        propagate: bool = True,
        retry_statuses: Iterable[int] = RETRYABLE_STATUS,
    ) -> None:
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigurationError(f"policy must be a surefoot Policy; got {policy!r}")
        self.provider = provider
        self.policy = policy if policy is not None else _default_policy(provider)
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._instr = _Instrumentation(provider, endpoints, max_endpoints, registry, propagate)
        self._statuses = frozenset(retry_statuses)
        self._buffer = self.policy.retry is not None

    async def handle_async_request(self, request: Any) -> Any:
        with self._instr.span(request, self.policy) as span:  # CLIENT span when tracing is on
            self._instr.prepare(request)
            if self._buffer:
                await request.aread()
            token = _current_request.set(request)
            try:
                response = await self.policy.acall(self._attempt, request)
            finally:
                _current_request.reset(token)
            client_result(span, response)
            return response

    async def _attempt(self, request: Any) -> Any:
        start = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError as exc:
            self._instr.record(request, type(exc).__name__, time.perf_counter() - start)
            raise
        self._instr.record(request, str(response.status_code), time.perf_counter() - start)
        if response.status_code in self._statuses:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def provider_client(
    provider: str,
    *,
    policy: Policy | None = None,
    endpoints: Iterable[str] | None = None,
    registry: Any = None,
    transport: Any = None,
    propagate: bool = True,
    **client_options: Any,
) -> Any:
    """An ``httpx.Client`` whose requests go through :class:`ResilientTransport`.

    ``client_options`` go to ``httpx.Client`` (``base_url``, ``timeout``, ``headers`` ...).
    """
    return httpx.Client(
        transport=ResilientTransport(
            provider, policy=policy, transport=transport, endpoints=endpoints, registry=registry,
            propagate=propagate,
        ),
        **client_options,
    )


def aprovider_client(
    provider: str,
    *,
    policy: Policy | None = None,
    endpoints: Iterable[str] | None = None,
    registry: Any = None,
    transport: Any = None,
    propagate: bool = True,
    **client_options: Any,
) -> Any:
    """An ``httpx.AsyncClient`` whose requests go through :class:`AsyncResilientTransport`."""
    return httpx.AsyncClient(
        transport=AsyncResilientTransport(
            provider, policy=policy, transport=transport, endpoints=endpoints, registry=registry,
            propagate=propagate,
        ),
        **client_options,
    )
