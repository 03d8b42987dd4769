"""What every ``surefoot`` command shares: ``--url``, ages with units, confirmation, and errors.

* ``--url`` (default: ``SUREFOOT_DATABASE_URL``, else the settings' embedded SQLite file)
  is the one spelling of the database option in every command group.
* Ages are written with a unit: ``90s``, ``15m``, ``12h``, ``30d``, ``2w`` (``--older-than``).
* Destructive commands ask for confirmation; ``--yes`` / ``-y`` skips it.
* Expected failures print one line that says what to do and exit with status 1 (2 for usage
  errors): a database whose tables were never created ("run `surefoot outbox migrate`"),
  a malformed URL, a database that cannot be reached, a missing driver or extra (named).
  Nothing else is caught: a bug keeps its traceback.
* Commands that only read never create a database: a SQLite URL whose file does not exist
  is an error, not a new empty file.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from ..errors import ConfigurationError, MissingExtraError

__all__ = [
    "URL_HELP",
    "url_option",
    "yes_option",
    "parse_age",
    "resolve_url",
    "open_engine",
    "explain",
    "friendly_errors",
    "fail",
]

F = TypeVar("F", bound=Callable[..., Any])

URL_HELP = "Database URL (default: SUREFOOT_DATABASE_URL, else the embedded SQLite file)."
AGE_FORM = "a number and a unit: 90s, 15m, 12h, 30d or 2w"

# driver or library module -> the surefoot extra that installs it
_EXTRAS = {
    "sqlalchemy": "sql", "aiosqlite": "sql", "psycopg": "postgres", "psycopg2": "postgres",
    "psycopg_binary": "postgres", "asyncpg": "postgres", "redis": "redis", "nats": "nats",
    "aio_pika": "rabbitmq", "httpx": "http", "uvicorn": "fastapi", "fastapi": "fastapi",
    "starlette": "fastapi", "opentelemetry": "otel", "jsonschema": "schema",
}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*\Z", re.IGNORECASE)


def url_option() -> Any:
    """The ``--url`` option (the same in every command)."""
    return typer.Option(None, "--url", envvar="SUREFOOT_DATABASE_URL", show_envvar=False, help=URL_HELP)


def yes_option() -> Any:
    """The ``--yes`` / ``-y`` option of destructive commands."""
    return typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


def parse_age(text: str, option: str = "--older-than") -> dt.timedelta:
    """``"30d"`` -> 30 days. Raises :class:`typer.BadParameter` naming the form."""
    match = _AGE.match(text or "")
    if match is None:
        raise typer.BadParameter(f"got {text!r}; expected {AGE_FORM}", param_hint=option)
    return dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


def describe_age(age: dt.timedelta) -> str:
    seconds = age.total_seconds()
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def resolve_url(url: str | None) -> str:
    if url:
        return url
    from .._core.settings import get_settings

    return get_settings().database_url


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for memory databases and other backends)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] != "sqlite":
        return None
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return Path(path)


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def shown(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    return _PASSWORD.sub(r"\1***@", url)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr; return the ``Exit`` to raise."""
    typer.echo(message, err=True)
    return typer.Exit(code)


def open_engine(url: str | None, *, creates: bool = False, migrate_hint: str = "surefoot outbox migrate") -> Any:
    """A sync SQLAlchemy engine for ``url``; for a read-only use the database must exist.

    Args:
        url: the ``--url`` value (``None``: settings).
        creates: the command may create the database (``migrate``).
        migrate_hint: the command that creates the tables, for the error message.
    """
    from .._core.extras import require

    target = resolve_url(url)
    if "://" not in target:
        raise fail(
            f"not a database URL: {shown(target)!r}; expected e.g. sqlite:///app.db or "
            "postgresql+psycopg://user:password@host/db"
        )
    sqlite_file = _sqlite_file(target)
    if sqlite_file is not None and not creates and not sqlite_file.exists():
        raise fail(f"no database at {sqlite_file}: create it with `{migrate_hint} --url {target}`")
    sa = require("sqlalchemy", "sql")
    from ..outbox._urls import sync_url

    return sa.create_engine(sync_url(target))


def _missing_module(exc: BaseException) -> str | None:
    name = getattr(exc, "name", None)
    if isinstance(exc, MissingExtraError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and name:
        root = name.split(".")[0]
        extra = _EXTRAS.get(root)
        if extra is not None:
            return f"{root} is not installed; install it with: pip install 'surefoot[{extra}]'"
    return None


def explain(exc: BaseException, *, migrate_hint: str = "surefoot outbox migrate", url: str | None = None) -> str | None:
    """The one line that tells a user what to do about ``exc``, or ``None`` if unexpected."""
    missing = _missing_module(exc)
    if missing is not None:
        return missing
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not isinstance(exc, ConfigurationError):
        missing = _missing_module(cause)
        if missing is not None:
            return missing
    if isinstance(exc, ConfigurationError):
        return str(exc).splitlines()[0]
    try:
        from sqlalchemy import exc as sa_exc
    except ImportError:
        return None
    where = f" --url {shown(url)}" if url else ""
    if isinstance(exc, sa_exc.NoSuchModuleError):
        return f"unknown database driver in the URL ({exc}); expected e.g. sqlite:/// or postgresql+psycopg://"
    if isinstance(exc, sa_exc.ArgumentError):
        return (
            f"not a database URL ({str(exc).splitlines()[0]}); expected e.g. sqlite:///app.db or "
            "postgresql+psycopg://user:password@host/db"
        )
    if isinstance(exc, sa_exc.DBAPIError):
        text = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
        first = text[0] if text else type(exc).__name__
        lowered = str(exc).lower()
        if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered) \
                or "undefinedtable" in type(getattr(exc, "orig", None)).__name__.lower():
            return f"the tables do not exist yet ({first}): run `{migrate_hint}{where}`"
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return f"cannot use the database: {first}"
        return f"database error: {first}"
    return None


def friendly_errors(migrate_hint: str = "surefoot outbox migrate") -> Callable[[F], F]:
    """Decorate a command so expected failures print one line (see the module docstring)."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
                raise
            except Exception as exc:
                url = kwargs.get("url")
                message = explain(exc, migrate_hint=migrate_hint, url=url)
                if message is None:
                    raise
                raise fail(message) from None

        return wrapper  # type: ignore[return-value]

    return decorate
