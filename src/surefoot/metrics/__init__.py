"""Prometheus metrics: the canonical catalogue, the metrics endpoint, the JSON summary,
multi-worker aggregation (:mod:`surefoot.metrics.multiprocess`) and the domain metrics —
database engines, caches, business KPIs and process saturation (see docs/metrics.md).

    from surefoot.metrics import metrics_app, instrument_engine, KPI, CacheMetrics
    app.mount("/metrics", metrics_app(registries=[app_registry, default_registry()]))
    instrument_engine(engine)                        # query durations, errors, pool gauges
    CALLS = KPI("calls_detected", description="missed calls detected",
                labels={"outcome": ("missed", "answered")})
"""

from typing import TYPE_CHECKING

from .._core.extras import lazy_exports

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

# Each name is imported from its module on first use: the request path needs the catalogue,
# not the database, cache or KPI instruments.
_LAZY = {
    "CACHE_RESULTS": "._cache",
    "CacheMetrics": "._cache",
    "CATALOGUE": ".._core.catalogue",
    "HTTP_DURATION_BUCKETS": ".._core.catalogue",
    "MetricSpec": ".._core.catalogue",
    "OPERATIONS": "._db",
    "EngineInstrumentation": "._db",
    "classify_statement": "._db",
    "instrument_engine": "._db",
    "pool_readings": "._db",
    "MetricsApp": "._endpoint",
    "metrics_app": "._endpoint",
    "KPI": "._kpi",
    "declared_kpis": "._kpi",
    "OVERFLOW": "._labels",
    "MetricsSettings": "._labels",
    "ProcessMonitor": "._process",
    "summary": "._summary",
}
__getattr__, __dir__ = lazy_exports(globals(), _LAZY)

if TYPE_CHECKING:  # pragma: no cover
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
