"""The canonical metric catalogue: every metric surefoot emits, declared once.

Names follow Prometheus rules (base units in the suffix, ``_total`` on counters) and the
OpenTelemetry stable HTTP semantic conventions. A :class:`MetricSpec` creates its family
lazily, once per registry (get-or-create), so two apps or two installs in one process never
raise duplicated-time-series errors and nothing is registered at import time.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any, Literal, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .._compat.prometheus import collector_names
from .state import default_registry

__all__ = ["MetricSpec", "CATALOGUE", "HTTP_DURATION_BUCKETS", "HTTP_METHODS"]

#: The request methods recorded as themselves (``http_request_method``, the access line, the
#: server span); any other is ``_OTHER``, as OpenTelemetry's HTTP conventions say.
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY")

HTTP_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
LAG_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
)

_lock = threading.Lock()
_families: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: name, kind, help text, label names and (histograms) buckets."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    documentation: str
    labelnames: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    multiprocess_mode: str = "livesum"

    def get(self, registry: CollectorRegistry | None = None, *, buckets: tuple[float, ...] | None = None) -> Any:
        """Return this family in ``registry`` (default: the process default), creating it once.

        Args:
            registry: where the family lives.
            buckets: histogram buckets overriding the catalogue's (e.g. with SLO thresholds
                added); only used the first time the family is created in ``registry``.
        """
        reg = registry if registry is not None else default_registry()
        with _lock:
            per_registry = _families.setdefault(reg, {})
            family = per_registry.get(self.name)
            if family is None:
                family = self._existing(reg) or self._create(reg, buckets)
                per_registry[self.name] = family
        return family

    def _existing(self, reg: CollectorRegistry) -> Any:
        return collector_names(reg).get(self.name)

    def _create(self, reg: CollectorRegistry, buckets: tuple[float, ...] | None) -> Any:
        if self.kind == "counter":
            return Counter(self.name, self.documentation, self.labelnames, registry=reg)
        if self.kind == "gauge":
            return Gauge(
                self.name, self.documentation, self.labelnames, registry=reg,
                # Any str is accepted here; prometheus_client rejects an unknown mode itself.
                multiprocess_mode=cast(Any, self.multiprocess_mode),
            )
        return Histogram(
            self.name, self.documentation, self.labelnames, registry=reg,
            buckets=buckets or self.buckets or HTTP_DURATION_BUCKETS,
        )


def _spec(*args: Any, **kwargs: Any) -> MetricSpec:
    spec = MetricSpec(*args, **kwargs)
    CATALOGUE[spec.name] = spec
    return spec


CATALOGUE: dict[str, MetricSpec] = {}

_HTTP_LABELS = ("http_request_method", "http_route", "http_response_status_code", "url_scheme", "error_type")

# HTTP server (OpenTelemetry semconv, Prometheus form)
HTTP_SERVER_REQUEST_DURATION = _spec(
    "http_server_request_duration_seconds", "histogram", "Duration of HTTP server requests.",
    _HTTP_LABELS, HTTP_DURATION_BUCKETS,
)
HTTP_SERVER_ACTIVE_REQUESTS = _spec(
    "http_server_active_requests", "gauge", "Number of active HTTP server requests.",
    ("http_request_method", "url_scheme"),
)
HTTP_SERVER_REQUEST_BODY_SIZE = _spec(
    "http_server_request_body_size_bytes", "histogram", "Size of HTTP server request bodies.",
    _HTTP_LABELS, (0, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000),
)
HTTP_SERVER_RESPONSE_BODY_SIZE = _spec(
    "http_server_response_body_size_bytes", "histogram", "Size of HTTP server response bodies.",
    _HTTP_LABELS, (0, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000),
)
HTTP_LABEL_OVERFLOW = _spec(
    "surefoot_metric_label_overflow_total", "counter",
    "Label values folded into the overflow bucket because a cardinality cap was reached.",
    ("metric", "label"),
)
WEBSOCKET_CONNECTIONS_ACTIVE = _spec(
    "websocket_connections_active", "gauge", "Open WebSocket connections.", ("http_route",)
)
WEBSOCKET_CONNECTIONS = _spec(
    "websocket_connections_total", "counter", "WebSocket connections accepted.", ("http_route",)
)
WEBSOCKET_DISCONNECTIONS = _spec(
    "websocket_disconnections_total", "counter", "WebSocket connections closed.", ("http_route",)
)

# Webhooks and integrations
WEBHOOK_HANDLER_DURATION = _spec(
    "webhook_handler_duration_seconds", "histogram", "Time to handle one webhook delivery.",
    ("provider", "endpoint", "status"), LATENCY_BUCKETS,
)
WEBHOOK_DEDUPE_HITS = _spec(
    "webhook_dedupe_hits_total", "counter", "Webhook deliveries already in the inbox.", ("provider",)
)
WEBHOOK_SIGNATURE_FAILURES = _spec(
    "webhook_signature_failures_total", "counter", "Webhook deliveries refused by signature checks.",
    ("provider", "reason"),
)
INTEGRATION_HTTP_REQUESTS = _spec(
    "integration_http_requests_total", "counter", "Outbound HTTP requests to providers.",
    ("provider", "endpoint", "status"),
)
INTEGRATION_HTTP_LATENCY = _spec(
    "integration_http_latency_seconds", "histogram", "Latency of outbound HTTP requests to providers.",
    ("provider", "endpoint"), LATENCY_BUCKETS,
)

# Outbox
OUTBOX_DISPATCH_LAG = _spec(
    "outbox_dispatch_lag_seconds", "gauge", "Age of the oldest pending outbox event.", (),
    multiprocess_mode="livemax",
)
OUTBOX_PENDING_EVENTS = _spec(
    "outbox_pending_events", "gauge", "Outbox events waiting to be dispatched.", (), multiprocess_mode="livemax"
)
WORKER_QUEUE_DEPTH = _spec(
    "worker_queue_depth", "gauge", "Work items waiting for a worker.", (), multiprocess_mode="livemax"
)
OUTBOX_DISPATCH_ATTEMPTS = _spec(
    "outbox_dispatch_attempts_total", "counter", "Outbox dispatch attempts.", ("event_name",)
)
OUTBOX_DISPATCH_FAILURES = _spec(
    "outbox_dispatch_failures_total", "counter", "Failed outbox dispatch attempts.", ("event_name",)
)
OUTBOX_DEAD_LETTERS = _spec(
    "outbox_dead_letters_total", "counter", "Outbox events moved to the dead-letter table.", ("event_name",)
)
OUTBOX_DISPATCH_DURATION = _spec(
    "outbox_dispatch_duration_seconds", "histogram", "Time from commit to delivery of an outbox event.",
    ("event_name", "sink"), LAG_BUCKETS,
)
OUTBOX_DISPATCHER_HEARTBEAT = _spec(
    "outbox_dispatcher_heartbeat_timestamp_seconds", "gauge",
    "Unix time at which the outbox dispatcher last found all its workers alive and making progress.", (),
    multiprocess_mode="livemin",
)
OUTBOX_DISPATCHER_WORKER_RESTARTS = _spec(
    "outbox_dispatcher_worker_restarts_total", "counter",
    "Outbox dispatcher workers that died or hung and were replaced.", ("reason",),
)
OUTBOX_DISPATCHER_DB_ERRORS = _spec(
    "outbox_dispatcher_db_errors_total", "counter",
    "Database operations of the outbox dispatcher that failed or timed out.", ("loop",),
)
OUTBOX_DELIVERIES_ABANDONED = _spec(
    "outbox_deliveries_abandoned_total", "counter",
    "Outbox deliveries that ignored cancellation and were left running.", ("reason",),
)
EVENTS_EMIT_FAILURES = _spec(
    "events_emit_failures_total", "counter", "Best-effort events that could not be emitted.", ("event_name",)
)

# Resilience
CIRCUIT_BREAKER_STATE = _spec(
    "circuit_breaker_state", "gauge", "1 for the current state of each circuit breaker.", ("name", "state")
)
CIRCUIT_BREAKER_CALLS = _spec(
    "circuit_breaker_calls_total", "counter", "Calls through circuit breakers by outcome.", ("name", "kind")
)
CIRCUIT_BREAKER_BACKEND_ERRORS = _spec(
    "circuit_breaker_backend_errors_total", "counter",
    "Failed calls to a shared circuit-breaker backend (Redis); the breaker decided locally.", ("name",)
)
RETRY_ATTEMPTS = _spec(
    "retry_attempts_total", "counter", "Retry decisions by outcome.", ("name", "outcome")
)
BULKHEAD_AVAILABLE = _spec(
    "bulkhead_available_concurrent_calls", "gauge", "Free slots in each bulkhead.", ("name",)
)
RATE_LIMITER_AVAILABLE = _spec(
    "rate_limiter_available_permits", "gauge", "Permits available in each rate limiter.", ("name",)
)
RESILIENCE_EVENTS = _spec(
    "resilience_events_total", "counter",
    "Resilience decisions not counted elsewhere: timeouts, bulkhead and rate-limit refusals, "
    "rate-limit waits, injected chaos.", ("component", "name", "event"),
)

# SLOs
SLO_EVENTS = _spec("slo_events_total", "counter", "SLO events by outcome.", ("slo", "outcome"))

# Health
HEALTH_CHECK_STATUS = _spec(
    "health_check_status", "gauge", "1 for the current status of each health check.",
    ("check", "status"), multiprocess_mode="liveall",
)
HEALTH_CHECK_DURATION = _spec(
    "health_check_duration_seconds", "histogram", "Time taken by each health check.",
    ("check",), LATENCY_BUCKETS,
)

# Database (surefoot.metrics.instrument_engine; seed 002 §1, seed 004 §2.7)
DB_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
DB_QUERY_DURATION = _spec(
    "db_query_duration_seconds", "histogram",
    "Time the database took to execute a statement, by operation and statement name.",
    ("pool", "operation", "statement"), DB_BUCKETS,
)
DB_QUERY_ERRORS = _spec(
    "db_query_errors_total", "counter", "Statements the database refused or failed, by error type.",
    ("pool", "operation", "error_type"),
)
DB_SLOW_QUERIES = _spec(
    "db_slow_queries_total", "counter", "Statements at or above the slow-query threshold.",
    ("pool", "operation", "statement"),
)
# Pool gauges are read from the pools at scrape time (a collector); in multi-worker mode the
# process monitor copies them into these shared gauges so the endpoint sums every worker.
DB_CONNECTIONS_IN_USE = _spec(
    "db_connections_in_use", "gauge", "Connections checked out of the pool.", ("pool",),
    multiprocess_mode="livesum",
)
DB_CONNECTIONS_IDLE = _spec(
    "db_connections_idle", "gauge", "Open connections waiting in the pool.", ("pool",),
    multiprocess_mode="livesum",
)
DB_CONNECTIONS_OVERFLOW = _spec(
    "db_connections_overflow", "gauge", "Connections open beyond the pool size.", ("pool",),
    multiprocess_mode="livesum",
)
DB_CONNECTIONS_MAX = _spec(
    "db_connections_max", "gauge", "Most connections the pool may hold (size + max overflow).",
    ("pool",), multiprocess_mode="livesum",
)
DB_CONNECTIONS_UTILIZATION = _spec(
    "db_connections_utilization_percent", "gauge",
    "Connections in use as a percentage of the pool's maximum (most saturated worker).",
    ("pool",), multiprocess_mode="livemax",
)

# Caches (surefoot.metrics.CacheMetrics; seed 002 §1)
CACHE_REQUESTS = _spec(
    "cache_requests_total", "counter", "Cache lookups by result (hit, miss, error).", ("cache", "result"),
)
CACHE_REQUEST_DURATION = _spec(
    "cache_request_duration_seconds", "histogram", "Time taken by cache lookups.", ("cache",), DB_BUCKETS,
)

# LLM calls (surefoot.logging.log_llm_call; seed 002 §1)
LLM_CALLS = _spec(
    "llm_calls_total", "counter", "LLM calls by outcome (success, error).", ("provider", "model", "outcome"),
)
LLM_TOKENS = _spec(
    "llm_tokens_total", "counter", "LLM tokens by type (prompt, completion).",
    ("provider", "model", "token_type"),
)
LLM_COST = _spec(
    "llm_cost_usd_total", "counter", "Cost of LLM calls in US dollars.", ("provider", "model"),
)
LLM_CALL_DURATION = _spec(
    "llm_call_duration_seconds", "histogram", "Duration of LLM calls.", ("provider", "model"),
    LATENCY_BUCKETS,
)

# Database queries reported by hand (surefoot.logging.log_db_query) share the families above.

# Process saturation (surefoot.metrics.ProcessMonitor; seed 004 §2.7)
CPU_UTILIZATION = _spec(
    "cpu_utilization_percent", "gauge",
    "CPU used by the process as a percentage of the machine's CPUs (summed over workers).", (),
    multiprocess_mode="livesum",
)
MEMORY_UTILIZATION = _spec(
    "memory_utilization_percent", "gauge",
    "Resident memory of the process as a percentage of the memory available to it "
    "(summed over workers).", (), multiprocess_mode="livesum",
)
PROCESS_OPEN_FDS = _spec(
    "process_open_file_descriptors", "gauge", "Open file descriptors (summed over workers).", (),
    multiprocess_mode="livesum",
)
PROCESS_MAX_FDS = _spec(
    "process_max_file_descriptors", "gauge", "The per-process file-descriptor limit.", (),
    multiprocess_mode="livemin",
)
PROCESS_FDS_UTILIZATION = _spec(
    "process_file_descriptors_utilization_percent", "gauge",
    "Open file descriptors as a percentage of the limit (most saturated worker).", (),
    multiprocess_mode="livemax",
)
EVENT_LOOP_LAG = _spec(
    "event_loop_lag_seconds", "gauge", "How late the event loop ran a timer at the last sample "
    "(largest over workers).", (), multiprocess_mode="livemax",
)
