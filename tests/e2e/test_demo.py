"""The demo service through a real uvicorn server: routes, problem bodies, metrics, log format."""

from __future__ import annotations

import json
import time

import httpx
import pytest

pytestmark = pytest.mark.slow


def _log_lines(output: str) -> list[dict]:
    lines = []
    for raw in output.splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))  # every log line is one JSON object
    return lines


def test_demo_routes_errors_metrics_and_logs(start_demo) -> None:
    server = start_demo()
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        hello = client.get("/hello", params={"name": "Ada"}, headers={"X-Correlation-ID": "e2e-hello-1"})
        assert hello.status_code == 200 and hello.json() == {"message": "hello, Ada"}
        assert hello.headers["x-correlation-id"] == "e2e-hello-1"

        assert client.get("/slow", params={"seconds": 0.05}).json() == {"slept": 0.05}

        failed = client.get("/fail")
        assert failed.status_code == 500
        assert failed.headers["content-type"].startswith("application/problem+json")
        problem = failed.json()
        assert problem["code"] == "INTERNAL_ERROR" and problem["instance"] == "/fail"
        assert "Traceback" not in failed.text and "on purpose" not in failed.text

        invalid = client.post("/contacts", json={"name": "", "email": "nope"})
        assert invalid.status_code == 400
        body = invalid.json()
        assert body["code"] == "VALIDATION_ERROR" and body["correlation_id"]
        assert {tuple(e["loc"])[-1] for e in body["errors"]} >= {"name", "email"}

        created = client.post(
            "/contacts", json={"name": "Ada", "email": "ada.lovelace@example.com", "phone": "+14155550199"}
        )
        assert created.status_code == 201
        contact_id = created.json()["id"]
        assert client.get(f"/contacts/{contact_id}").json()["name"] == "Ada"

        missing = client.get("/contacts/999999")
        assert missing.status_code == 404
        assert missing.json()["code"] == "NOT_FOUND"
        assert missing.json()["detail"] == "Contact not found: 999999"

        health = client.get("/health").json()
        assert health["status"] == "healthy" and health["components"]["database"]["status"] == "healthy"
        assert health["service"] == "surefoot-demo"
        assert client.get("/livez").status_code == 200

        metrics = client.get("/metrics").text
        assert (
            'http_server_request_duration_seconds_count{error_type="",http_request_method="GET",'
            'http_response_status_code="404",http_route="/contacts/{contact_id}",url_scheme="http"} 1.0'
        ) in metrics
        assert 'http_route="/fail"' in metrics and 'error_type="RuntimeError"' in metrics
        summary = client.get("/metrics", params={"format": "json"}).json()
        assert summary["module"] == "surefoot-demo" and summary["requests_total"] >= 7

    # Log lines reach the pipe within SUREFOOT_LOG_BUFFER_MS (100 ms): wait for the last request's.
    deadline = time.monotonic() + 10
    while True:
        lines = _log_lines(server.output())
        if any(l["event"] == "http_request" and l["status"] == 404 for l in lines) or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling the server's output
    # uvicorn's own lines share the format
    assert any(l["module"] == "uvicorn.error" and "Uvicorn running" in l["event"] for l in lines)
    for line in lines:
        assert {"timestamp", "level", "event", "module", "correlation_id"} <= line.keys()
    access = [l for l in lines if l["event"] == "http_request"]
    hello_line = next(l for l in access if l["correlation_id"] == "e2e-hello-1")
    assert hello_line["route"] == "/hello" and hello_line["status"] == 200
    assert not any(l["route"] in ("/health", "/livez", "/readyz", "/metrics") for l in access)
    created_line = next(l for l in lines if l["event"] == "contact_created")
    assert created_line["email"] == "***.com" and created_line["phone"] == "***0199"
    logged = "\n".join(raw for raw in server.output().splitlines() if raw.startswith("{"))
    for line in lines:
        if "ada.lovelace" in json.dumps(line) or "4155550199" in json.dumps(line):
            raise AssertionError(f"PII in a log line: {line}")
    assert "ada.lovelace" not in logged and "4155550199" not in logged
    crash = next(l for l in lines if l["event"] == "unhandled_exception")
    assert "Traceback" in crash["exception"] and crash["correlation_id"] == problem["correlation_id"]
