"""Prometheus metrics: the canonical catalogue, the metrics endpoint, the JSON summary,
multi-worker aggregation (:mod:`surefoot.metrics.multiprocess`) and the domain metrics —
database engines, caches, business KPIs and process saturation (see docs/metrics.md).

    from surefoot.metrics import metrics_app, instrument_engine, KPI, CacheMetrics
    app.mount("/metrics", metrics_app(registries=[app_registry, default_registry()]))
    instrument_engine(engine)                        # query durations, errors, pool gauges
    CALLS = KPI("calls_detected", description="missed calls detected",
                labels={"outcome": ("missed", "answered")})
"""

from .._core.catalogue import CATALOGUE, HTTP_DURATION_BUCKETS, MetricSpec
from ._cache import CACHE_RESULTS, CacheMetrics
from ._db import (
    OPERATIONS,
    EngineInstrumentation,
    classify_statement,
    instrument_engine,
    pool_readings,
)
from ._endpoint import MetricsApp, metrics_app
from ._kpi import KPI, declared_kpis
from ._labels import OVERFLOW, MetricsSettings
from ._process import ProcessMonitor
from ._summary import summary

__all__ = [
    "CATALOGUE",
    "HTTP_DURATION_BUCKETS",
    "MetricSpec",
    "MetricsApp",
    "metrics_app",
    "summary",
    "instrument_engine",
    "EngineInstrumentation",
    "OPERATIONS",
    "classify_statement",
    "pool_readings",
    "CacheMetrics",
    "CACHE_RESULTS",
    "KPI",
    "declared_kpis",
    "ProcessMonitor",
    "MetricsSettings",
    "OVERFLOW",
]
