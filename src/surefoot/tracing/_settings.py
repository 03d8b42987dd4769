"""Tracing settings: ``SUREFOOT_TRACING`` and ``SUREFOOT_TRACING_*`` / ``SUREFOOT_SENTRY_*``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["TracingSettings"]


class TracingSettings(BaseSettings):
    """Tracing and error-reporting settings, read from ``SUREFOOT_*`` environment variables.

    Attributes:
        tracing: ``SUREFOOT_TRACING=true`` makes :func:`surefoot.install` call
            :func:`surefoot.tracing.setup_tracing`.
        tracing_sample_ratio: head-sampling ratio of new traces (parent-based). Unset:
            ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` when set, else 0.1 when
            ``SUREFOOT_ENV=production`` and 1.0 otherwise.
        tracing_tail_keep: record every local trace and export the unsampled ones too when
            a span errored or answered >= 500.
        tracing_tail_max_traces: traces held at once by the tail keep; more are dropped
            (counted).
        tracing_tail_max_spans: spans held per trace; more are dropped (counted).
        tracing_tail_max_seconds: a trace whose local root has not ended after this long is
            dropped (counted).
        tracing_exporter: ``otlp`` (the ``OTEL_EXPORTER_OTLP_*`` variables decide HTTP or
            gRPC and where), ``console`` or ``none``.
        tracing_server_span: ``auto`` (surefoot's own server span unless FastAPI's telemetry
            or the contrib instrumentation already makes one), ``own`` or ``existing``.
        sentry_dsn: turns Sentry error reporting on (extra ``sentry``).
        sentry_traces: also send performance traces to Sentry (off: surefoot sends traces
            over OTLP).
    """

    model_config = SettingsConfigDict(env_prefix="SUREFOOT_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    tracing: bool = False
    tracing_sample_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    tracing_tail_keep: bool = True
    tracing_tail_max_traces: int = Field(default=2048, ge=1)
    tracing_tail_max_spans: int = Field(default=512, ge=1)
    tracing_tail_max_seconds: float = Field(default=60.0, gt=0)
    tracing_exporter: Literal["otlp", "console", "none"] = "otlp"
    tracing_server_span: Literal["auto", "own", "existing"] = "auto"
    sentry_dsn: str | None = None
    sentry_traces: bool = False
