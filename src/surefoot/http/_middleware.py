"""The single pure-ASGI middleware of surefoot's request path.

Per HTTP request, in one pass and without buffering bodies:

1. correlation id read from the configured headers (first valid wins) or generated, echoed
   in the response, bound with ``causation_id`` and ``tenant_id`` into
   :mod:`surefoot.context` so logs, error bodies, background tasks, thread-pool calls and
   spawned tasks carry them;
2. RED metrics (``http_server_request_duration_seconds``, ``http_server_active_requests``)
   labelled with the route *template* the framework matched, observed when the last body
   chunk is sent (so ``BackgroundTasks`` time is excluded);
3. one access-log line (``surefoot.access`` / ``http_request``);
4. unhandled exceptions rendered as RFC 9457 problems when the response has not started,
   logged once with their stack trace.

Every option is decided in ``__init__``: disabling metrics swaps in a no-op meter, so the
request path carries no metric work at all (the structlog habit: a disabled thing *is* a
no-op function).
"""

from __future__ import annotations

import collections
import itertools
import threading
import random
import time
from bisect import bisect_left as _bisect_left
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from prometheus_client.values import MutexValue as _MutexValue

from .. import context
from .._config import Settings, get_settings
from ..errors import ConfigurationError
from ..logging._setup import AccessLogger
from ..metrics import _catalogue as cat
from ._problem import problem_from_exception, send_problem
from ._routes import RouteTemplates

__all__ = ["SurefootMiddleware", "OVERFLOW", "ERROR_SCOPE_KEY", "LOGGED_SCOPE_KEY", "log_unhandled"]

Scope = dict[str, Any]

OVERFLOW = "_OTHER"
#: Exception handlers store the exception they rendered here so metrics get ``error_type``.
ERROR_SCOPE_KEY = "surefoot.error"
#: Set once an unhandled exception was logged, so a fallback handler does not log it twice.
LOGGED_SCOPE_KEY = "surefoot.logged"

_KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")
_METHODS = {m: m for m in _KNOWN_METHODS}
_SCHEMES = {"http": "http", "https": "https", "ws": "ws", "wss": "wss"}
_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
_perf = time.perf_counter
_cid_var = context.correlation_id
_cause_var = context.causation_id
_tenant_var = context.tenant_id
_getrandbits = random.getrandbits
# version 4 in bits 76-79, RFC 4122 variant (10) in bits 62-63
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_SET = (0x4 << 76) | (0x2 << 62)


def _fast_uuid4() -> str:
    # The format of context.new_id() (a random UUID4 string) at a fraction of its cost: the
    # bits come from the process PRNG, which Python reseeds in every forked worker, instead
    # of a getrandom() system call per request. Correlation ids label requests; they are not
    # secrets and nothing must rely on them being unguessable.
    # (bytes.hex() is cheaper than "%032x" and pads the same way.)
    h = ((_getrandbits(128) & _UUID_CLEAR) | _UUID_SET).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _valid(raw: bytes) -> str | None:
    # context.valid_id on bytes, without a regex: 1-128 chars of A-Z a-z 0-9 . _ : -
    if 0 < len(raw) <= 128 and _ID_CHARS.issuperset(raw):
        return raw.decode("ascii")
    return None


def log_unhandled(scope: Scope, exc: BaseException) -> None:
    """Log an unhandled exception once, with its stack trace, and mark the scope."""
    scope[LOGGED_SCOPE_KEY] = exc
    structlog.get_logger("surefoot.http").error(
        "unhandled_exception",
        exc_info=exc,
        error_code="INTERNAL_ERROR",
        error_message=str(exc),
        error_type=type(exc).__name__,
        method=scope.get("method"),
        path=scope.get("path"),
    )


def _count_of(counter: Any) -> int:
    # itertools.count exposes its next value only through repr: "count(5)".
    return int(repr(counter)[6:-1])


