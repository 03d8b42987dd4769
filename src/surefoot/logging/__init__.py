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

__all__ = [
    "configure_logging",
    "reset_logging",
    "current_config",
    "flush_logs",
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
