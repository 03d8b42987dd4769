"""The protected admin endpoint for flags: list them, flip one, clear an override."""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

from .._core.extras import require
from ..errors import AuthenticationError, AuthorizationError, NotFoundError, ValidationError
from ..http import problem_response
from . import _flag, _store

__all__ = ["ADMIN_TOKEN_ENV", "admin_app"]

ADMIN_TOKEN_ENV = "SUREFOOT_FLAGS_ADMIN_TOKEN"
MAX_BODY = 4096


def admin_app(*, token: str | None = None, actor: str = "admin-endpoint") -> Any:
    """A Starlette app to mount, e.g. ``app.mount("/admin/flags", flags.admin_app())``.

    Every request needs ``Authorization: Bearer <token>`` (``token``, else the environment
    variable ``SUREFOOT_FLAGS_ADMIN_TOKEN``); with no token configured every request is
    refused with 403. Only flags declared in this process can be changed.

    Routes (relative to the mount point):

    * ``GET /`` → ``{"flags": [...]}`` (each as :meth:`Flag.describe`);
    * ``PUT /{name}`` with JSON ``{"enabled": true, "reason": "..."}`` → the flag;
    * ``DELETE /{name}`` → clears the override, returns the flag.

    Errors are ``application/problem+json``: 401 (missing or wrong token), 403 (no token
    configured), 404 (unknown flag), 400 (bad body, at most 4 KiB).
    """
    require("starlette", "fastapi")
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    configured = token if token is not None else os.environ.get(ADMIN_TOKEN_ENV, "")

    def check(request: Request) -> None:
        if not configured:
            raise AuthorizationError(f"the flags admin endpoint is disabled: set {ADMIN_TOKEN_ENV}")
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), configured.encode()):
            raise AuthenticationError("a valid 'Authorization: Bearer <token>' header is required for flags")

    def flag_of(request: Request) -> _flag.Flag:
        name = request.path_params["name"]
        try:
            return _flag.get_flag(name)
        except KeyError:
            raise NotFoundError(resource="Flag", identifier=name) from None

    def guarded(endpoint: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                check(request)
                response: Response = await endpoint(request)
                return response
            except (AuthenticationError, AuthorizationError, NotFoundError, ValidationError) as exc:
                problem: Response = problem_response(exc, instance=request.url.path)
                return problem
        return run

    async def list_flags(request: Request) -> Response:
        return JSONResponse({"flags": [f.describe() for f in _flag.declared().values()]})

    async def put_flag(request: Request) -> Response:
        flag = flag_of(request)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise ValidationError(f"the body must be at most {MAX_BODY} bytes")
        try:
            data = json.loads(body or b"null")
        except ValueError:
            raise ValidationError('the body must be JSON: {"enabled": true, "reason": "..."}') from None
        if not isinstance(data, dict) or not isinstance(data.get("enabled"), bool):
            raise ValidationError('"enabled" (true or false) is required', field="enabled")
        reason = data.get("reason", "")
        if not isinstance(reason, str) or len(reason) > _store.MAX_REASON:
            raise ValidationError(f'"reason" must be a string of at most {_store.MAX_REASON} characters',
                                  field="reason")
        await run_in_threadpool(
            _store.set_flag, flag.name, data["enabled"], actor=actor, reason=reason, source="admin"
        )
        return JSONResponse(flag.describe())

    async def delete_flag(request: Request) -> Response:
        flag = flag_of(request)
        await run_in_threadpool(_store.clear_flag, flag.name, actor=actor, reason="cleared", source="admin")
        return JSONResponse(flag.describe())

    return Starlette(routes=[
        Route("/", guarded(list_flags), methods=["GET"]),
        Route("/{name}", guarded(put_flag), methods=["PUT"]),
        Route("/{name}", guarded(delete_flag), methods=["DELETE"]),
    ])