class _CountValue:
    """A bucket value incremented by ``next()`` on an ``itertools.count``.

    ``next()`` on a count is one C call under the GIL: atomic across threads without the lock
    (and the Python frame) of prometheus_client's ``MutexValue.inc``. prometheus_client reads
    it through ``get()`` at scrape time.
    """

    __slots__ = ("_counter", "_base", "_exemplar")

    def __init__(self, start: float) -> None:
        self._counter = itertools.count()
        self._base = start
        self._exemplar: Any = None

    def inc(self, amount: float) -> None:
        # Histogram.observe increments buckets by 1 only.
        for _ in range(int(amount)):
            next(self._counter)

    def set(self, value: float, timestamp: Any = None) -> None:
        self._base = value - _count_of(self._counter)

    def get(self) -> float:
        return float(self._base + _count_of(self._counter))

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get_exemplar(self) -> Any:
        return self._exemplar


class _SumValue:
    """A histogram sum added to by ``deque.append`` (atomic, lock-free), folded when read.

    Observations queue in a deque; ``get()`` (a scrape) and every 4096th observation fold
    them into the total under a lock, so memory stays bounded without scrapes and nothing is
    lost to a race: ``popleft`` hands each queued value to exactly one folder.
    """

    __slots__ = ("pending", "_total", "_lock", "_exemplar")

    FOLD_AT = 4096

    def __init__(self, start: float) -> None:
        self.pending: collections.deque[float] = collections.deque()
        self._total = start
        self._lock = threading.Lock()
        self._exemplar: Any = None

    def fold(self) -> float:
        pending = self.pending
        with self._lock:
            total = self._total
            while pending:
                try:
                    total += pending.popleft()
                except IndexError:  # emptied by another thread between the two calls
                    break
            self._total = total
        return total

    def inc(self, amount: float) -> None:
        self.pending.append(amount)
        if len(self.pending) > self.FOLD_AT:
            self.fold()

    def set(self, value: float, timestamp: Any = None) -> None:
        with self._lock:
            self.pending.clear()
            self._total = value

    def get(self) -> float:
        return self.fold()

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get_exemplar(self) -> Any:
        return self._exemplar


def _single_process(*values: Any) -> bool:
    # Values prometheus_client keeps in process memory (not the multi-process files).
    return all(type(v) is _MutexValue for v in values)


def _observer(child: Any) -> Callable[[float], None]:
    """Return a fast ``observe`` for a histogram child: one bisect, two value increments.

    The same work as ``Histogram.observe`` without its per-call checks and bucket loop,
    through the child's value objects (which are the multi-process ones in that mode). In
    a single process the buckets become :class:`_CountValue` s and the sum a :class:`_SumValue`:
    no lock per observation.
    Falls back to the public method if a prometheus_client release lays its children out
    otherwise.
    """
    try:
        sum_inc = child._sum.inc
        buckets = child._buckets
        bounds = tuple(child._upper_bounds)
    except AttributeError:
        return child.observe  # type: ignore[no-any-return]
    if len(buckets) != len(bounds):
        return child.observe  # type: ignore[no-any-return]
    if _single_process(child._sum, *buckets):
        buckets[:] = [_CountValue(bucket.get()) for bucket in buckets]
        nexts = tuple(bucket._counter.__next__ for bucket in buckets)
        total = child._sum = _SumValue(child._sum.get())
        append = total.pending.append
        pending = total.pending
        fold_at = _SumValue.FOLD_AT

        def observe(amount: float) -> None:
            nexts[_bisect_left(bounds, amount)]()
            append(amount)
            if len(pending) > fold_at:
                total.fold()

        return observe
    bucket_incs = tuple(bucket.inc for bucket in buckets)

    def observe_shared(amount: float) -> None:
        bucket_incs[_bisect_left(bounds, amount)](1)
        sum_inc(amount)

    return observe_shared


def _adder(child: Any) -> Callable[[float], None]:
    """Return a fast ``inc(amount)`` for a gauge child (negative to decrement)."""
    value = getattr(child, "_value", None)
    inc = getattr(value, "inc", None)
    if inc is None:
        return child.inc  # type: ignore[no-any-return]
    return inc  # type: ignore[no-any-return]


