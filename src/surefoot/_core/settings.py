"""Settings: the core ``Settings`` and the loader every settings section goes through.

Settings come from ``SUREFOOT_*`` environment variables (and keyword overrides). Each area
may declare its own settings class with its own prefix (``SUREFOOT_OUTBOX_*``) and load it
through :func:`load_settings`, so that a bad value fails at start-up with a message naming
the variable and the values it accepts.

Each section is resolved once per process (:func:`section`) and kept, with the core settings,
in the process state (:mod:`surefoot._core.state`); :func:`configure` and ``reset_all()``
forget them so the next use reads the environment again.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .._compat.structlog import import_structlog as _import_structlog
from ..errors import ConfigurationError
from .state import STATE

# surefoot/__init__ imports this module first (nothing above imports structlog): structlog
# is imported here without rich (see surefoot._compat.structlog), before any other module.
_import_structlog()

__all__ = [
    "Settings",
    "CommaList",
    "load_settings",
    "get_settings",
    "configure",
    "section",
    "prefix_in_environment",
    "SettingsConfigurationError",
    "DEFAULT_METRICS_EXCLUDE",
]

S = TypeVar("S", bound=BaseSettings)

_LIST_FORM = "a comma-separated list (a,b) or a JSON list ([\"a\", \"b\"])"


def _split_list(value: Any) -> Any:
    """Accept ``a,b``, ``a, b``, a JSON list, or an empty value (the empty list)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError(f"valid JSON, or {_LIST_FORM}") from None
    return [part.strip() for part in text.split(",") if part.strip()]


#: A ``list[str]`` setting written as ``a,b`` or as a JSON list in the environment.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]

#: The paths left out of the request metrics by default: probes, the metrics endpoint and the
#: FastAPI documentation routes (moved with ``install``'s ``health_prefix``, the metrics path
#: and the app's ``docs_url`` / ``redoc_url`` / ``openapi_url``).
DEFAULT_METRICS_EXCLUDE = (
    "/livez", "/readyz", "/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc",
    "/openapi.json",
)


