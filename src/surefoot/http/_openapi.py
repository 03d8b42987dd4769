"""OpenAPI that tells the truth about surefoot's error bodies (RFC 9457 problem+json).

FastAPI documents a ``422`` with its own ``HTTPValidationError`` body on every operation that
takes input; with surefoot installed a validation error is a ``400 application/problem+json``
(unless ``validation_status=422``). :func:`problem_openapi` rewrites the generated document so
clients and contract-testing tools (schemathesis) see the responses the service really sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._core.problem import PROBLEM_CONTENT_TYPE
from ..errors import ConfigurationError

__all__ = ["PROBLEM_SCHEMA", "problem_openapi", "problem_responses"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details, as surefoot renders every error.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "correlation_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}

_DESCRIPTIONS = {
    400: "Invalid request (problem+json, with `errors` for validation failures)",
    401: "Authentication required or failed (problem+json)",
    403: "Not allowed (problem+json)",
    404: "Not found (problem+json)",
    409: "Conflict (problem+json)",
    413: "Request body too large (problem+json)",
    422: "Unprocessable (problem+json)",
    429: "Rate limited (problem+json, Retry-After)",
    500: "Internal error (problem+json, no stack trace)",
    503: "Unavailable (problem+json)",
}
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def _problem(status: int) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS.get(status, "Error (problem+json)"),
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a FastAPI route: each status documented as a problem+json body.

    ``@app.post("/x", responses=problem_responses(401, 409))``. Use with :func:`problem_openapi`,
    which adds the ``Problem`` schema the entries refer to.

    Raises:
        ConfigurationError: a status is not a 4xx/5xx code.
    """
    for status in statuses:
        if not 400 <= status <= 599:
            raise ConfigurationError(f"problem responses are 4xx or 5xx, got {status!r}")
    return {status: _problem(status) for status in statuses}


def problem_openapi(app: Any, *, validation_status: int = 400, always: Iterable[int] = (500,)) -> None:
    """Rewrite ``app``'s OpenAPI document for surefoot's error envelope.

    On every operation: FastAPI's ``422 HTTPValidationError`` becomes ``400`` problem+json
    (kept as 422 problem+json with ``validation_status=422``), each status in ``always`` is
    added as a problem+json response, and the ``Problem`` schema is registered. Runs once,
    when the document is first generated; call it after the routes are declared or before,
    either works.

    Args:
        app: a FastAPI application.
        validation_status: the status surefoot gives validation errors (400 or 422, as
            passed to :func:`surefoot.install`).
        always: statuses any operation can answer (default: 500).

    Raises:
        ConfigurationError: ``validation_status`` is not 400 or 422, or ``app`` has no
            ``openapi()`` method.
    """
    if validation_status not in (400, 422):
        raise ConfigurationError(f"validation_status must be 400 or 422; got {validation_status!r}")
    original = getattr(app, "openapi", None)
    if original is None:
        raise ConfigurationError("problem_openapi() needs a FastAPI application")
    extra = tuple(always)

    def openapi() -> dict[str, Any]:
        if getattr(app, "openapi_schema", None) and app.openapi_schema.get("x-surefoot-problems"):
            return app.openapi_schema  # type: ignore[no-any-return]
        schema = original()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                if method not in _METHODS or not isinstance(operation, dict):
                    continue
                responses = operation.setdefault("responses", {})
                if "422" in responses and "HTTPValidationError" in str(responses["422"]):
                    del responses["422"]
                    responses[str(validation_status)] = _problem(validation_status)
                for status in extra:
                    responses.setdefault(str(status), _problem(status))
        if "HTTPValidationError" not in str(schema.get("paths", {})):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        schema["x-surefoot-problems"] = True
        app.openapi_schema = schema
        return schema  # type: ignore[no-any-return]

    app.openapi = openapi
