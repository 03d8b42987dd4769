"""Request context carried by every log line, error body, outbox event and outbound call.

The values live in :mod:`contextvars`, so asyncio tasks spawned by a handler, thread-pool
calls (``asyncio.to_thread``, Starlette's ``run_in_threadpool``) and ``BackgroundTasks``
see the ids of the request that started them.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import Any

__all__ = [
    "correlation_id",
    "causation_id",
    "tenant_id",
    "get_correlation_id",
    "get_causation_id",
    "get_tenant_id",
    "current",
    "bind",
    "bound",
    "new_id",
    "valid_id",
]

correlation_id: ContextVar[str | None] = ContextVar("surefoot_correlation_id", default=None)
causation_id: ContextVar[str | None] = ContextVar("surefoot_causation_id", default=None)
tenant_id: ContextVar[str | None] = ContextVar("surefoot_tenant_id", default=None)

_VARS = {"correlation_id": correlation_id, "causation_id": causation_id, "tenant_id": tenant_id}
_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}\Z")

get_correlation_id = correlation_id.get
get_causation_id = causation_id.get
get_tenant_id = tenant_id.get


def new_id() -> str:
    """Return a fresh correlation id (a UUID4 in hex-with-dashes form)."""
    return str(uuid.uuid4())


def valid_id(value: str | None) -> bool:
    """True when ``value`` is an acceptable id: 1–128 of ``A-Z a-z 0-9 . _ : -``."""
    return value is not None and _ID_RE.match(value) is not None


def current() -> dict[str, str]:
    """Return the ids bound in this context, leaving out the unset ones."""
    out = {}
    for name, var in _VARS.items():
        value = var.get()
        if value is not None:
            out[name] = value
    return out


def bind(**values: str | None) -> dict[str, Token[Any]]:
    """Bind ``correlation_id``, ``causation_id`` and/or ``tenant_id``; return reset tokens."""
    tokens = {}
    for name, value in values.items():
        var = _VARS.get(name)
        if var is None:
            raise TypeError(f"unknown context field {name!r}; expected one of {sorted(_VARS)}")
        tokens[name] = var.set(value)
    return tokens


@contextlib.contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Bind ids for the duration of a ``with`` block (workers, tests, scripts)."""
    tokens = bind(**values)
    try:
        yield
    finally:
        for name, token in tokens.items():
            _VARS[name].reset(token)
