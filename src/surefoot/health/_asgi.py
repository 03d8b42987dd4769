"""Pure-ASGI endpoints for ``/livez``, ``/readyz`` and ``/health``."""

from __future__ import annotations

from typing import Any, Literal

import orjson

from ._health import Health

__all__ = ["HealthEndpoint", "health_routes"]

Kind = Literal["livez", "readyz", "health"]
_HEADERS_BASE = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
]


class HealthEndpoint:
    """One probe endpoint as an ASGI application (GET and HEAD).

    Args:
        health: the :class:`Health` to report.
        kind: ``livez`` (liveness), ``readyz`` (readiness) or ``health`` (full report).
    """

    __slots__ = ("health", "kind")

    def __init__(self, health: Health, kind: Kind) -> None:
        if kind not in ("livez", "readyz", "health"):
            raise ValueError(f"kind must be livez, readyz or health; got {kind!r}")
        self.health = health
        self.kind = kind

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _send(
                send, 405, {"status": "method_not_allowed"}, head=False,
                extra=[(b"allow", b"GET, HEAD")],
            )
            return
        health = self.health
        if self.kind == "livez":
            ok, body = health.liveness()
            status = 200 if ok else 503
        elif self.kind == "readyz":
            ok, body = await health.readiness()
            status = 200 if ok else 503
        else:
            status, body = await health.report()
        await _send(send, status, body, head=method == "HEAD")


async def _send(
    send: Any,
    status: int,
    body: dict[str, Any],
    *,
    head: bool,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    try:
        payload = orjson.dumps(body)
    except TypeError:  # a check's details may hold anything (int keys, big integers, objects)
        from .._core.problem import json_bytes

        payload = json_bytes(body)
    headers = [*_HEADERS_BASE, (b"content-length", str(len(payload)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else payload})


def health_routes(health: Health, *, prefix: str = "") -> list[Any]:
    """Starlette routes for the three endpoints (``{prefix}/livez`` ...), hidden from OpenAPI.

    Raises:
        MissingExtraError: Starlette is not installed (extra ``fastapi``).
    """
    from .._core.extras import require

    routing = require("starlette.routing", "fastapi")
    return [
        routing.Route(
            f"{prefix}/{kind}", HealthEndpoint(health, kind), methods=["GET", "HEAD"],
            include_in_schema=False,
        )
        for kind in ("livez", "readyz", "health")
    ]
