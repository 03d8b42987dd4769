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
4. unhandled exceptions rendered as RFC 9457 problems when the response has not started
   (or answered by the application's own ``500``/``Exception`` handler when it has one),
   logged once with their stack trace.

Every option is decided in ``__init__``: disabling metrics swaps in a no-op meter, so the
request path carries no metric work at all (the structlog habit: a disabled thing *is* a
no-op function).

This module is just over 600 lines on purpose: the request path is one coroutine per request
(no nested middleware calls), and its send wrapper, error rendering and finish step read best
in one place; the meter lives beside it because it is inlined there.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import structlog

from .. import context
from .._compat.prometheus import CountValue as _CountValue  # noqa: F401  (tests read it here)
from .._compat.prometheus import active_pair as _active_pair
from .._compat.prometheus import adder as _adder  # noqa: F401  (tests read it here)
from .._compat.prometheus import observer as _observer
from .._core import catalogue as cat
from .._core.callables import COROUTINE, callable_kind
from .._core.settings import Settings, get_settings
from ..errors import ConfigurationError
from ..logging import mask_pii, redact_secrets
from ..logging._setup import AccessLogger
from ..tracing._api import active_tracer, report_exception
from ..tracing._asgi import tracing_layer
from ..tracing._exemplars import exemplar_observer
from ._routes import RouteTemplates

__all__ = ["SurefootMiddleware", "OVERFLOW", "ERROR_SCOPE_KEY", "LOGGED_SCOPE_KEY", "app_error_handler", "log_unhandled"]

Scope = dict[str, Any]

OVERFLOW = "_OTHER"
#: Exception handlers store the exception they rendered here so metrics get ``error_type``.
ERROR_SCOPE_KEY = "surefoot.error"
#: Set once an unhandled exception was logged, so a fallback handler does not log it twice.
LOGGED_SCOPE_KEY = "surefoot.logged"

_METHODS = {m: m for m in cat.HTTP_METHODS}
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
    # Made _ID_BATCH at a time (one big random number, one hex conversion): a request only
    # pops one. A forked child drops the ids its parent made (see _drop_ids).
    try:
        return _ids_pop()
    except IndexError:
        return _more_ids()


_ID_BATCH = 64
_BATCH_CLEAR = sum(_UUID_CLEAR << (128 * i) for i in range(_ID_BATCH))
_BATCH_SET = sum(_UUID_SET << (128 * i) for i in range(_ID_BATCH))
# The batch's hex text cut into the 5 groups of each id (8-4-4-4-12), and the text those groups
# make joined with "-" cut into ids (36 characters, then the "-" between two ids): two C calls
# instead of a Python loop over the ids.
_ID_GROUPS = itemgetter(*(slice(i + a, i + b) for i in range(0, 32 * _ID_BATCH, 32)
                          for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))))
_ID_CUTS = itemgetter(*(slice(37 * k, 37 * k + 36) for k in range(_ID_BATCH)))
_ids: list[str] = []
_ids_pop = _ids.pop


def _more_ids() -> str:
    # (bytes.hex() is cheaper than "%032x" and pads the same way.)
    h = ((_getrandbits(128 * _ID_BATCH) & _BATCH_CLEAR) | _BATCH_SET).to_bytes(16 * _ID_BATCH, "big").hex()
    made = _ID_CUTS("-".join(_ID_GROUPS(h)))
    _ids.extend(made[1:])
    return made[0]  # type: ignore[no-any-return]


def _drop_ids() -> None:
    _ids.clear()


if hasattr(os, "register_at_fork"):
    # Workers forked after ids were made must not hand out their parent's (or each other's).
    os.register_at_fork(after_in_child=_drop_ids)


def _valid(raw: bytes) -> str | None:
    # context.valid_id on bytes, without a regex: 1-128 chars of A-Z a-z 0-9 . _ : -
    if 0 < len(raw) <= 128 and _ID_CHARS.issuperset(raw):
        return raw.decode("ascii")
    return None


def app_error_handler(app: Any) -> Any:
    """A Starlette application's own handler for ``500`` or ``Exception``, or ``None``.

    Starlette gives that handler to ``ServerErrorMiddleware`` (the last one registered wins,
    as there); surefoot's own ``Exception`` handler never shadows it.
    """
    found = None
    handlers = getattr(app, "exception_handlers", None)
    if isinstance(handlers, dict):
        for key, handler in handlers.items():
            if key in (500, Exception) and not getattr(handler, "_surefoot_handler", False):
                found = handler
    return found