class Settings(BaseSettings):
    """Core settings, read from ``SUREFOOT_*`` environment variables.

    List settings accept the comma-separated form (``10.0.0.0/8,127.0.0.1``) and a JSON list.

    Attributes:
        env: ``development``, ``production`` or ``test``.
        service_name: reported in logs, ``/health`` and metrics summaries.
        service_version: reported in ``/health``.
        log_format: ``json``, ``console``, or ``auto`` (console on a TTY, JSON otherwise).
        log_level: minimum level, e.g. ``INFO``.
        log_unmasked_pii: allow full e-mail addresses and phone numbers in DEBUG lines.
        log_message_bodies: log the first 50 characters of message bodies.
        log_buffer_ms: the longest a log line waits before it is written, in milliseconds,
            when logs go to a file or pipe (never on a terminal); ``0`` writes every line at once.
        metrics_enabled: ``false`` removes metrics from the request path entirely.
        metrics_path: where the Prometheus endpoint is mounted.
        metrics_username / metrics_password: HTTP basic auth for the metrics endpoint (both or
            neither; an empty password is refused).
        metrics_allow_ips: client addresses or networks (CIDR) allowed to scrape.
        metrics_exclude_paths: request paths left out of the request metrics (probes,
            ``/metrics`` and the docs routes by default); an empty value measures everything.
        correlation_headers: request headers read for the correlation id, in priority order.
        tenant_header: request header carrying the tenant id.
        access_log_skip_paths: paths without an access log line.
        access_log_client: add the client address (``client``) to access lines.
        access_log_user_agent: add the ``User-Agent`` (``user_agent``, redacted, at most
            ``access_log_max_path`` characters) to access lines.
        access_log_max_path: the longest request path (and user agent) written on an access
            line, in characters; longer ones are cut and end with ``...``.
        enable_events: ``false`` turns best-effort event emission (``emit``) off.
        database_url: SQLAlchemy URL of the service database (embedded SQLite by default).
    """

    model_config = SettingsConfigDict(env_prefix="SUREFOOT_", extra="ignore")

    def __init__(self, *args: Any, **values: Any) -> None:
        # Built directly (``install(app, settings=Settings(...))``), a bad value or variable
        # fails as it does through :func:`load_settings`: one line, a ConfigurationError.
        try:
            super().__init__(*args, **values)
        except Exception as exc:
            message = _settings_error(type(self), exc, values)
            if message is None:
                raise
            _install_excepthook()
            raise SettingsConfigurationError(message) from None

    env: Literal["development", "production", "test"] = "development"
    service_name: str = "app"
    service_version: str = "0.0.0"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_unmasked_pii: bool = False
    log_message_bodies: bool = False
    log_buffer_ms: int = Field(default=100, ge=0, le=10_000)
    metrics_enabled: bool = True
    metrics_path: str = "/metrics"
    metrics_username: str | None = None
    metrics_password: str | None = None
    # A lambda, not ``list``: pydantic inspects a default factory's signature, and for a
    # builtin that parses its text signature (compiling tokenize's patterns, ~3 ms once).
    metrics_allow_ips: CommaList = Field(default_factory=lambda: [])
    metrics_exclude_paths: CommaList = Field(default_factory=lambda: list(DEFAULT_METRICS_EXCLUDE))
    correlation_headers: CommaList = Field(default_factory=lambda: ["X-Correlation-ID", "X-Request-ID"])
    tenant_header: str | None = "X-Tenant-ID"
    access_log_skip_paths: CommaList = Field(
        default_factory=lambda: ["/livez", "/readyz", "/health", "/metrics"]
    )
    access_log_client: bool = False
    access_log_user_agent: bool = False
    access_log_max_path: int = Field(default=200, ge=16, le=8192)
    enable_events: bool = True
    database_url: str = "sqlite:///surefoot.db"

    @pydantic.field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @pydantic.field_validator("metrics_allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or CIDR network; expected addresses or "
                    "networks such as 10.0.0.0/8,127.0.0.1"
                ) from None
        return value

    @pydantic.field_validator("metrics_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected a path starting with '/', such as /metrics")
        return value

    @pydantic.field_validator("metrics_password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                "an empty password protects nothing; expected a non-empty password, or leave "
                "SUREFOOT_METRICS_PASSWORD and SUREFOOT_METRICS_USERNAME unset"
            )
        return value

    @pydantic.model_validator(mode="after")
    def _both_credentials(self) -> Settings:
        if (self.metrics_username is None) != (self.metrics_password is None):
            missing = "SUREFOOT_METRICS_PASSWORD" if self.metrics_password is None else "SUREFOOT_METRICS_USERNAME"
            raise ValueError(
                f"{missing}: not set; expected both SUREFOOT_METRICS_USERNAME and "
                "SUREFOOT_METRICS_PASSWORD for basic auth, or neither"
            )
        return self


_EXPECTED = {
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "list_type": _LIST_FORM,
    "string_type": "a string",
    "json_invalid": "valid JSON",
}


