"""Settings and the only process-global state of surefoot.

Settings come from ``SUREFOOT_*`` environment variables (and keyword overrides). Each area
may declare its own settings class with its own prefix (``SUREFOOT_OUTBOX_*``) and load it
through :func:`load_settings`, so that a bad value fails at start-up with a message naming
the variable and the values it accepts.

Process-global state lives here and only here; tests call :func:`reset_config`.
"""

from __future__ import annotations

import threading
from typing import Any, Literal, TypeVar

import pydantic
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError

__all__ = [
    "Settings",
    "load_settings",
    "get_settings",
    "configure",
    "reset_config",
    "default_registry",
    "set_default_registry",
    "on_reset",
    "reset_all",
]

S = TypeVar("S", bound=BaseSettings)


class Settings(BaseSettings):
    """Core settings, read from ``SUREFOOT_*`` environment variables.

    Attributes:
        env: ``development``, ``production`` or ``test``.
        service_name: reported in logs, ``/health`` and metrics summaries.
        service_version: reported in ``/health``.
        log_format: ``json``, ``console``, or ``auto`` (console on a TTY, JSON otherwise).
        log_level: minimum level, e.g. ``INFO``.
        log_unmasked_pii: allow full e-mail addresses and phone numbers in DEBUG lines.
        log_message_bodies: log the first 50 characters of message bodies.
        metrics_enabled: ``false`` removes metrics from the request path entirely.
        metrics_path: where the Prometheus endpoint is mounted.
        metrics_username / metrics_password: HTTP basic auth for the metrics endpoint.
        metrics_allow_ips: client addresses or networks (CIDR) allowed to scrape.
        correlation_headers: request headers read for the correlation id, in priority order.
        tenant_header: request header carrying the tenant id.
        access_log_skip_paths: paths without an access log line.
        enable_events: ``false`` turns best-effort event emission (``emit``) off.
        database_url: SQLAlchemy URL of the service database (embedded SQLite by default).
    """

    model_config = SettingsConfigDict(env_prefix="SUREFOOT_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    service_name: str = "app"
    service_version: str = "0.0.0"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_unmasked_pii: bool = False
    log_message_bodies: bool = False
    metrics_enabled: bool = True
    metrics_path: str = "/metrics"
    metrics_username: str | None = None
    metrics_password: str | None = None
    metrics_allow_ips: list[str] = Field(default_factory=list)
    correlation_headers: list[str] = Field(default_factory=lambda: ["X-Correlation-ID", "X-Request-ID"])
    tenant_header: str | None = "X-Tenant-ID"
    access_log_skip_paths: list[str] = Field(
        default_factory=lambda: ["/livez", "/readyz", "/health", "/metrics"]
    )
    enable_events: bool = True
    database_url: str = "sqlite:///surefoot.db"

    @pydantic.field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def _describe(cls: type[BaseSettings], loc: tuple[Any, ...], error: dict[str, Any]) -> str:
    field = str(loc[0]) if loc else "?"
    prefix = cls.model_config.get("env_prefix", "") or ""
    variable = f"{prefix}{field}".upper()
    message = f"{variable}: {error.get('msg', 'invalid value')}"
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        message += f" (allowed: {ctx['expected']})"
    if "input" in error:
        message += f"; got {error['input']!r}"
    return message


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build ``cls`` from the environment plus ``overrides``.

    Raises:
        ConfigurationError: a value is invalid; the message names each variable, what it
            accepts and what it got.
    """
    try:
        return cls(**overrides)
    except pydantic.ValidationError as exc:
        problems = [_describe(cls, tuple(e.get("loc", ())), dict(e)) for e in exc.errors()]
        raise ConfigurationError("invalid surefoot settings: " + "; ".join(problems)) from None


_lock = threading.Lock()
_settings: Settings | None = None


def get_settings() -> Settings:
    """Return the process settings, loading them from the environment on first use."""
    global _settings
    settings = _settings
    if settings is None:
        with _lock:
            if _settings is None:
                _settings = load_settings(Settings)
            settings = _settings
    return settings


def configure(**overrides: Any) -> Settings:
    """Replace the process settings with the environment plus ``overrides`` and return them."""
    global _settings
    settings = load_settings(Settings, **overrides)
    with _lock:
        _settings = settings
    return settings


def reset_config() -> None:
    """Forget the process settings and the default registry override (tests)."""
    global _settings, _registry
    with _lock:
        _settings = None
        _registry = None


_registry: Any = None
_resets: list[Any] = []


def on_reset(function: Any) -> Any:
    """Register ``function`` to run on :func:`reset_all` (usable as a decorator).

    Every module that keeps process-global state (the logging configuration, the breaker
    registry, retry budgets, the timeout table, test waits) registers its reset here when it
    is first imported, so one call puts the whole process back to its start-up state.
    """
    if function not in _resets:
        _resets.append(function)
    return function


def reset_all() -> None:
    """Forget every piece of surefoot's process-global state (tests).

    Resets the settings and the default registry, then runs each registered reset in the
    order the modules were imported. Modules never imported hold no state and need none.
    """
    reset_config()
    for function in list(_resets):
        function()


def default_registry() -> Any:
    """Return the process-default Prometheus registry (``prometheus_client.REGISTRY`` unless set).

    Domain metrics (breakers, outbox, webhooks) register here unless a component is given
    its own ``registry=``; the metrics endpoint always exposes it.
    """
    if _registry is not None:
        return _registry
    import prometheus_client

    return prometheus_client.REGISTRY


def set_default_registry(registry: Any) -> None:
    """Make ``registry`` the process default (``None`` restores ``prometheus_client.REGISTRY``)."""
    global _registry
    _registry = registry
