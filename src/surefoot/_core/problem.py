"""RFC 9457 problem documents for every error a service can produce.

One function, :func:`problem_from_exception`, turns any exception into a :class:`Problem`
(status, body, headers); the ASGI sender and the Starlette response helpers are thin
wrappers around it, so the middleware, the exception handlers, the metrics endpoint, the
webhook inbox (401) and the rate limiter (429) all render errors the same way.

A stack trace never reaches a body: unknown exceptions become a generic 500 whose detail
tells the caller to quote the correlation id.
"""

from __future__ import annotations

import http
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import context
from ..errors import HTTPError

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "Problem",
    "problem_from_exception",
    "problem_from_status",
    "send_problem",
    "problem_response",
    "code_for_status",
    "json_bytes",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
_CONTENT_TYPE_HEADER = (b"content-type", PROBLEM_CONTENT_TYPE.encode("ascii"))

INTERNAL_DETAIL = "An unexpected error occurred. Quote the correlation id when reporting it."

# Codes for statuses raised as plain HTTPException, aligned with surefoot's own error classes
# so that a 401 from FastAPI's security helpers and one from AuthenticationError look alike.
_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "AUTHENTICATION_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "CONTENT_TOO_LARGE",
    422: "UNPROCESSABLE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "EXTERNAL_SERVICE_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def json_bytes(value: Any) -> bytes:
    """``value`` as JSON bytes, whatever it holds: an error body must never fail to render.

    Objects JSON has no form for become their ``str``, dict keys that are not strings
    (``{1: "a"}``) are written as strings, and integers beyond 64 bits are written exactly.
    """
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits, a key orjson cannot write (a tuple)
        import json

        return json.dumps(_plain(value), default=str, ensure_ascii=False, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    # What orjson does, for the stdlib encoder: string keys, and null for NaN and infinities.
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def code_for_status(status: int) -> str:
    """Return the stable machine-readable code used for a bare HTTP status.

    Args:
        status: an HTTP status code.

    Returns:
        ``NOT_FOUND`` for 404 and so on; the upper-snake reason phrase for other known
        statuses; ``HTTP_<status>`` for unknown ones.
    """
    code = _CODES.get(status)
    if code is not None:
        return code
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP_{status}"
    return "".join(c if c.isalnum() else "_" for c in phrase.upper())


def _header_values(headers: Mapping[str, Any] | None) -> dict[str, str]:
    # An error response must always be sendable: a header value that HTTP cannot carry (not
    # latin-1, or a line break) would fail the response and lose the problem; those
    # characters become "?".
    out = {}
    for name, value in (headers or {}).items():
        text = str(value)
        if not (text.isascii() and text.isprintable()):
            text = "".join(c if " " <= c <= "~" or "\xa0" <= c <= "\xff" else "?" for c in text)
        out[name] = text
    return out


def _title(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass(frozen=True)
class Problem:
    """A rendered problem: what to send, before serialisation.

    Attributes:
        status: the HTTP status code.
        body: the RFC 9457 members (``type``, ``title``, ``status``, ``detail``,
            ``instance``, ``code``, ``correlation_id`` and optionally ``errors``).
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``, ...); characters
            a header cannot carry (beyond latin-1, line breaks) are ``?``.
    """

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        """Return the body as JSON bytes (values JSON cannot represent become strings)."""
        return json_bytes(self.body)

    def raw_headers(self, content_length: int) -> list[tuple[bytes, bytes]]:
        """Return ASGI headers for this problem, including content type and length."""
        headers = [_CONTENT_TYPE_HEADER, (b"content-length", str(content_length).encode("ascii"))]
        for name, value in self.headers.items():
            lowered = name.lower()
            if lowered in ("content-type", "content-length"):
                continue
            headers.append((lowered.encode("latin-1"), str(value).encode("latin-1")))
        return headers


def problem_from_status(
    status: int,
    detail: str | None = None,
    *,
    code: str | None = None,
    instance: str | None = None,
    correlation_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: Iterable[Mapping[str, Any]] | None = None,
) -> Problem:
    """Build a problem from a bare status (metrics endpoint 401/403, webhook 401, ...).

    Args:
        status: the HTTP status code.
        detail: human-readable explanation; the reason phrase when omitted.
        code: machine-readable code; derived from ``status`` when omitted.
        instance: URI reference of this occurrence, usually the request path.
        correlation_id: defaults to the id bound in the current context.
        headers: extra response headers.
        errors: field-level problems.

    Returns:
        The :class:`Problem`.
    """
    title = _title(status)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail if detail is not None else title,
        "instance": instance,
        "code": code or code_for_status(status),
        "correlation_id": correlation_id if correlation_id is not None else context.correlation_id.get(),
    }
    if errors is not None:
        body["errors"] = list(errors)
    return Problem(status, body, _header_values(headers))


def _validation_errors(raw: Iterable[Any]) -> list[dict[str, Any]]:
    # Only loc/msg/type: pydantic's ``input`` and ``ctx`` may echo large or sensitive
    # values and exception objects; clients need to know where and what, not their data.
    out = []
    for item in raw:
        if isinstance(item, Mapping):
            loc = item.get("loc")
            loc = () if loc is None else loc
            # A hand-built error may name its location as one string ("body") or a bare value:
            # one part (not its letters), and never a failure to render.
            parts = [loc] if isinstance(loc, (str, bytes)) or not isinstance(loc, Iterable) else list(loc)
            entry: dict[str, Any] = {"loc": parts, "msg": str(item.get("msg", ""))}
            if "type" in item:
                entry["type"] = item["type"]
            out.append(entry)
        else:
            out.append({"loc": [], "msg": str(item)})
    return out


def problem_from_exception(
    exc: BaseException,
    *,
    instance: str | None = None,
    correlation_id: str | None = None,
    validation_status: int = 400,
) -> Problem:
    """Turn any exception into a :class:`Problem`; never includes a stack trace.

    Handles :class:`surefoot.errors.HTTPError` (and subclasses, honouring ``.headers``),
    FastAPI's ``RequestValidationError`` (``validation_status`` with ``errors``, code
    ``VALIDATION_ERROR``), Starlette/FastAPI ``HTTPException`` (status, detail and headers
    kept) and anything else (500 ``INTERNAL_ERROR`` with a generic detail).

    Args:
        exc: the exception.
        instance: URI reference of this occurrence, usually the request path.
        correlation_id: defaults to the id bound in the current context.
        validation_status: status for request validation errors (400 by default, as
            surefoot's own :class:`~surefoot.errors.ValidationError`; 422 is FastAPI's).

    Returns:
        The :class:`Problem`.
    """
    if correlation_id is None:
        correlation_id = context.correlation_id.get()
    if isinstance(exc, HTTPError):
        body = exc.problem(instance=instance, correlation_id=correlation_id)
        return Problem(exc.status, body, _header_values(exc.headers))
    kind = type(exc)
    names = {cls.__name__ for cls in kind.__mro__}
    if "RequestValidationError" in names or "WebSocketRequestValidationError" in names:
        errors_fn = getattr(exc, "errors", None)
        raw = errors_fn() if callable(errors_fn) else []
        return problem_from_status(
            validation_status,
            "The request is not valid; see errors for each problem.",
            code="VALIDATION_ERROR",
            instance=instance,
            correlation_id=correlation_id,
            errors=_validation_errors(raw),
        )
    if "HTTPException" in names and isinstance(getattr(exc, "status_code", None), int):
        status: int = exc.status_code  # type: ignore[attr-defined]
        detail = getattr(exc, "detail", None)
        problem = problem_from_status(
            status,
            detail if isinstance(detail, str) else None,
            instance=instance,
            correlation_id=correlation_id,
            headers=getattr(exc, "headers", None),
        )
        if detail is not None and not isinstance(detail, str):
            problem.body["details"] = detail
        return problem
    return problem_from_status(
        500, INTERNAL_DETAIL, code="INTERNAL_ERROR", instance=instance, correlation_id=correlation_id
    )


Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def send_problem(send: Send, problem: Problem) -> None:
    """Send ``problem`` as a complete ASGI HTTP response through ``send``.

    Only call this before ``http.response.start`` was sent.
    """
    content = problem.content()
    await send(
        {"type": "http.response.start", "status": problem.status, "headers": problem.raw_headers(len(content))}
    )
    await send({"type": "http.response.body", "body": content, "more_body": False})


def problem_response(
    exc: BaseException | int,
    *,
    instance: str | None = None,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    validation_status: int = 400,
) -> Any:
    """Return a Starlette ``Response`` with the problem document for ``exc``.

    Args:
        exc: an exception (see :func:`problem_from_exception`) or a bare status code.
        instance: URI reference of this occurrence, usually ``request.url.path``.
        detail: explanation when ``exc`` is a status code.
        headers: extra headers (merged over the exception's own).
        validation_status: status for request validation errors.

    Returns:
        A ``starlette.responses.Response`` with ``application/problem+json``.

    Raises:
        MissingExtraError: Starlette is not installed.
    """
    from .extras import require

    responses = require("starlette.responses", "fastapi")
    if isinstance(exc, int):
        problem = problem_from_status(exc, detail, instance=instance)
    else:
        problem = problem_from_exception(exc, instance=instance, validation_status=validation_status)
    merged = dict(problem.headers)
    if headers:
        merged.update(_header_values(headers))
    return responses.Response(
        problem.content(), status_code=problem.status, headers=merged, media_type=PROBLEM_CONTENT_TYPE
    )
