"""SIGTERM through a real uvicorn server: readiness turns 503 while in-flight work completes."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.slow

ACTIVE = 'http_server_active_requests{http_request_method="GET",url_scheme="http"} 1.0'


def _poll(predicate, deadline_seconds: float, what: str):
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigterm_drains_readiness_while_in_flight_requests_complete(start_demo) -> None:
    server = start_demo("--drain-seconds", "2")
    result: dict = {}

    def slow_request() -> None:
        with httpx.Client(timeout=30) as client:
            result["response"] = client.get(server.base_url + "/slow", params={"seconds": 3})

    worker = threading.Thread(target=slow_request)
    worker.start()
    # the slow request is in flight once the active-requests gauge says so
    _poll(lambda: ACTIVE in httpx.get(server.base_url + "/metrics").text, 10, "the in-flight request")

    server.process.send_signal(signal.SIGTERM)
    ready = _poll(
        lambda: (r := httpx.get(server.base_url + "/readyz")).status_code == 503 and r, 2, "readiness 503"
    )
    assert ready.json() == {"phase": "draining", "status": "not_ready", "reason": "draining"}
    assert httpx.get(server.base_url + "/livez").status_code == 200  # alive while draining

    worker.join(30)
    assert result["response"].status_code == 200 and result["response"].json() == {"slept": 3.0}
    server.process.wait(20)
    assert server.process.returncode in (0, -signal.SIGTERM)
    output = server.output()
    assert output.index('"service_draining"') < output.index('"Shutting down"')
    assert '"route":"/slow","status":200' in output