def _expected(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind == "literal_error" and "expected" in ctx:
        return "one of " + str(ctx["expected"]).replace(" or ", ", ")
    if kind == "value_error":
        message = str(error.get("msg", ""))
        return message.removeprefix("Value error, ")
    for bound, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if bound in ctx:
            return f"a number {word} {ctx[bound]}"
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    return str(error.get("msg", "a valid value"))


def _raw(variable: str, error: dict[str, Any], given: Mapping[str, Any] | None = None, field: str = "") -> Any:
    # What the user wrote: the argument when one was given, else the environment's text.
    if given and field in given:
        return given[field]
    for name, value in os.environ.items():
        if name.upper() == variable:
            return value
    return error.get("input")


def _describe(
    cls: type[BaseSettings], loc: tuple[Any, ...], error: dict[str, Any], given: Mapping[str, Any] | None = None
) -> str:
    if not loc:  # a check across fields: its message names the variables itself
        return _expected(error)
    field = str(loc[0])
    prefix = cls.model_config.get("env_prefix", "") or ""
    variable = f"{prefix}{field}".upper()
    expected = _expected(error)
    if "got " in expected or "is not" in expected or "empty" in expected:
        return f"{variable}: {expected}"
    # A validator's message may say "expected ..." itself: the word is written once.
    return f"{variable}: got {_raw(variable, error, given, field)!r}; expected {expected.removeprefix('expected ')}"


_SETTINGS_ERROR_FIELD = r'field "([^"]+)"'  # compiled on the error path only (re caches it)


class SettingsConfigurationError(ConfigurationError):
    """A ``SUREFOOT_*`` setting is invalid. Uncaught, it prints as one line (no traceback)."""


def _install_excepthook() -> None:
    """Print an uncaught settings error as its one-line message instead of a traceback.

    A bad variable is found while the application module is imported (``uvicorn app:app``);
    the traceback would bury the one line that says what to fix.
    """
    previous = sys.excepthook
    if getattr(previous, "_surefoot", False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if isinstance(value, SettingsConfigurationError):
            print(str(value), file=sys.stderr)
            return
        previous(kind, value, tb)

    hook._surefoot = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build ``cls`` from the environment plus ``overrides``.

    Raises:
        ConfigurationError: a value is invalid; the one-line message names each variable,
            what it got and the form expected. Left uncaught, it is printed as that line
            alone, without a traceback.
    """
    try:
        return cls(**overrides)
    except Exception as exc:
        message = _settings_error(cls, exc, overrides)
        if message is None:
            raise
    _install_excepthook()
    raise SettingsConfigurationError(message) from None


def _settings_error(cls: type[BaseSettings], exc: Exception, given: Mapping[str, Any]) -> str | None:
    """The one-line message for a failure to build ``cls`` (with the arguments ``given``), or
    ``None`` for another error."""
    from pydantic_settings import SettingsError

    if isinstance(exc, pydantic.ValidationError):
        problems = list(
            dict.fromkeys(_describe(cls, tuple(e.get("loc", ())), dict(e), given) for e in exc.errors())
        )
        return "invalid surefoot settings: " + "; ".join(problems)
    if isinstance(exc, SettingsError):
        match = re.search(_SETTINGS_ERROR_FIELD, str(exc))
        field = match.group(1) if match else "?"
        variable = f"{cls.model_config.get('env_prefix', '') or ''}{field}".upper()
        return f"invalid surefoot settings: {variable}: got {_raw(variable, {})!r}; expected valid JSON"
    if isinstance(exc, ConfigurationError):
        return str(exc)
    return None


def get_settings() -> Settings:
    """Return the process settings, loading them from the environment on first use."""
    settings = STATE.settings
    if settings is None:
        with STATE.lock:
            settings = STATE.settings
            if settings is None:
                settings = STATE.settings = load_settings(Settings)
    return settings  # type: ignore[no-any-return]


def configure(**overrides: Any) -> Settings:
    """Replace the process settings with the environment plus ``overrides`` and return them.

    Settings sections resolved earlier (``SUREFOOT_OUTBOX_*``, ``SUREFOOT_TRACING_*``, ...) are
    forgotten too, so the next use reads the environment again.
    """
    settings = load_settings(Settings, **overrides)
    with STATE.lock:
        STATE.settings = settings
        STATE.sections.clear()
    return settings


def section(cls: type[S]) -> S:
    """The settings section ``cls`` (e.g. ``OutboxSettings``), resolved once per environment.

    Every area resolves its section through here, so each ``SUREFOOT_*`` prefix is parsed and
    validated once and every component of the area shares the same typed object. The object
    is kept in the process state against the variables of its prefix: when those change
    (a test's ``monkeypatch.setenv``, a reload), the next use reads them again. A bad value
    fails the first use with the one-line message of :func:`load_settings`. Explicit
    overrides go to :func:`load_settings` instead (they are not kept).
    """
    key = _environment_of(cls)
    found = STATE.sections.get(cls)
    if found is None or found[0] != key:
        with STATE.lock:
            found = STATE.sections.get(cls)
            if found is None or found[0] != key:
                found = STATE.sections[cls] = (key, load_settings(cls))
    return found[1]


def prefix_in_environment(prefix: str) -> bool:
    """True when an environment variable starts with ``prefix`` (case does not matter).

    An area whose settings are all defaults without such a variable can skip building and
    validating its section: there is no value of the environment to check.
    """
    prefix = prefix.upper()
    return any(name.upper().startswith(prefix) for name in os.environ)


def _environment_of(cls: type[BaseSettings]) -> frozenset[tuple[str, str]]:
    prefix = str(cls.model_config.get("env_prefix", "") or "").upper()
    return frozenset((k, v) for k, v in os.environ.items() if k.upper().startswith(prefix))
