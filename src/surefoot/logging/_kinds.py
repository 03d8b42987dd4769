"""Helpers for the log lines every service writes: database queries, LLM calls,
integration calls, business events and security events.

The leading arguments are positional-only, so any field name (``name``, ``model``, ...)
can still be passed as a field. Each writes one structured line with a ``kind`` field
(``db_query``, ``llm_call``, ``integration_call``, ``business``, ``security``) so dashboards
and alerts can select them,
and chooses the level from the outcome (slow or failed calls are louder). Every line goes
through the same redaction as any other.

Database queries and LLM calls are also counted as Prometheus metrics (``db_query_*``,
``llm_*``; see docs/metrics.md) unless ``SUREFOOT_METRICS_ENABLED=false``.
"""

from __future__ import annotations

from typing import Any

import structlog

from ..metrics._llm import record_db_query, record_llm_call

__all__ = [
    "log_db_query",
    "log_llm_call",
    "log_integration_call",
    "log_business_event",
    "log_security_event",
]

_SECURITY_LEVELS = ("info", "warning", "error", "critical")


def _error_fields(error: BaseException | str | None, fields: dict[str, Any]) -> None:
    if error is None:
        return
    if isinstance(error, BaseException):
        fields.setdefault("error_type", type(error).__name__)
        fields.setdefault("error_message", str(error))
    else:
        fields.setdefault("error_message", error)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def log_db_query(
    operation: str,
    /,
    *,
    duration_ms: float,
    table: str | None = None,
    rows: int | None = None,
    error: BaseException | str | None = None,
    slow_ms: float = 500.0,
    pool: str | None = None,
    logger: Any = None,
    **fields: Any,
) -> None:
    """Log one database query: DEBUG normally, WARNING when slow, ERROR when it failed.

    Also records it in ``db_query_duration_seconds{pool, operation, statement}`` (or
    ``db_query_errors_total`` when it failed, ``db_slow_queries_total`` when slow), with
    ``statement`` = ``operation`` and the ``operation`` label taken from its first word
    (``select_customer`` → ``SELECT``; other words → ``_OTHER``). Queries of an engine given
    to :func:`surefoot.metrics.instrument_engine` are measured already: don't report them twice.

    Args:
        operation: a name for the statement (``"select_customer"``), not its SQL text.
        duration_ms: how long it took.
        table: the main table involved.
        rows: rows returned or affected.
        error: the exception (or message) when the query failed.
        slow_ms: from this duration on the line is a WARNING with ``slow=True``.
        pool: the ``pool`` label of the metrics (the database), also logged.
        logger: a structlog logger (default ``surefoot.db``).
        **fields: more fields for the line.
    """
    log = logger if logger is not None else structlog.get_logger("surefoot.db")
    slow = duration_ms >= slow_ms
    record_db_query(operation, duration_ms, pool, error, slow)
    _error_fields(error, fields)
    if pool is not None:
        fields["pool"] = pool
    method = log.error if error is not None else (log.warning if slow else log.debug)
    method(
        "db_query", kind="db_query", operation=operation, table=table, rows=rows,
        duration_ms=_round(duration_ms), slow=slow, **fields,
    )


