"""Prometheus metrics: the canonical catalogue, registry injection and the metrics endpoint."""

from ._catalogue import CATALOGUE, HTTP_DURATION_BUCKETS, MetricSpec

__all__ = ["CATALOGUE", "HTTP_DURATION_BUCKETS", "MetricSpec"]