def log_unhandled(scope: Scope, exc: BaseException) -> None:
    """Log an unhandled exception once, with its stack trace, and mark the scope."""
    scope[LOGGED_SCOPE_KEY] = exc
    report_exception(exc, scope=scope)  # Sentry, when set up
    structlog.get_logger("surefoot.http").error(
        "unhandled_exception",
        exc_info=exc,
        error_code="INTERNAL_ERROR",
        error_message=str(exc),
        error_type=type(exc).__name__,
        method=scope.get("method"),
        path=scope.get("path"),
    )


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

    # Never called (the request path checks _active/_children first); here so both meters
    # have one interface.
    def new_active(self, method: str, scheme: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
        return _nothing, _nothing

    def _new_child(self, key: tuple[str, str, int, str, str]) -> Callable[[float], None]:
        return _ignore


def _nothing() -> None:
    return None


def _ignore(value: float) -> None:
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
        child = self._duration.labels(method, capped_route, str(status), scheme, capped_error)
        observe = _observer(child)
        if active_tracer() is not None:  # observations in a sampled span carry its trace id
            observe = exemplar_observer(child, observe)
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


class _Exchange:
    """One HTTP request's state while the application answers it.

    One object with slots instead of a dozen closure cells and two closures per request
    (about 4 K fewer instructions per request, see docs/benchmarks.md). :meth:`send` and
    :meth:`receive` are what the application gets in place of the server's; :meth:`finish`
    records the response exactly once.
    """

    __slots__ = ("mw", "scope", "raw_receive", "raw_send", "generated", "method", "scheme", "active", "echo",
                 "start", "status", "nbytes", "done", "disconnected")

    mw: SurefootMiddleware
    scope: Scope
    raw_receive: Any
    raw_send: Any
    generated: str | None
    method: str
    scheme: str
    active: Any
    echo: tuple[bytes, bytes]
    start: float
    status: int
    nbytes: int
    done: bool
    disconnected: bool

    def finish(self, status: int, error_type: str = "", seconds: float | None = None) -> None:
        """Record the response (metrics, access line) unless it was already; ``seconds`` since start."""
        if not self.done:
            self.done = True
            self.mw._finish(self, status, error_type, _perf() - self.start if seconds is None else seconds)

    async def receive(self) -> Any:
        message = await self.raw_receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            self.nbytes += len(message.get("body", b""))
            if not message.get("more_body", False):
                await self.raw_send(message)
                self.finish(self.status)
                return
        elif kind == "http.response.start":
            # A response begun after the client hung up reaches nobody: 499, as nginx says.
            self.status = 499 if self.disconnected else message["status"]
            headers = message.get("headers")
            echo = self.echo
            message["headers"] = [*headers, echo] if headers else [echo]
        elif kind == "http.response.pathsend":
            # The server sends the file and completes the response (ASGI extension).
            await self.raw_send(message)
            self.finish(self.status)
            return
        await self.raw_send(message)


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
        error_handler: ``(request, exc) -> response`` (sync or async, Starlette's exception
            handler signature) that answers unexpected errors instead of the 500 problem
            document; ``surefoot.install`` passes the application's own ``500``/``Exception``
            handler. The handler of the Starlette application that served the request (a
            mounted application's own) comes first. Errors that map to a 4xx problem keep
            their problem. The exception is still logged once and counted; if the handler
            fails, that is logged and the problem is sent.

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
        error_handler: Callable[[Any, Exception], Any] | None = None,
    ) -> None:
        if not isinstance(max_label_values, int) or max_label_values < 1:
            raise ConfigurationError(f"max_label_values must be a positive integer; got {max_label_values!r}")
        buckets: set[float] = set(cat.HTTP_DURATION_BUCKETS)
        for bound in extra_buckets:
            if not isinstance(bound, (int, float)) or not bound > 0:
                raise ConfigurationError(f"extra_buckets must be positive seconds; got {bound!r}")
            buckets.add(float(bound))
        self.buckets = tuple(sorted(buckets))  # of http_server_request_duration_seconds
        self.settings = settings = settings if settings is not None else get_settings()
        self.metrics_enabled = settings.metrics_enabled if metrics_enabled is None else bool(metrics_enabled)
        self.registry = registry
        self.meter: _Meter | _NoMeter = (
            _Meter(registry, max_label_values, tuple(sorted(buckets))) if self.metrics_enabled else _NoMeter()
        )
        self.routes = RouteTemplates()
        # Tracing (own server span, or ids on FastAPI's/contrib's), decided here once; off: app as is.
        self.app = tracing_layer(app, self.routes, app)
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
        # Probes, the metrics endpoint and the docs routes are not traffic: no metric work.
        self._unmeasured = frozenset(settings.metrics_exclude_paths)
        self._access = AccessLogger("surefoot.access").write if access_log else None
        self._access_logger = structlog.get_logger("surefoot.access")
        self._max_path = settings.access_log_max_path
        self._log_client = settings.access_log_client
        self._log_user_agent = settings.access_log_user_agent
        # Every line needs more than the fixed fields: take the structlog chain each time.
        self._detailed = self._log_client or self._log_user_agent
        self._errors = structlog.get_logger("surefoot.http")
        #: answers unexpected errors instead of the problem document (see the class docs)
        self.error_handler = error_handler
        # exact path -> (route, route.handle) answered before the application (see serve_first)
        self._first: dict[str, tuple[Any, Any]] = {}

    def serve_first(self, routes: Sequence[Any]) -> None:
        """Answer requests for these routes' exact paths before the application sees them.

        ``surefoot.install`` registers the probe and metrics routes here: found with one dict
        lookup instead of being matched, ahead of the application's routes, on every request,
        and never shadowed by a catch-all route or blocked by user middleware. The routes
        keep everything else (ids, error bodies, access lines); they stay in the app's
        router too.

        Args:
            routes: Starlette ``Route`` objects with parameter-free paths.

        Raises:
            ConfigurationError: a route has path parameters or no ``handle``.
        """
        for route in routes:
            path = getattr(route, "path", None)
            handle = getattr(route, "handle", None)
            if not isinstance(path, str) or "{" in path or handle is None:
                raise ConfigurationError(f"serve_first needs routes with fixed paths; got {route!r}")
            self._first[path] = (route, handle)

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
                if causation is None:  # the first valid one, as for the correlation id
                    causation = _valid(value)
            elif tenant is None:
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

    def _skip_behind_root(self, full_path: str) -> None:
        # A skipped path reached behind a root_path (the server's --root-path): the access
        # line checks the full path, so remember it (a handful of paths per root path).
        if full_path not in self._skip and len(self._skip) < 1024:
            self._skip = self._skip | {full_path}

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
                if causation is None:  # the first valid one, as for the correlation id
                    causation = _valid(value)
            elif tenant is None:
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
        app = self.app
        path = scope["path"]
        first = self._first
        if first:
            root = scope.get("root_path")
            if root and path.startswith(root) and path[len(root):len(root) + 1] == "/":
                path = path[len(root):]  # what the router would match (behind a root path)
                if path in self._skip:
                    self._skip_behind_root(scope["path"])
            hit = first.get(path)
            if hit is not None:
                scope["route"] = hit[0]
                app = hit[1]
        # meter.start(), inline: the middleware runs it on every request.
        meter = self.meter
        pairs = meter._active
        if pairs is not None and path not in self._unmeasured:
            pair = pairs.get((method, scheme)) or meter.new_active(method, scheme)
            pair[0]()
            active = pair[1]
        else:
            active = None
        # Per-request state lives in one object made here (never on self): its send and
        # receive wrap the server's.
        x = _Exchange()
        x.mw = self
        x.scope = scope
        x.raw_receive = receive
        x.raw_send = send
        x.generated = generated
        x.method = method
        x.scheme = scheme
        x.active = active
        x.echo = (self._echo_header, cid.encode("ascii"))
        x.status = 0
        x.nbytes = 0
        x.done = False
        x.disconnected = False
        x.start = _perf()
        wrapped_send = x.send
        try:
            await app(scope, x.receive, wrapped_send)
        except BaseException as exc:
            if x.done:
                # The response is complete (a BackgroundTask failed): log it once; the
                # server has nothing left to abort, re-raising would only print it again.
                if isinstance(exc, Exception):
                    self._log_unhandled(scope, exc)
                    return
                raise
            seconds = _perf() - x.start
            if not isinstance(exc, Exception):
                # Cancelled (client gone, server shutting down): nothing can be sent.
                x.finish(499, type(exc).__name__, seconds)
                raise
            if x.disconnected or type(exc).__name__ == "ClientDisconnect":
                # The client left and the app noticed by failing: there is nobody to answer
                # and nothing went wrong on our side.
                x.finish(499, "", seconds)
                return
            if x.status:
                # Headers are out: sending anything now would corrupt the response. The
                # server must abort the connection, so the exception goes on.
                self._log_unhandled(scope, exc)
                x.finish(x.status, type(exc).__name__, seconds)
                raise
            from .._core.problem import problem_from_exception, send_problem  # the error path only

            problem = problem_from_exception(exc, instance=scope.get("path"), correlation_id=cid)
            if problem.status >= 500:
                # HTTPError/HTTPException below 500 are answers, not failures: no stack trace.
                self._log_unhandled(scope, exc)
            scope[ERROR_SCOPE_KEY] = exc
            answered = False
            try:
                handler = (app_error_handler(scope.get("app")) or self.error_handler) if problem.status >= 500 else None
                if handler is not None:
                    answered = await self._handler_answer(handler, scope, receive, wrapped_send, exc)
                    if not answered and x.status:
                        raise  # the handler failed after starting its response: abort it
                if not answered:
                    await send_problem(wrapped_send, problem)
            finally:
                x.finish(x.status if answered else problem.status)
        else:
            if not x.done:
                # The app returned without finishing a response: the client went away
                # (499) or the app is broken (500 on the server side).
                if x.disconnected:
                    x.finish(499)
                else:
                    x.finish(x.status or 500, "IncompleteResponse")
        finally:
            if t_tenant is not None:
                _tenant_var.reset(t_tenant)
            if t_cause is not None:
                _cause_var.reset(t_cause)
            _cid_var.reset(t_cid)

    async def _handler_answer(self, handler: Callable[[Any, Exception], Any], scope: Scope, receive: Any,
                              send: Any, exc: Exception) -> bool:
        """Send the response of ``handler`` for ``exc``; ``False`` when the handler failed."""
        from starlette.concurrency import run_in_threadpool
        from starlette.requests import Request

        try:
            request = Request(scope, receive)
            if callable_kind(handler) == COROUTINE:
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
            await response(scope, receive, send)
        except Exception as failure:
            self._errors.error(
                "error_handler_failed", error_code="ERROR_HANDLER_FAILED", error_message=str(failure),
                error_type=type(failure).__name__, exc_info=failure,
            )
            return False
        return True

    def _finish(self, x: _Exchange, status: int, error_type: str, seconds: float) -> None:
        scope = x.scope
        route = self.routes.template(scope)
        if status >= 500 and not error_type:
            exc = scope.get(ERROR_SCOPE_KEY)
            error_type = type(exc).__name__ if exc is not None else str(status)
        # meter.finish(), inline.
        meter = self.meter
        children = meter._children
        active = x.active
        if children is not None and active is not None:
            active()
            key = (x.method, route, status, x.scheme, error_type)
            (children.get(key) or meter._new_child(key))(seconds)
        if self.route_observers:
            for observe in (*self.route_observers.get(route, ()), *self.route_observers.get("*", ())):
                observe(x.method, status, seconds)
        access = self._access
        if access is not None and scope["path"] not in self._skip:
            # Milliseconds to the microsecond: the same value as round(ms, 3) but for halves, without
            # round()'s decimal conversion.
            ms = (seconds * 1_000_000.0 + 0.5) // 1 / 1000
            if route and not self._detailed:
                # The method as labelled (_OTHER beyond the known ones): a client's method
                # text is never written, however long.
                access(x.method, route, status, ms, x.nbytes, x.generated)
            else:
                self._access_detailed(scope, x.method, route, status, ms, x.nbytes)

    def _bounded(self, text: str) -> str:
        # Masked and redacted before it is cut, so the cut never leaves part of an address or
        # a secret readable (the chain masks the field again: a no-op on masked text). Text far
        # beyond the limit is dropped first: a client's long path costs a bounded amount of work.
        limit = self._max_path
        if len(text) > 2 * limit + 256:
            text = text[: 2 * limit + 256]
        text = mask_pii(redact_secrets(text))
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def _access_detailed(self, scope: Scope, method: str, route: str, status: int, ms: float, nbytes: int) -> None:
        """The access line with the fields the fixed line has not: through the structlog chain.

        An unmatched request (no route template) carries its path, cut to
        ``access_log_max_path`` characters and redacted like every field, so a burst of 404s
        can be told apart; the client address and user agent when the settings ask for them.
        """
        extra: dict[str, Any] = {}
        if not route:
            extra["path"] = self._bounded(scope.get("path") or "")
        if self._log_client:
            client = scope.get("client")
            extra["client"] = client[0] if client else None
        if self._log_user_agent:
            agent = None
            for name, value in scope["headers"]:
                if name == b"user-agent":
                    agent = self._bounded(value.decode("latin-1"))
                    break
            extra["user_agent"] = agent
        logger = self._access_logger
        log = logger.error if status >= 500 else logger.info
        log("http_request", method=method, route=route, status=status, latency_ms=ms, bytes=nbytes,
            **extra)

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
