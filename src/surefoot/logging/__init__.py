"""Structured logging: one format for structlog, stdlib and uvicorn, PII and secret redaction.

    from surefoot.logging import configure_logging, get_logger

    configure_logging()              # surefoot.install() does this for you
    log = get_logger("billing")
    log.info("invoice_sent", customer_email="alice@example.com")
    # {"timestamp": "...Z", "level": "info", "event": "invoice_sent", "module": "billing",
    #  "correlation_id": "...", "causation_id": null, "tenant_id": "acme",
    #  "customer_email": "***.com"}

Nothing is configured at import time. See :mod:`surefoot.logging._redact` for exactly what is
masked.
"""

from typing import TYPE_CHECKING

from .._core.extras import lazy_exports

__all__ = [
    "configure_logging",
    "flush_logs",
    "reset_logging",
    "current_config",
    "get_logger",
    "bridge_stdlib_loggers",
    "LoggingConfig",
    "Redactor",
    "mask_pii",
    "redact_secrets",
    "render_json",
    "DEFAULT_BODY_KEYS",
    "DEFAULT_ID_KEYS",
    "DEFAULT_PII_KEYS",
    "DEFAULT_SECRET_KEYS",
    "log_db_query",
    "log_llm_call",
    "log_integration_call",
    "log_business_event",
    "log_security_event",
    "LogFile",
    "LogFileSettings",
]

# Each name is imported from its module on first use: ``surefoot.install`` needs the set-up
# and the redaction only, not the file handler or the event kinds (and their metrics).
_LAZY = {
    "configure_logging": "._setup",
    "flush_logs": "._setup",
    "reset_logging": "._setup",
    "current_config": "._setup",
    "get_logger": "._setup",
    "bridge_stdlib_loggers": "._setup",
    "LoggingConfig": "._setup",
    "render_json": "._setup",
    "Redactor": "._redact",
    "mask_pii": "._redact",
    "redact_secrets": "._redact",
    "DEFAULT_BODY_KEYS": "._redact",
    "DEFAULT_ID_KEYS": "._redact",
    "DEFAULT_PII_KEYS": "._redact",
    "DEFAULT_SECRET_KEYS": "._redact",
    "log_db_query": "._kinds",
    "log_llm_call": "._kinds",
    "log_integration_call": "._kinds",
    "log_business_event": "._kinds",
    "log_security_event": "._kinds",
    "LogFile": "._file",
    "LogFileSettings": "._file",
}
__getattr__, __dir__ = lazy_exports(globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from ._file import LogFile, LogFileSettings
    from ._kinds import (
        log_business_event,
        log_db_query,
        log_integration_call,
        log_llm_call,
        log_security_event,
    )
    from ._redact import (
        DEFAULT_BODY_KEYS,
        DEFAULT_ID_KEYS,
        DEFAULT_PII_KEYS,
        DEFAULT_SECRET_KEYS,
        Redactor,
        mask_pii,
        redact_secrets,
    )
    from ._setup import (
        LoggingConfig,
        bridge_stdlib_loggers,
        configure_logging,
        current_config,
        flush_logs,
        get_logger,
        render_json,
        reset_logging,
    )
