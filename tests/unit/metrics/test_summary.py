from __future__ import annotations

from surefoot._core.catalogue import HTTP_SERVER_REQUEST_DURATION
from surefoot.metrics import summary


def test_summary_from_the_histogram(registry):
    h = HTTP_SERVER_REQUEST_DURATION.get(registry)
    for seconds in (0.010, 0.030):
        h.labels("GET", "/a", "200", "http", "").observe(seconds)
    h.labels("POST", "/a", "502", "http", "502").observe(0.5)
    h.labels("GET", "/b", "201", "http", "").observe(0.002)
    h.labels("GET", "", "404", "http", "").observe(0.001)
    out = summary(registry, module="calls", mode="platform")
    assert out == {
        "module": "calls",
        "mode": "platform",
        "requests_total": 5,
        "errors_total": 1,
        "error_rate_percent": 20.0,
        "status_codes": {"200": 2, "201": 1, "404": 1, "502": 1},
        "top_routes": [
            {"path": "/a", "count": 3, "errors": 1, "avg_duration_ms": 180.0},
            {"path": "/b", "count": 1, "errors": 0, "avg_duration_ms": 2.0},
        ],
        "routes_tracked": 2,
    }


def test_empty_registry(registry):
    out = summary(registry, module="m")
    assert out["requests_total"] == 0 and out["error_rate_percent"] == 0.0 and out["top_routes"] == []


def test_top_limit(registry):
    h = HTTP_SERVER_REQUEST_DURATION.get(registry)
    for i in range(15):
        for _ in range(i + 1):
            h.labels("GET", f"/r{i}", "200", "http", "").observe(0.001)
    out = summary(registry, module="m", top=10)
    assert len(out["top_routes"]) == 10 and out["top_routes"][0]["path"] == "/r14"
    assert out["routes_tracked"] == 15
