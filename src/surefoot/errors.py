"""The exception tree of surefoot.

Every exception surefoot raises derives from :class:`SurefootError`::

    SurefootError
    ├── ConfigurationError          (also ValueError) a setting or argument is wrong; fix it
    ├── MissingExtraError           (also ImportError) install the named extra
    └── HTTPError                   rendered as RFC 9457 application/problem+json
        ├── ValidationError                 400  VALIDATION_ERROR
        ├── AuthenticationError             401  AUTHENTICATION_REQUIRED
        ├── AuthorizationError              403  FORBIDDEN
        ├── NotFoundError                   404  NOT_FOUND
        ├── ConflictError                   409  CONFLICT
        ├── UnprocessableError              422  UNPROCESSABLE
        ├── RateLimitError                  429  RATE_LIMITED (sets Retry-After)
        ├── ExternalServiceError            502  EXTERNAL_SERVICE_ERROR
        └── ServiceUnavailableError         503  SERVICE_UNAVAILABLE (may set Retry-After)

Areas add their own subclasses next to the code that raises them (for example
``surefoot.resilience.CircuitOpenError`` derives from :class:`ServiceUnavailableError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "SurefootError",
    "ConfigurationError",
    "MissingExtraError",
    "HTTPError",
    "ValidationError",
    "AuthenticationError",
    "AuthorizationError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableError",
    "RateLimitError",
    "ExternalServiceError",
    "ServiceUnavailableError",
]


class SurefootError(Exception):
    """Root of every exception raised by surefoot."""


class ConfigurationError(SurefootError, ValueError):
    """A setting or argument has a value surefoot cannot use; the message says how to fix it."""


class MissingExtraError(SurefootError, ImportError):
    """An optional backend is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{module!r} is not installed; install it with: pip install 'surefoot[{extra}]'"
        )


def _retry_after_header(seconds: Any) -> str:
    """``Retry-After`` for a delay in seconds: whole seconds, rounded up, never negative."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(seconds, bool) or not math.isfinite(value):
        raise ConfigurationError(f"retry_after must be a finite number of seconds; got {seconds!r}")
    return str(max(0, math.ceil(value)))


class HTTPError(SurefootError):
    """An error with an HTTP meaning, rendered as an RFC 9457 problem document.

    Args:
        detail: a human-readable explanation specific to this occurrence.
        code: a stable, machine-readable code (defaults to the class's).
        title: a short summary of the problem type (defaults to the class's).
        errors: field-level problems, each a mapping with at least ``loc`` and ``msg``.
        headers: extra response headers.
        extra: additional members for the problem body (``details`` in the seed 002 form).
    """

    status: ClassVar[int] = 500
    code: str = "INTERNAL_ERROR"
    title: str = "Internal Server Error"
    type_uri: ClassVar[str] = "about:blank"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        title: str | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.detail = detail if detail is not None else self.title
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.errors = list(errors) if errors is not None else None
        self.headers: dict[str, str] = dict(headers or {})
        self.extra = extra
        super().__init__(self.detail)

    def problem(self, *, instance: str | None = None, correlation_id: str | None = None) -> dict[str, Any]:
        """Return the RFC 9457 body for this error (without a stack trace, ever)."""
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            "code": self.code,
            "correlation_id": correlation_id,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        if self.extra:
            body["details"] = self.extra
        return body


class ValidationError(HTTPError):
    """The request is malformed or fails validation (400)."""

    status = 400
    code = "VALIDATION_ERROR"
    title = "Bad Request"

    def __init__(self, detail: str | None = None, *, field: str | None = None, **kwargs: Any) -> None:
        if field is not None and "errors" not in kwargs:
            # loc, msg and type, as the entries of a request validation error
            kwargs["errors"] = [{"loc": [field], "msg": detail or "invalid value", "type": "value_error"}]
        super().__init__(detail, **kwargs)


class AuthenticationError(HTTPError):
    """Credentials are missing or invalid (401)."""

    status = 401
    code = "AUTHENTICATION_REQUIRED"
    title = "Unauthorized"


class AuthorizationError(HTTPError):
    """The caller is known but not allowed to do this (403)."""

    status = 403
    code = "FORBIDDEN"
    title = "Forbidden"


class NotFoundError(HTTPError):
    """The resource does not exist (404).

    Args:
        detail: explanation; built from ``resource`` and ``identifier`` when omitted.
        resource: the kind of resource, e.g. ``"Customer"``.
        identifier: the identifier that was looked up.
    """

    status = 404
    code = "NOT_FOUND"
    title = "Not Found"

    def __init__(
        self,
        detail: str | None = None,
        *,
        resource: str | None = None,
        identifier: Any = None,
        **kwargs: Any,
    ) -> None:
        if detail is None and resource is not None:
            detail = f"{resource} not found" + (f": {identifier}" if identifier is not None else "")
        if resource is not None:
            kwargs.setdefault("resource", resource)
        if identifier is not None:
            kwargs.setdefault("identifier", str(identifier))
        super().__init__(detail, **kwargs)


class ConflictError(HTTPError):
    """The request conflicts with the current state of the resource (409)."""

    status = 409
    code = "CONFLICT"
    title = "Conflict"


class UnprocessableError(HTTPError):
    """The request is well-formed but cannot be processed (422)."""

    status = 422
    code = "UNPROCESSABLE"
    title = "Unprocessable Content"


class RateLimitError(HTTPError):
    """Too many requests (429); ``retry_after`` seconds become the ``Retry-After`` header."""

    status = 429
    code = "RATE_LIMITED"
    title = "Too Many Requests"

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers.setdefault("Retry-After", _retry_after_header(retry_after))


class ExternalServiceError(HTTPError):
    """A dependency failed (502).

    Args:
        detail: explanation.
        service: the name of the dependency, e.g. ``"twilio"``.
    """

    status = 502
    code = "EXTERNAL_SERVICE_ERROR"
    title = "Bad Gateway"

    def __init__(self, detail: str | None = None, *, service: str | None = None, **kwargs: Any) -> None:
        if service is not None:
            kwargs.setdefault("service", service)
        super().__init__(detail, **kwargs)


class ServiceUnavailableError(HTTPError):
    """The service cannot handle the request now (503); ``retry_after`` sets ``Retry-After``."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
    title = "Service Unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers.setdefault("Retry-After", _retry_after_header(retry_after))
