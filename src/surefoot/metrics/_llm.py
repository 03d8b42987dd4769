"""Metrics behind ``log_llm_call`` and ``log_db_query`` (the logging helpers call these).

Labels that come from the caller (``model``, ``provider``, ``statement``, ``pool``,
``error_type``) are capped per registry like every other label. Everything is skipped while
``SUREFOOT_METRICS_ENABLED=false``.
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from typing import Any

from .._core import catalogue as cat
from .._core.settings import get_settings
from .._core.state import default_registry
from ._labels import OVERFLOW, LabelCap, metrics_settings

__all__ = ["record_llm_call", "record_db_query", "UNKNOWN_PROVIDER"]

UNKNOWN_PROVIDER = "unknown"
_VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE")
_FIRST_WORD = re.compile(r"[^A-Za-z]*([A-Za-z]+)")

_lock = threading.Lock()
_caps: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], LabelCap]] = weakref.WeakKeyDictionary()


def _cap(registry: Any, metric: str, label: str) -> LabelCap:
    per_registry = _caps.get(registry)
    found = per_registry.get((metric, label)) if per_registry is not None else None
    if found is None:
        with _lock:
            per_registry = _caps.setdefault(registry, {})
            found = per_registry.get((metric, label))
            if found is None:
                found = LabelCap(registry, metric, label, metrics_settings().max_label_values)
                per_registry[(metric, label)] = found
    return found


def record_llm_call(
    model: str,
    provider: str | None,
    tokens_in: int,
    tokens_out: int,
    cost_usd: float | None,
    duration_ms: float | None,
    failed: bool,
    registry: Any = None,
) -> None:
    """Count one LLM call: calls by outcome, prompt/completion tokens, cost and duration.

    Raises:
        ValueError: a token count, cost or duration that is not a finite number >= 0 (one
            infinite or NaN value would stay in the counter's total for good).
    """
    for name, amount in (("tokens_in", tokens_in), ("tokens_out", tokens_out), ("cost_usd", cost_usd),
                         ("duration_ms", duration_ms)):
        if amount is not None and (isinstance(amount, bool) or not 0 <= amount < math.inf):
            raise ValueError(f"log_llm_call: {name} must be a finite number >= 0; got {amount!r}")
    if not get_settings().metrics_enabled:
        return
    reg = registry if registry is not None else default_registry()
    provider_label = _cap(reg, "llm", "provider")(provider or UNKNOWN_PROVIDER)
    model_label = _cap(reg, "llm", "model")(str(model))
    cat.LLM_CALLS.get(reg).labels(provider_label, model_label, "error" if failed else "success").inc()
    tokens = cat.LLM_TOKENS.get(reg)
    tokens.labels(provider_label, model_label, "prompt").inc(tokens_in)
    tokens.labels(provider_label, model_label, "completion").inc(tokens_out)
    if cost_usd is not None:  # a known cost of 0 is counted too (the series exists)
        cat.LLM_COST.get(reg).labels(provider_label, model_label).inc(cost_usd)
    if duration_ms is not None:
        cat.LLM_CALL_DURATION.get(reg).labels(provider_label, model_label).observe(duration_ms / 1000.0)


def operation_of(name: str) -> str:
    """The operation label of a hand-reported statement name: its first word (a run of
    letters) if that is ``select``/``insert``/``update``/``delete`` (any case), else ``_OTHER``."""
    word = _FIRST_WORD.match(name)
    head = word.group(1).upper() if word else ""
    return head if head in _VERBS else OVERFLOW


def record_db_query(
    operation: str,
    duration_ms: float,
    pool: str | None,
    error: BaseException | str | None,
    slow: bool,
    registry: Any = None,
) -> None:
    """Count one query reported through ``log_db_query`` in the ``db_*`` families."""
    if not get_settings().metrics_enabled:
        return
    reg = registry if registry is not None else default_registry()
    pool_label = _cap(reg, "db", "pool")(pool or "")
    verb = operation_of(operation)
    statement = _cap(reg, "db", "statement")(operation)
    if error is not None:
        kind = type(error).__name__ if isinstance(error, BaseException) else "error"
        error_type = _cap(reg, "db", "error_type")(kind)
        cat.DB_QUERY_ERRORS.get(reg).labels(pool_label, verb, error_type).inc()
        return
    # Negative durations count as 0; an infinite or NaN one would poison the histogram's sum.
    if math.isfinite(duration_ms):
        cat.DB_QUERY_DURATION.get(reg).labels(pool_label, verb, statement).observe(max(0.0, duration_ms) / 1000.0)
    if slow:
        cat.DB_SLOW_QUERIES.get(reg).labels(pool_label, verb, statement).inc()
