"""The metrics endpoint: Prometheus text, OpenMetrics, or a JSON summary, behind auth.

A pure ASGI app (no framework needed). Content negotiation:

* ``?format=json`` → the JSON summary (seed 000 shape), whatever the ``Accept`` header says;
* otherwise the ``Accept`` media range with the highest ``q`` among ``application/json`` (the
  summary), ``application/openmetrics-text`` (OpenMetrics 1.0.0, what Prometheus asks for
  first) and ``text/plain`` (Prometheus text 0.0.4, or 1.0.0 when that version is asked for);
  on a tie the one listed first, a wildcard (``*/*``) counting as Prometheus text after the
  explicit ranges. ``q=0``, versions this endpoint cannot produce and malformed ranges are
  ignored;
* anything else (no ``Accept``, ``text/html``) → Prometheus text format 0.0.4.

Protection (seed 004 §7): an IP allow-list (CIDR networks, checked against the ASGI client
address — behind a proxy that is the proxy's, so put the list on the proxy or configure the
server's forwarded-IP handling) answers 403 to others; HTTP basic auth answers 401 with a
``WWW-Authenticate`` challenge. When both are configured both must pass.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import math
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs

import orjson

from .._core.settings import Settings, get_settings
from .._core.state import default_registry
from ..errors import ConfigurationError
from . import multiprocess
from ._summary import summary

__all__ = ["metrics_app", "MetricsApp"]

_JSON = "application/json"
_OPENMETRICS = "application/openmetrics-text"
_TEXT = "text/plain"
_WILDCARDS = frozenset({"*/*", "text/*", "application/*"})
# The OpenMetrics and text versions prometheus_client writes, and the escapings it knows.
_OPENMETRICS_VERSIONS = frozenset({"", "1.0.0"})
_TEXT_VERSIONS = frozenset({"", "0.0.4", "1.0.0"})
_ESCAPINGS = frozenset({"underscores", "allow-utf-8", "dots", "values"})


class _Union:
    """Collect several registries as one, each family once (the first registry wins)."""

    def __init__(self, registries: Sequence[Any]) -> None:
        self._registries = registries

    def collect(self) -> Iterable[Any]:
        seen: set[str] = set()
        for registry in self._registries:
            for family in registry.collect():
                if family.name in seen:
                    continue
                seen.add(family.name)
                yield family


def _networks(values: Iterable[str] | str) -> tuple[Any, ...]:
    if isinstance(values, str):  # "10.0.0.0/8,127.0.0.1", as in SUREFOOT_METRICS_ALLOW_IPS
        values = [part for part in values.split(",") if part.strip()]
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ConfigurationError(
                f"metrics allow-list entry {value!r} is not an IP address or CIDR network "
                "(e.g. 10.0.0.0/8 or 127.0.0.1)"
            ) from None
    return tuple(networks)


class MetricsApp:
    """ASGI app serving the metrics of ``registries``; see :func:`metrics_app`."""

    def __init__(
        self,
        *,
        registries: Sequence[Any] | None,
        settings: Settings,
        username: str | None,
        password: str | None,
        allow_ips: Sequence[str] | str | None,
        mode: str | None,
    ) -> None:
        if registries is None:
            registries = [default_registry()]
        elif hasattr(registries, "collect"):  # one registry rather than a list of them
            registries = [registries]
        unique: list[Any] = []
        for registry in registries:
            if not callable(getattr(registry, "collect", None)):
                raise ConfigurationError(
                    "metrics_app(registries=...) takes a list of prometheus_client registries "
                    f"(objects with collect()); got {registry!r} in it"
                )
            if all(registry is not seen for seen in unique):
                unique.append(registry)
        self.registries = tuple(unique)
        self.settings = settings
        username = username if username is not None else settings.metrics_username
        password = password if password is not None else settings.metrics_password
        if password is not None and not password.strip():
            raise ConfigurationError(
                "the metrics password is empty: an empty password protects nothing; give a "
                "non-empty one (SUREFOOT_METRICS_PASSWORD) or no basic auth at all"
            )
        if (username is None) != (password is None):
            raise ConfigurationError(
                "metrics basic auth needs both a username and a password "
                "(SUREFOOT_METRICS_USERNAME and SUREFOOT_METRICS_PASSWORD)"
            )
        if username is not None and ":" in username:
            raise ConfigurationError(
                f"the metrics username {username!r} contains ':', which HTTP basic auth uses to "
                "separate it from the password (RFC 7617); choose a username without ':'"
            )
        self._credentials = (
            b"Basic " + base64.b64encode(f"{username}:{password}".encode()) if username is not None else None
        )
        self._networks = _networks(allow_ips if allow_ips is not None else settings.metrics_allow_ips)
        self._mode = mode

    def _registry(self) -> Any:
        if multiprocess.directory() is not None and multiprocess.is_active():
            # Every worker's values live in the files; the in-process registries add only
            # families the files cannot hold (custom collectors computed at scrape time).
            return _Union([multiprocess.registry(), *self.registries])
        if len(self.registries) == 1:
            return self.registries[0]
        return _Union(self.registries)

    def _allowed(self, scope: dict[str, Any]) -> bool:
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except (TypeError, ValueError):
            return False
        # A dual-stack socket reports an IPv4 client as ::ffff:a.b.c.d.
        mapped = getattr(address, "ipv4_mapped", None)
        return any(address in network or (mapped is not None and mapped in network) for network in self._networks)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        supplied = headers.get(b"authorization", b"")
        expected = self._credentials or b""
        try:
            # The scheme in any case, the token re-encoded: compared as canonical base64.
            scheme, _, token = supplied.partition(b" ")
            decoded = base64.b64decode(token.strip(), validate=True)
            normalised = b"Basic " + base64.b64encode(decoded)
        except (binascii.Error, ValueError):
            return False
        return scheme.lower() == b"basic" and hmac.compare_digest(normalised, expected)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
                return
            if scope["type"] == "websocket":  # a client's choice, not a server error: refuse it
                await receive()
                await send({"type": "websocket.close", "code": 1008})
                return
            raise ConfigurationError(f"the metrics endpoint serves HTTP only; got a {scope['type']!r} scope")
        from .._core.problem import problem_from_status, send_problem

        headers = dict(scope.get("headers") or ())
        path = scope.get("path")
        if scope.get("method") not in ("GET", "HEAD"):
            await send_problem(send, problem_from_status(
                405, "The metrics endpoint answers GET only.", instance=path, headers={"Allow": "GET, HEAD"}
            ))
            return
        if self._networks and not self._allowed(scope):
            await send_problem(send, problem_from_status(
                403, "This address may not read metrics.", instance=path
            ))
            return
        if self._credentials is not None and not self._authorized(headers):
            await send_problem(send, problem_from_status(
                401, "Metrics need HTTP basic credentials.", instance=path,
                headers={"WWW-Authenticate": 'Basic realm="metrics", charset="UTF-8"'},
            ))
            return
        # Several Accept fields are one comma-separated list (RFC 9110 §5.3).
        accept = b",".join(v for k, v in scope.get("headers") or () if k == b"accept").decode("latin-1")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        registry = self._registry()
        chosen = "json" if query.get("format", [""])[0] == "json" else negotiate(accept)
        if chosen == "json":
            mode = self._mode or ("multiprocess" if multiprocess.is_active() else "standalone")
            body = orjson.dumps(summary(registry, module=self.settings.service_name, mode=mode))
            content_type = _JSON
        else:
            from prometheus_client.exposition import choose_encoder

            # prometheus_client gets only a well-formed range it can serve (it fails on a
            # malformed version and would echo any version into the content type).
            encoder, content_type = choose_encoder(chosen)
            body = encoder(registry)
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"cache-control", b"no-store"),
            ],
        })
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})


def _quality(value: str | None) -> float:
    if value is None:
        return 1.0
    try:
        q = float(value)
    except ValueError:
        return -1.0
    return q if math.isfinite(q) and 0.0 <= q <= 1.0 else -1.0


def negotiate(accept: str) -> str:
    """Choose the answer for an ``Accept`` header.

    Returns:
        ``"json"`` for the summary, else the one media range to hand to prometheus_client's
        encoder choice: ``""`` (Prometheus text 0.0.4), ``"application/openmetrics-text"``
        (OpenMetrics 1.0.0, no escaping parameter), or a range with ``version=1.0.0`` and a
        known ``escaping``. Never raises, whatever the header holds.
    """
    best: tuple[float, int, int] | None = None  # (q, explicit, -position)
    answer = ""
    for position, part in enumerate(accept.split(",")):
        media, _, rest = part.partition(";")
        media = media.strip().lower()
        explicit = media in (_JSON, _OPENMETRICS, _TEXT)
        if not explicit and media not in _WILDCARDS:
            continue
        params: dict[str, str] = {}
        for param in rest.split(";"):
            key, sep, value = param.partition("=")
            if sep:
                params.setdefault(key.strip().lower(), value.strip().strip('"'))
        q = _quality(params.get("q"))
        if q <= 0.0:
            continue
        version = params.get("version", "")
        escaping = params.get("escaping", "underscores")
        if escaping not in _ESCAPINGS:
            escaping = "underscores"
        if media == _JSON:
            candidate = "json"
        elif media == _OPENMETRICS:
            if version not in _OPENMETRICS_VERSIONS:
                continue
            candidate = f"{_OPENMETRICS}; version=1.0.0; escaping={escaping}" if version else _OPENMETRICS
        elif media == _TEXT:
            if version not in _TEXT_VERSIONS:
                continue
            candidate = f"{_TEXT}; version=1.0.0; escaping={escaping}" if version == "1.0.0" else ""
        else:
            candidate = ""
        rank = (q, int(explicit), -position)
        if best is None or rank > best:
            best, answer = rank, candidate
    return answer


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def metrics_app(
    registries: Sequence[Any] | None = None,
    settings: Settings | None = None,
    username: str | None = None,
    password: str | None = None,
    allow_ips: Sequence[str] | str | None = None,
    *,
    mode: str | None = None,
) -> MetricsApp:
    """Return an ASGI app serving metrics (mount it at ``settings.metrics_path``).

    Args:
        registries: registries to expose, each family once (first wins); one registry may be
            passed alone. Default: the process default registry
            (:func:`surefoot._core.state.default_registry`), where domain metrics live;
            pass ``[app_registry, default_registry()]`` to add an application's own
            registry. In multi-process mode the workers' aggregated values come first.
        settings: surefoot settings (default: :func:`surefoot.get_settings`); supply the
            credentials and allow-list when the arguments below are ``None``.
        username / password: HTTP basic auth credentials (both or neither).
        allow_ips: addresses or CIDR networks allowed to scrape (a list, or one string of
            comma-separated entries); others get 403.
        mode: ``mode`` reported by the JSON summary (default: ``standalone``, or
            ``multiprocess`` when workers share a directory).

    Returns:
        The ASGI application.

    Raises:
        ConfigurationError: only one of username/password, an empty password, a username
            containing ``:``, a bad allow-list entry, or a registry without ``collect()``.
    """
    return MetricsApp(
        registries=registries,
        settings=settings if settings is not None else get_settings(),
        username=username,
        password=password,
        allow_ips=allow_ips,
        mode=mode,
    )
