"""Database URL helpers: one URL for sync and async use."""

from __future__ import annotations

from typing import Any

__all__ = ["async_url", "sync_url"]

_ASYNC = {"sqlite": "sqlite+aiosqlite", "sqlite+pysqlite": "sqlite+aiosqlite",
          "postgresql": "postgresql+psycopg", "postgresql+psycopg2": "postgresql+psycopg",
          "postgresql+asyncpg": "postgresql+asyncpg"}
_SYNC = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg",
         "postgresql": "postgresql+psycopg"}


def _split(url: Any) -> tuple[str, str]:
    text = str(url) if not hasattr(url, "render_as_string") else url.render_as_string(hide_password=False)
    scheme, sep, rest = text.partition("://")
    if not sep:
        from ..errors import ConfigurationError

        raise ConfigurationError(
            f"not a database URL: {text!r} (expected e.g. sqlite:///app.db or "
            "postgresql+psycopg://user@host/db)"
        )
    return scheme, rest


def async_url(url: Any) -> str:
    """The URL with an async driver (``sqlite+aiosqlite``, ``postgresql+psycopg``)."""
    scheme, rest = _split(url)
    return f"{_ASYNC.get(scheme, scheme)}://{rest}"


def sync_url(url: Any) -> str:
    """The URL with a sync driver (``sqlite``, ``postgresql+psycopg``)."""
    scheme, rest = _split(url)
    return f"{_SYNC.get(scheme, scheme)}://{rest}"
