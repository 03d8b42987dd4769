"""Health knobs from ``SUREFOOT_HEALTH_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["HealthSettings"]


class HealthSettings(BaseSettings):
    """Defaults of :class:`surefoot.health.Health`, read from ``SUREFOOT_HEALTH_*``.

    Attributes:
        drain_seconds: after SIGTERM, how long readiness reports 503 before shutdown
            (``SUREFOOT_HEALTH_DRAIN_SECONDS``; Kubernetes: ~5-10).
        cache_seconds: how long check results are reused.
        check_timeout: the timeout of checks added without one.
        loop_lag_threshold: liveness fails while the event loop lags more than this.
        loop_lag_interval: how often the loop lag is sampled.
    """

    model_config = SettingsConfigDict(env_prefix="SUREFOOT_HEALTH_", extra="ignore")

    # Seconds, finite: "inf" would never hand SIGTERM over, never refresh a result, ...
    drain_seconds: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    cache_seconds: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    check_timeout: float = Field(default=2.0, gt=0, allow_inf_nan=False)
    loop_lag_threshold: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    loop_lag_interval: float = Field(default=1.0, gt=0, allow_inf_nan=False)
