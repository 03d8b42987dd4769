"""Optional error reporting to Sentry (extra ``sentry``), off unless set up.

Unhandled request exceptions are reported once, by surefoot's middleware, tagged with
``correlation_id``, ``causation_id``, ``tenant_id`` and ``trace_id`` (and ``span_id``), so an
issue in Sentry leads to the log lines and the trace of the same request. Before an event
leaves the process it goes through surefoot's log redaction (:class:`surefoot.logging.Redactor`):
secrets by key (``Authorization``, ``Cookie``, ``password``...), e-mail addresses and phone
numbers in any text (exception messages, breadcrumbs, local variables, request data).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import context
from .._core.extras import require
from .._core.settings import get_settings
from ..errors import ConfigurationError
from ._api import STATE

__all__ = ["setup_sentry", "scrub_event", "reset_sentry"]

# Fields of a Sentry event that carry identifiers or structure, never user text.
_KEEP = frozenset({"event_id", "timestamp", "start_timestamp", "platform", "level", "sdk", "release",
                   "environment", "server_name", "contexts", "tags", "fingerprint", "type", "modules"})


def _ids(ids: tuple[str, str] | None = None) -> dict[str, str]:
    from . import current_trace_ids

    tags = {key: value for key, value in context.current().items() if value}
    ids = current_trace_ids() or ids
    if ids is not None:
        tags["trace_id"], tags["span_id"] = ids
    return tags


def scrub_event(event: dict[str, Any], redactor: Any = None) -> dict[str, Any]:
    """Return ``event`` with every user-text field passed through surefoot's redaction.

    Args:
        event: a Sentry event (``before_send``'s first argument).
        redactor: a :class:`surefoot.logging.Redactor` (default: one from the settings).
    """
    if redactor is None:
        from ..logging import Redactor

        redactor = Redactor()
    out: dict[str, Any] = {}
    for key, value in event.items():
        out[key] = value if key in _KEEP else redactor.redact(_header_pairs(value, redactor))
    return out


def _key_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        # Sentry serialises bytes in frame variables as their repr: "b'authorization'"
        return value[2:-1] if value[:2] in ("b'", 'b"') and len(value) > 3 else value
    return None


def _header_pairs(value: Any, redactor: Any) -> Any:
    # ASGI headers are [name, value] pairs, not a mapping: the name decides, as for a key.
    if isinstance(value, dict):
        return {k: _header_pairs(v, redactor) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) == 2:
            name = _key_text(value[0])
            if name is not None and len(name) <= 64:
                masked = redactor.redact({name: "x"}).get(name)
                if masked == "[REDACTED]":
                    return [value[0], "[REDACTED]"]
        return [_header_pairs(v, redactor) for v in value]
    return value


def setup_sentry(
    dsn: str | None = None,
    *,
    environment: str | None = None,
    release: str | None = None,
    traces: bool | None = None,
    redactor: Any = None,
    before_send: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None] | None = None,
    **options: Any,
) -> None:
    """Turn on error reporting to Sentry (extra ``sentry``).

    Args:
        dsn: the project's DSN (default: ``SUREFOOT_SENTRY_DSN``).
        environment: default ``SUREFOOT_ENV``.
        release: default ``<service_name>@<service_version>``.
        traces: also send Sentry performance traces (default ``SUREFOOT_SENTRY_TRACES``,
            off: traces go over OTLP).
        redactor: the :class:`surefoot.logging.Redactor` events go through.
        before_send: your own hook, run after surefoot's scrubbing.
        **options: more ``sentry_sdk.init`` options (``include_local_variables`` is off
            by default: frame locals hold raw headers and payloads under arbitrary names).

    Raises:
        MissingExtraError: ``sentry-sdk`` is not installed (``pip install 'surefoot[sentry]'``).
        ConfigurationError: no DSN given or configured, or not a DSN (the message names
            ``SUREFOOT_SENTRY_DSN`` or ``dsn``).
    """
    from .._core.settings import section
    from ._settings import TracingSettings

    sentry_sdk = require("sentry_sdk", "sentry")
    logging_integration = require("sentry_sdk.integrations.logging", "sentry")
    tsettings = section(TracingSettings)
    source = "dsn" if dsn else "SUREFOOT_SENTRY_DSN"
    dsn = dsn or tsettings.sentry_dsn
    if not dsn:
        raise ConfigurationError("setup_sentry needs a DSN: pass dsn=... or set SUREFOOT_SENTRY_DSN")
    try:
        sentry_sdk.utils.Dsn(dsn)
    except sentry_sdk.utils.BadDsn as exc:
        raise ConfigurationError(
            f"{source} is not a Sentry DSN ({exc}); expected https://<key>@<host>/<project id>"
        ) from None
    settings = get_settings()
    if redactor is None:
        from ..logging import Redactor

        redactor = Redactor()

    def scrubbed(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        tags = event.setdefault("tags", {})
        for key, value in _ids().items():
            tags.setdefault(key, value)
        event = scrub_event(event, redactor)
        return before_send(event, hint) if before_send is not None else event

    send_traces = tsettings.sentry_traces if traces is None else traces
    options.setdefault("traces_sample_rate", 1.0 if send_traces else None)
    # Frame locals hold raw headers, tokens and payloads under arbitrary names that no
    # key-based rule can recognise: they stay in the process unless you opt in.
    options.setdefault("include_local_variables", False)
    sentry_sdk.init(
        dsn=dsn,
        environment=environment or settings.env,
        release=release or f"{settings.service_name}@{settings.service_version}",
        before_send=scrubbed,
        # surefoot reports unhandled request exceptions itself (once); log lines are
        # breadcrumbs, not events, so nothing is reported twice.
        auto_enabling_integrations=False,
        integrations=[logging_integration.LoggingIntegration(event_level=None)],
        **options,
    )

    def report(exc: BaseException, trace_ids: tuple[str, str] | None = None) -> None:
        with sentry_sdk.new_scope() as scope:
            for key, value in _ids(trace_ids).items():
                scope.set_tag(key, value)
            sentry_sdk.capture_exception(exc)

    STATE.reporter = report


def reset_sentry() -> None:
    """Stop reporting (flushes what is queued first)."""
    if STATE.reporter is not None:
        import sentry_sdk

        sentry_sdk.flush(timeout=5)
        client = sentry_sdk.get_client()
        client.close()
    STATE.reporter = None
