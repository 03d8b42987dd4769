"""Turning tracing on: provider, sampler, exporter and processors, configured once."""

from __future__ import annotations

import os
from typing import Any

from .. import context
from .._core.extras import require
from .._core.settings import get_settings, section
from ..errors import ConfigurationError
from ._api import STATE
from ._settings import TracingSettings

__all__ = ["setup_tracing", "shutdown_tracing", "reset_tracing", "head_sampler", "default_exporter"]

_cid = context.correlation_id
_cause = context.causation_id
_tenant = context.tenant_id


def _set_ids(span: Any) -> None:
    """Put the bound correlation, causation and tenant ids on a span as it starts."""
    cid = _cid.get()
    cause = _cause.get()
    tenant = _tenant.get()
    if cause is None and tenant is None:
        if cid is not None:
            span.set_attribute("correlation_id", cid)
        return
    ids = {"correlation_id": cid, "causation_id": cause, "tenant_id": tenant}
    span.set_attributes({k: v for k, v in ids.items() if v is not None})


def _context_processor() -> Any:
    sdk_trace = require("opentelemetry.sdk.trace", "otel")

    class ContextIdsProcessor(sdk_trace.SpanProcessor):  # type: ignore[misc,name-defined]
        """Put the bound correlation, causation and tenant ids on every span as it starts."""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            _set_ids(span)

    return ContextIdsProcessor()


def head_sampler(ratio: float | None = None, env: str | None = None) -> Any:
    """Return the head sampler surefoot uses: parent-based, ratio for new traces.

    Args:
        ratio: share of new traces sampled. ``None``: ``SUREFOOT_TRACING_SAMPLE_RATIO``;
            else the standard ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` when set;
            else 0.1 in production (``SUREFOOT_ENV=production``) and 1.0 otherwise.
        env: the environment name (default: ``SUREFOOT_ENV``).

    Raises:
        ConfigurationError: ``ratio`` is outside [0, 1]; ``OTEL_TRACES_SAMPLER`` names no
            sampler OpenTelemetry knows, or ``OTEL_TRACES_SAMPLER_ARG`` is not a ratio.
    """
    sampling = require("opentelemetry.sdk.trace.sampling", "otel")
    tsettings = section(TracingSettings)
    if ratio is None:
        ratio = tsettings.tracing_sample_ratio
    if ratio is None and os.environ.get("OTEL_TRACES_SAMPLER", "").strip():
        return _sampler_from_otel_env(sampling)
    if ratio is None:
        ratio = 0.1 if (env or tsettings.env) == "production" else 1.0
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0.0 <= ratio <= 1.0:
        raise ConfigurationError(f"sample_ratio must be a number between 0 and 1; got {ratio!r}")
    return sampling.ParentBased(sampling.TraceIdRatioBased(float(ratio)))


_RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")


def _sampler_from_otel_env(sampling: Any) -> Any:
    """The sampler named by ``OTEL_TRACES_SAMPLER`` (and ``OTEL_TRACES_SAMPLER_ARG``), as
    OpenTelemetry defines it; a name or ratio it would silently replace is refused."""
    name = os.environ.get("OTEL_TRACES_SAMPLER", "").strip()
    # The names OpenTelemetry's specification gives its built-in samplers, through the SDK's
    # public objects.
    known: dict[str, Any] = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "parentbased_always_on": sampling.DEFAULT_ON,
        "parentbased_always_off": sampling.DEFAULT_OFF,
        "traceidratio": sampling.TraceIdRatioBased,
        "parentbased_traceidratio": sampling.ParentBasedTraceIdRatio,
    }
    chosen = known.get(name.lower())
    if chosen is None:
        raise ConfigurationError(
            f"OTEL_TRACES_SAMPLER={name!r} is not a sampler surefoot can use; expected one of "
            f"{', '.join(sorted(known))} (or set SUREFOOT_TRACING_SAMPLE_RATIO)"
        )
    if name.lower() not in _RATIO_SAMPLERS:
        return chosen
    arg = os.environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not arg:
        return chosen(1.0)
    try:
        value = float(arg)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1; got {arg!r}")
    return chosen(value)


