"""Prometheus metrics: the canonical catalogue, the metrics endpoint, the JSON summary and
multi-worker aggregation (:mod:`surefoot.metrics.multiprocess`).

    from surefoot.metrics import metrics_app
    app.mount("/metrics", metrics_app(registries=[app_registry, default_registry()]))
"""

from ._catalogue import CATALOGUE, HTTP_DURATION_BUCKETS, MetricSpec
from ._endpoint import MetricsApp, metrics_app
from ._summary import summary

__all__ = ["CATALOGUE", "HTTP_DURATION_BUCKETS", "MetricSpec", "MetricsApp", "metrics_app", "summary"]