def _active_pair(child: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Return ``(started, finished)`` callables keeping a gauge child at "in progress".

    In a single process the gauge reads two ``itertools.count`` at scrape time (started
    minus finished), so a request pays two C calls and no lock; in multi-process mode the
    gauge's shared value is incremented and decremented.
    """
    existing = getattr(child, "_surefoot_active", None)
    if existing is not None:  # another middleware on the same registry set it up
        return existing  # type: ignore[no-any-return]
    value = getattr(child, "_value", None)
    if _single_process(value) and hasattr(child, "set_function"):
        started, finished = itertools.count(), itertools.count()
        base = value.get()  # type: ignore[union-attr]
        child.set_function(lambda: base + _count_of(started) - _count_of(finished))
        pair = (started.__next__, finished.__next__)
        child._surefoot_active = pair
        return pair
    add = _adder(child)
    return (lambda: add(1)), (lambda: add(-1))


class _NoMeter:
    """What the request path calls when metrics are disabled: nothing."""

    __slots__ = ()
    # What the request path reads to skip all metric work (see _Meter).
    _active = None
    _children = None

    def start(self, method: str, scheme: str) -> None:
        return None

    def finish(self, active: Any, method: str, scheme: str, status: int,
               error_type: str, seconds: float, route: str) -> None:
        return None

    def websocket_open(self, route: str) -> None:
        return None

    def websocket_close(self, route: str) -> None:
        return None


class _Meter:
    """RED metrics with cached label children and a hard cap on distinct label values."""

    __slots__ = ("_duration", "_active_family", "_overflow", "_children", "_active", "_values",
                 "_max", "_ws_active", "_ws_total", "_ws_closed", "_ws_children", "_lock")

    def __init__(self, registry: Any, max_label_values: int, buckets: tuple[float, ...]) -> None:
        self._duration = cat.HTTP_SERVER_REQUEST_DURATION.get(registry, buckets=buckets)
        self._active_family = cat.HTTP_SERVER_ACTIVE_REQUESTS.get(registry)
        self._overflow = cat.HTTP_LABEL_OVERFLOW.get(registry)
        self._ws_active = cat.WEBSOCKET_CONNECTIONS_ACTIVE.get(registry)
        self._ws_total = cat.WEBSOCKET_CONNECTIONS.get(registry)
        self._ws_closed = cat.WEBSOCKET_DISCONNECTIONS.get(registry)
        self._children: dict[tuple[str, str, int, str, str], Any] = {}
        self._active: dict[tuple[str, str], Any] = {}
        self._ws_children: dict[str, tuple[Any, Any, Any]] = {}
        self._values: dict[str, set[str]] = {"http_route": set(), "error_type": set()}
        self._max = max_label_values
        # Creating a child rewires its values (see _observer, _active_pair): once per key,
        # even when two threads meet a new key at the same time.
        self._lock = threading.RLock()

    def start(self, method: str, scheme: str) -> Any:
        pair = self._active.get((method, scheme)) or self.new_active(method, scheme)
        pair[0]()
        return pair[1]

    def new_active(self, method: str, scheme: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
        with self._lock:
            pair = self._active.get((method, scheme))
            if pair is None:
                pair = self._active[(method, scheme)] = _active_pair(self._active_family.labels(method, scheme))
        return pair

    def finish(self, active: Any, method: str, scheme: str, status: int,
               error_type: str, seconds: float, route: str) -> None:
        active()
        key = (method, route, status, scheme, error_type)
        observe = self._children.get(key)
        if observe is None:
            observe = self._new_child(key)
        observe(seconds)

    def _capped(self, label: str, value: str, metric: str) -> str:
        seen = self._values[label]
        if value in seen or not value:
            return value
        if len(seen) >= self._max:
            self._overflow.labels(metric, label).inc()
            return OVERFLOW
        seen.add(value)
        return value

    def _new_child(self, key: tuple[str, str, int, str, str]) -> Any:
        with self._lock:
            observe = self._children.get(key)
            return observe if observe is not None else self._new_child_locked(key)

    def _new_child_locked(self, key: tuple[str, str, int, str, str]) -> Any:
        method, route, status, scheme, error_type = key
        name = cat.HTTP_SERVER_REQUEST_DURATION.name
        capped_route = self._capped("http_route", route, name)
        capped_error = self._capped("error_type", error_type, name)
        observe = _observer(self._duration.labels(method, capped_route, str(status), scheme, capped_error))
        if capped_route == route and capped_error == error_type:
            # Overflowed keys are not cached, so every overflowing request is counted.
            self._children[key] = observe
        return observe

    def _ws(self, route: str) -> tuple[Any, Any, Any]:
        children = self._ws_children.get(route)
        if children is None:
            capped = self._capped("http_route", route, self._ws_total._name)
            children = (self._ws_active.labels(capped), self._ws_total.labels(capped),
                        self._ws_closed.labels(capped))
            if capped == route:
                self._ws_children[route] = children
        return children

    def websocket_open(self, route: str) -> None:
        active, total, _closed = self._ws(route)
        active.inc()
        total.inc()

    def websocket_close(self, route: str) -> None:
        active, _total, closed = self._ws(route)
        active.dec()
        closed.inc()


class SurefootMiddleware:
    """The request path: ids, RED metrics, access log and error envelope, in one ASGI pass.

    Pure ASGI: ``lifespan`` (and any other scope type) passes through untouched; HTTP
    requests get the full path; WebSocket connections get ids and connection counts.

    Args:
        app: the ASGI application to wrap.
        settings: surefoot settings (default: :func:`surefoot.get_settings`).
        registry: Prometheus registry for the HTTP metrics (default: the process default).
        metrics_enabled: override ``settings.metrics_enabled``; ``False`` removes all
            metric work from the request path.
        tenant_resolver: ``scope -> tenant id or None``, consulted when the tenant header
            is absent; a failing resolver is logged and the request proceeds without a
            tenant (a hook must never break a request).
        max_label_values: hard cap on distinct ``http_route`` (and ``error_type``) values;
            new values beyond it are recorded as ``_OTHER`` and counted in
            ``surefoot_metric_label_overflow_total``.
        access_log: ``False`` disables the access log line.
        extra_buckets: histogram boundaries (seconds) added to the catalogue's, e.g. SLO
            thresholds.

    Raises:
        ConfigurationError: ``max_label_values`` < 1 or a bucket is not a positive number.
    """

    def __init__(
        self,
        app: Any,
        *,
        settings: Settings | None = None,
        registry: Any = None,
        metrics_enabled: bool | None = None,
        tenant_resolver: Callable[[Scope], str | None] | None = None,
        max_label_values: int = 1000,
        access_log: bool = True,
        extra_buckets: Sequence[float] = (),
    ) -> None:
        if not isinstance(max_label_values, int) or max_label_values < 1:
            raise ConfigurationError(f"max_label_values must be a positive integer; got {max_label_values!r}")
        buckets: set[float] = set(cat.HTTP_DURATION_BUCKETS)
        for bound in extra_buckets:
            if not isinstance(bound, (int, float)) or not bound > 0:
                raise ConfigurationError(f"extra_buckets must be positive seconds; got {bound!r}")
            buckets.add(float(bound))
        self.app = app
        self.buckets = tuple(sorted(buckets))  # of http_server_request_duration_seconds
        self.settings = settings = settings if settings is not None else get_settings()
        self.metrics_enabled = settings.metrics_enabled if metrics_enabled is None else bool(metrics_enabled)
        self.registry = registry
        self.meter: _Meter | _NoMeter = (
            _Meter(registry, max_label_values, tuple(sorted(buckets))) if self.metrics_enabled else _NoMeter()
        )
        self.routes = RouteTemplates()
        # route template (or "*") -> callables(method, status, seconds); SLO objectives bound to routes.
        self.route_observers: dict[str, list[Callable[[str, int, float], None]]] = {}
        self._id_headers = tuple(h.lower().encode("latin-1") for h in settings.correlation_headers)
        self._echo_header = (
            self._id_headers[0] if self._id_headers else b"x-correlation-id"
        )
        self._tenant_header = settings.tenant_header.lower().encode("latin-1") if settings.tenant_header else None
        self._tenant_resolver = tenant_resolver
        # header name -> slot (0.. = correlation priority, -1 causation, -2 tenant)
        wanted: dict[bytes, int] = {name: i for i, name in reversed(list(enumerate(self._id_headers)))}
        wanted[b"x-causation-id"] = -1
        if self._tenant_header is not None:
            wanted[self._tenant_header] = -2
        self._wanted = wanted
        self._skip = frozenset(settings.access_log_skip_paths)
        self._access = AccessLogger("surefoot.access").write if access_log else None
        self._errors = structlog.get_logger("surefoot.http")

    # -- helpers -------------------------------------------------------------------------

    def _ids(self, scope: Scope) -> tuple[str | None, str | None, str | None]:
        # (correlation id from the headers or None, causation id, tenant id)
        wanted = self._wanted
        best = 1 << 30
        cid: str | None = None
        causation = tenant = None
        for name, value in scope["headers"]:
            slot = wanted.get(name)
            if slot is None:
                continue
            if slot >= 0:
                if slot < best:
                    valid = _valid(value)
                    if valid is not None:
                        best, cid = slot, valid
            elif slot == -1:
                causation = _valid(value)
            else:
                tenant = _valid(value)
        if tenant is None and self._tenant_resolver is not None:
            tenant = self._resolve_tenant(scope)
        return cid, causation, tenant

    def _resolve_tenant(self, scope: Scope) -> str | None:
        try:
            value = self._tenant_resolver(scope)  # type: ignore[misc]
        except Exception as exc:
            self._errors.warning(
                "tenant_resolver_failed", error_code="TENANT_RESOLVER_FAILED", error_message=str(exc),
                exc_info=exc,
            )
            return None
        return value if isinstance(value, str) and context.valid_id(value) else None

    def _log_unhandled(self, scope: Scope, exc: BaseException) -> None:
        log_unhandled(scope, exc)

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # HTTP inline (no second coroutine per request); the ids as in _ids(), inline.
        wanted = self._wanted
        best = 1 << 30
        cid: str | None = None
        causation = tenant = None
        for name, value in scope["headers"]:
            slot = wanted.get(name)
            if slot is None:
                continue
            if slot >= 0:
                if slot < best:
                    valid = _valid(value)
                    if valid is not None:
                        best, cid = slot, valid
            elif slot == -1:
                causation = _valid(value)
            else:
                tenant = _valid(value)
        if tenant is None and self._tenant_resolver is not None:
            tenant = self._resolve_tenant(scope)
        # An id generated here has the UUID4 form, which redaction never changes: the access
        # line can skip masking it.
        generated = None
        if cid is None:
            cid = generated = _fast_uuid4()
        t_cid = _cid_var.set(cid)
        # Usually both are absent and already unset: skip two set/reset pairs then.
        t_cause = _cause_var.set(causation) if causation is not None or _cause_var.get() is not None else None
        t_tenant = _tenant_var.set(tenant) if tenant is not None or _tenant_var.get() is not None else None
        method = _METHODS.get(scope["method"], OVERFLOW)
        scheme = _SCHEMES.get(scope.get("scheme", "http"), OVERFLOW)
        # meter.start(), inline: the middleware runs it on every request.
        meter = self.meter
        pairs = meter._active
        if pairs is not None:
            pair = pairs.get((method, scheme)) or meter.new_active(method, scheme)
            pair[0]()
            active = pair[1]
        else:
            active = None
        echo = (self._echo_header, cid.encode("ascii"))
        start = _perf()
        # Per-request state lives in these locals (closures), never on self.
        status = 0
        nbytes = 0
        done = False
        disconnected = False

        async def wrapped_receive() -> Any:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def wrapped_send(message: Any) -> None:
            nonlocal status, nbytes, done
            kind = message["type"]
            if kind == "http.response.body":
                nbytes += len(message.get("body", b""))
                if not message.get("more_body", False):
                    await send(message)
                    if not done:
                        done = True
                        self._finish(scope, generated, method, scheme, active, status, "", _perf() - start, nbytes)
                    return
            elif kind == "http.response.start":
                # A response begun after the client hung up reaches nobody: 499, as nginx says.
                status = 499 if disconnected else message["status"]
                headers = message.get("headers")
                message["headers"] = [*headers, echo] if headers else [echo]
            elif kind == "http.response.pathsend":
                # The server sends the file and completes the response (ASGI extension).
                await send(message)
                if not done:
                    done = True
                    self._finish(scope, generated, method, scheme, active, status, "", _perf() - start, nbytes)
                return
            await send(message)

        try:
            await self.app(scope, wrapped_receive, wrapped_send)
        except BaseException as exc:
            if done:
                # The response is complete (a BackgroundTask failed): log it once; the
                # server has nothing left to abort, re-raising would only print it again.
                if isinstance(exc, Exception):
                    self._log_unhandled(scope, exc)
                    return
                raise
            seconds = _perf() - start
            if not isinstance(exc, Exception):
                # Cancelled (client gone, server shutting down): nothing can be sent.
                done = True
                self._finish(scope, generated, method, scheme, active, 499, type(exc).__name__, seconds, nbytes)
                raise
            if disconnected or type(exc).__name__ == "ClientDisconnect":
                # The client left and the app noticed by failing: there is nobody to answer
                # and nothing went wrong on our side.
                done = True
                self._finish(scope, generated, method, scheme, active, 499, "", seconds, nbytes)
                return
            if status:
                # Headers are out: sending anything now would corrupt the response. The
                # server must abort the connection, so the exception goes on.
                self._log_unhandled(scope, exc)
                done = True
                self._finish(scope, generated, method, scheme, active, status, type(exc).__name__, seconds, nbytes)
                raise
            problem = problem_from_exception(exc, instance=scope.get("path"), correlation_id=cid)
            if problem.status >= 500:
                # HTTPError/HTTPException below 500 are answers, not failures: no stack trace.
                self._log_unhandled(scope, exc)
            scope[ERROR_SCOPE_KEY] = exc
            try:
                await send_problem(wrapped_send, problem)
            finally:
                if not done:
                    done = True
                    self._finish(scope, generated, method, scheme, active, problem.status, "", _perf() - start, nbytes)
        else:
            if not done:
                # The app returned without finishing a response: the client went away
                # (499) or the app is broken (500 on the server side).
                done = True
                self._finish(
                    scope, generated, method, scheme, active, 499 if disconnected else (status or 500),
                    "" if disconnected else "IncompleteResponse", _perf() - start, nbytes,
                )
        finally:
            if t_tenant is not None:
                _tenant_var.reset(t_tenant)
            if t_cause is not None:
                _cause_var.reset(t_cause)
            _cid_var.reset(t_cid)

    def _finish(self, scope: Scope, generated: str | None, method: str, scheme: str, active: Any, status: int,
                error_type: str, seconds: float, nbytes: int) -> None:
        route = self.routes.template(scope)
        if status >= 500 and not error_type:
            exc = scope.get(ERROR_SCOPE_KEY)
            error_type = type(exc).__name__ if exc is not None else str(status)
        # meter.finish(), inline.
        meter = self.meter
        children = meter._children
        if children is not None:
            active()
            key = (method, route, status, scheme, error_type)
            (children.get(key) or meter._new_child(key))(seconds)
        if self.route_observers:
            for observe in (*self.route_observers.get(route, ()), *self.route_observers.get("*", ())):
                observe(method, status, seconds)
        access = self._access
        if access is not None and scope["path"] not in self._skip:
            # Milliseconds to the microsecond: the same value as round(ms, 3) but for halves, without
            # round()'s decimal conversion.
            access(scope["method"], route, status, (seconds * 1_000_000.0 + 0.5) // 1 / 1000, nbytes, generated)

    async def _websocket(self, scope: Scope, receive: Any, send: Any) -> None:
        cid, causation, tenant = self._ids(scope)
        if cid is None:
            cid = _fast_uuid4()
        t_cid = context.correlation_id.set(cid)
        t_cause = context.causation_id.set(causation)
        t_tenant = context.tenant_id.set(tenant)
        meter = self.meter
        routes = self.routes
        opened: list[str] = []

        async def wrapped_send(message: Any) -> None:
            kind = message["type"]
            if kind == "websocket.accept" and not opened:
                route = routes.template(scope)
                meter.websocket_open(route)
                opened.append(route)
                headers = message.get("headers")
                echo = (self._echo_header, cid.encode("ascii"))
                message["headers"] = [*headers, echo] if headers else [echo]
            await send(message)

        try:
            await self.app(scope, receive, wrapped_send)
        except Exception as exc:
            self._log_unhandled(scope, exc)
            raise
        finally:
            if opened:
                meter.websocket_close(opened[0])
            context.tenant_id.reset(t_tenant)
            context.causation_id.reset(t_cause)
            context.correlation_id.reset(t_cid)