def default_exporter(kind: str = "otlp") -> Any:
    """Return the span exporter for ``kind`` (``otlp``, ``console``; ``none`` gives ``None``).

    For ``otlp`` the protocol comes from ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or
    ``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` (default, extra ``otel``) or ``grpc``
    (extra ``otel-grpc``); endpoint, headers, timeout and compression come from the other
    standard ``OTEL_EXPORTER_OTLP_*`` variables, read by the exporter itself.

    Raises:
        ConfigurationError: an unknown protocol or exporter kind.
        MissingExtraError: the exporter's package is not installed.
    """
    if kind == "none":
        return None
    if kind == "console":
        return require("opentelemetry.sdk.trace.export", "otel").ConsoleSpanExporter()
    if kind != "otlp":
        raise ConfigurationError(f"unknown trace exporter {kind!r}; use otlp, console or none")
    variable = next(
        (name for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
         if os.environ.get(name, "").strip()),
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    )
    protocol = (os.environ.get(variable) or "http/protobuf").strip().lower()
    if protocol == "grpc":
        return require("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "otel-grpc").OTLPSpanExporter()
    if protocol == "http/protobuf":
        return require("opentelemetry.exporter.otlp.proto.http.trace_exporter", "otel").OTLPSpanExporter()
    raise ConfigurationError(f"{variable}={protocol!r} is not supported; use http/protobuf or grpc")


def setup_tracing(
    *,
    service_name: str | None = None,
    service_version: str | None = None,
    exporter: Any = None,
    sampler: Any = None,
    set_global: bool = True,
    sample_ratio: float | None = None,
    tail_keep: bool | None = None,
    batch: bool | None = None,
    id_generator: Any = None,
    registry: Any = None,
    server_span: str | None = None,
) -> Any:
    """Turn tracing on for this process: one ``TracerProvider`` (extra ``otel``).

    Surefoot's spans (request, webhook, outbox, provider calls, :func:`span`) start to
    record from here on, and every span gets the bound ``correlation_id``, ``causation_id``
    and ``tenant_id``. Calling it again replaces surefoot's provider (the previous one is
    flushed and shut down).

    Args:
        service_name: ``service.name`` (default: settings).
        service_version: ``service.version`` (default: settings).
        exporter: a span exporter. Default: per ``SUREFOOT_TRACING_EXPORTER`` (OTLP over
            HTTP or gRPC, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables).
        sampler: an OpenTelemetry head sampler (default: :func:`head_sampler`).
        set_global: also install the provider as OpenTelemetry's global tracer provider
            (what FastAPI's own telemetry and other instrumentations use).
        sample_ratio: head-sampling ratio, see :func:`head_sampler`.
        tail_keep: record every trace and export unsampled ones that failed
            (default ``SUREFOOT_TRACING_TAIL_KEEP``, on).
        batch: export through a ``BatchSpanProcessor`` (default: batch for the default
            exporter, simple for an exporter you pass).
        id_generator: an OpenTelemetry ``IdGenerator`` (tests use a seeded one).
        registry: Prometheus registry of the tail-keep drop counter.
        server_span: ``auto``, ``own`` or ``existing`` (see ``docs/tracing.md``).

    Returns:
        The ``TracerProvider``.

    Raises:
        MissingExtraError: OpenTelemetry's SDK is not installed (``pip install 'surefoot[otel]'``).
        ConfigurationError: a bad sampling ratio or exporter setting, or a flag
            (``tail_keep``, ``batch``, ``set_global``) that is not a bool.
    """
    trace = require("opentelemetry.trace", "otel")
    sdk_trace = require("opentelemetry.sdk.trace", "otel")
    export = require("opentelemetry.sdk.trace.export", "otel")
    resources = require("opentelemetry.sdk.resources", "otel")
    settings = get_settings()
    tsettings = section(TracingSettings)
    if server_span is not None and server_span not in ("auto", "own", "existing"):
        raise ConfigurationError(f"server_span must be auto, own or existing; got {server_span!r}")
    for what, flag in (("tail_keep", tail_keep), ("batch", batch), ("set_global", set_global)):
        if flag is not None and not isinstance(flag, bool):
            raise ConfigurationError(f"{what} must be True or False; got {flag!r}")
    head = sampler if sampler is not None else head_sampler(sample_ratio, env=settings.env)
    keep = tsettings.tracing_tail_keep if tail_keep is None else tail_keep
    resource = resources.Resource.create(
        {
            "service.name": service_name or settings.service_name,
            "service.version": service_version or settings.service_version,
            "deployment.environment.name": settings.env,
        }
    )
    if exporter is None:
        exporter = default_exporter(tsettings.tracing_exporter)
        use_batch = True if batch is None else batch
    else:
        use_batch = False if batch is None else batch
    kwargs: dict[str, Any] = {"resource": resource}
    if id_generator is not None:
        kwargs["id_generator"] = id_generator
    tail = None
    if keep:
        from ._tail import TailKeepSampler

        kwargs["sampler"] = TailKeepSampler(head)
    else:
        kwargs["sampler"] = head
    provider = sdk_trace.TracerProvider(**kwargs)
    if exporter is not None and keep:
        from ._tail import TailKeepProcessor

        # One processor: ids on start, tail keep and export on end.
        tail = TailKeepProcessor(
            export.BatchSpanProcessor(exporter) if use_batch else export.SimpleSpanProcessor(exporter),
            max_traces=tsettings.tracing_tail_max_traces,
            max_spans=tsettings.tracing_tail_max_spans,
            max_seconds=tsettings.tracing_tail_max_seconds,
            registry=registry,
            on_start=_set_ids,
        )
        provider.add_span_processor(tail)
    else:
        provider.add_span_processor(_context_processor())
        if exporter is not None:
            provider.add_span_processor(
                export.BatchSpanProcessor(exporter) if use_batch else export.SimpleSpanProcessor(exporter)
            )
    if STATE.owned and STATE.provider is not None and STATE.provider is not provider:
        _shutdown(STATE.provider)
    if set_global:
        trace.set_tracer_provider(provider)
    STATE.provider = provider
    STATE.tracer = provider.get_tracer("surefoot")
    STATE.owned = True
    STATE.tail = tail
    STATE.server_span = server_span or tsettings.tracing_server_span
    return provider


def _shutdown(provider: Any) -> None:
    provider.force_flush()
    provider.shutdown()


def shutdown_tracing() -> None:
    """Flush what is buffered (batch queue, failed traces held by the tail keep) and stop.

    Safe to call when tracing is off or already shut down.
    """
    provider = STATE.provider
    if provider is not None and STATE.owned:
        _shutdown(provider)
    STATE.tracer = None
    STATE.provider = None
    STATE.owned = False
    STATE.tail = None
    STATE.discovered = None


def reset_tracing() -> None:
    """Forget surefoot's tracer without touching OpenTelemetry's global provider (tests)."""
    shutdown_tracing()
    STATE.server_span = "auto"


def setup_from_settings() -> bool:
    """What :func:`surefoot.install` calls: tracing when ``SUREFOOT_TRACING=true``, Sentry when
    ``SUREFOOT_SENTRY_DSN`` is set. Tracing already set up by a call of your own is kept.

    Returns:
        Whether this call turned tracing on (then the app's shutdown flushes it).
    """
    tsettings = section(TracingSettings)
    started = False
    if tsettings.tracing and STATE.provider is None:
        setup_tracing()
        started = True
    if tsettings.sentry_dsn:
        from ._sentry import setup_sentry

        setup_sentry()  # reads SUREFOOT_SENTRY_DSN itself, and names it in errors
    return started