def log_llm_call(
    model: str,
    /,
    *,
    tokens_in: int,
    tokens_out: int,
    duration_ms: float | None = None,
    cost_usd: float | None = None,
    price_in_per_1k: float | None = None,
    price_out_per_1k: float | None = None,
    provider: str | None = None,
    error: BaseException | str | None = None,
    logger: Any = None,
    **fields: Any,
) -> None:
    """Log one AI/LLM call with its token usage and cost: INFO, or ERROR when it failed.

    Also counts it: ``llm_calls_total{provider, model, outcome}``,
    ``llm_tokens_total{provider, model, token_type}`` (``prompt``, ``completion``),
    ``llm_cost_usd_total{provider, model}`` (when the cost is known) and
    ``llm_call_duration_seconds{provider, model}`` (when the duration is given). A missing
    provider is labelled ``unknown``; model and provider names are capped like every label.

    Args:
        model: the model name, e.g. ``"gpt-4o-mini"``.
        tokens_in: prompt tokens.
        tokens_out: completion tokens.
        duration_ms: how long the call took.
        cost_usd: the cost when known; otherwise computed from the per-1k prices if given.
        price_in_per_1k: price of 1,000 prompt tokens in USD.
        price_out_per_1k: price of 1,000 completion tokens in USD.
        provider: ``"openai"``, ``"anthropic"``, ...
        error: the exception (or message) when the call failed.
        logger: a structlog logger (default ``surefoot.llm``).
        **fields: more fields (a ``prompt`` or ``completion`` is best passed as ``body``,
            which is omitted unless message bodies are logged).

    Raises:
        ValueError: a negative token count, cost or price.
    """
    if tokens_in < 0 or tokens_out < 0:
        raise ValueError(f"token counts cannot be negative (in={tokens_in}, out={tokens_out})")
    for label, amount in (("cost_usd", cost_usd), ("price_in_per_1k", price_in_per_1k),
                          ("price_out_per_1k", price_out_per_1k)):
        if amount is not None and not amount >= 0:
            raise ValueError(f"{label} cannot be negative; got {amount!r}")
    if cost_usd is None and (price_in_per_1k is not None or price_out_per_1k is not None):
        cost_usd = tokens_in / 1000 * (price_in_per_1k or 0.0) + tokens_out / 1000 * (
            price_out_per_1k or 0.0
        )
    record_llm_call(model, provider, tokens_in, tokens_out, cost_usd, duration_ms, error is not None)
    log = logger if logger is not None else structlog.get_logger("surefoot.llm")
    _error_fields(error, fields)
    method = log.error if error is not None else log.info
    method(
        "llm_call", kind="llm_call", model=model, provider=provider, tokens_in=tokens_in,
        tokens_out=tokens_out, tokens_total=tokens_in + tokens_out,
        cost_usd=_round(cost_usd, 6), duration_ms=_round(duration_ms), **fields,
    )


def log_integration_call(
    provider: str,
    operation: str,
    /,
    *,
    duration_ms: float,
    status: int | str | None = None,
    success: bool | None = None,
    attempt: int | None = None,
    error: BaseException | str | None = None,
    logger: Any = None,
    **fields: Any,
) -> None:
    """Log one call to an external provider (Twilio, Stripe, ...): INFO, or WARNING on failure.

    Args:
        provider: the provider name.
        operation: what was called, e.g. ``"send_sms"``.
        duration_ms: how long it took.
        status: the provider's HTTP status or result code.
        success: the outcome; by default true when there is no error and an HTTP status,
            if given, is below 400.
        attempt: the attempt number when retried.
        error: the exception (or message) when it failed.
        logger: a structlog logger (default ``surefoot.integration``).
        **fields: more fields.
    """
    if success is None:
        success = error is None and not (isinstance(status, int) and status >= 400)
    log = logger if logger is not None else structlog.get_logger("surefoot.integration")
    _error_fields(error, fields)
    method = log.info if success else log.warning
    method(
        "integration_call", kind="integration_call", provider=provider, operation=operation,
        status=status, success=success, attempt=attempt, duration_ms=_round(duration_ms),
        **fields,
    )


def log_business_event(name: str, /, *, logger: Any = None, **fields: Any) -> None:
    """Log a business event (``"appointment_booked"``, ``"first_reply_sent"``) at INFO.

    Args:
        name: the event name, snake_case, used as the line's ``event``.
        logger: a structlog logger (default ``surefoot.business``).
        **fields: the event's data (redacted like any field).
    """
    log = logger if logger is not None else structlog.get_logger("surefoot.business")
    log.info(name, kind="business", **fields)


def log_security_event(
    name: str,
    /,
    *,
    outcome: str,
    actor: str | None = None,
    client_ip: str | None = None,
    severity: str = "warning",
    logger: Any = None,
    **fields: Any,
) -> None:
    """Log a security event (``"login_failed"``, ``"webhook_signature_invalid"``).

    Args:
        name: the event name, used as the line's ``event``.
        outcome: ``"denied"``, ``"allowed"``, ``"failed"``, ...
        actor: who did it (a user or API key id — never a secret).
        client_ip: where it came from.
        severity: the level: ``info``, ``warning`` (default), ``error`` or ``critical``.
        logger: a structlog logger (default ``surefoot.security``).
        **fields: more fields.

    Raises:
        ValueError: an unknown severity.
    """
    if severity not in _SECURITY_LEVELS:
        raise ValueError(f"severity must be one of {', '.join(_SECURITY_LEVELS)}; got {severity!r}")
    log = logger if logger is not None else structlog.get_logger("surefoot.security")
    getattr(log, severity)(
        name, kind="security", outcome=outcome, actor=actor, client_ip=client_ip, **fields
    )
