"""The resilient httpx client against a real local HTTP server that misbehaves on command."""

from __future__ import annotations

import collections
import http.server
import json
import random
import socket
import struct
import threading

import httpx
import pytest

from surefoot import context
from surefoot.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    Policy,
    aprovider_client,
    http_failure,
    http_policy,
    provider_client,
    reset_retry_budgets,
)
from surefoot.testing import EventRecorder, FakeClock, provider_failures


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stalls)
    wbufsize = 1 << 16

    def log_message(self, *args):  # keep test output clean
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        server.received.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        action = server.script.popleft() if server.script else ("status", 200, {})
        kind = action[0]
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if kind == "hang":
            server.release.wait(10)  # answers only when the test releases it
            self.close_connection = True
            return
        _, status, headers = action
        payload = json.dumps({"status": status, "n": len(server.received)}).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _serve


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.script = collections.deque()
    srv.received = []
    srv.release = threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _fresh_budgets():
    reset_retry_budgets()
    yield
    reset_retry_budgets()


def policy(clock, max_attempts=3, **components):
    return http_policy(
        "twilio", max_attempts=max_attempts, retry_options={"clock": clock, "rng": random.Random(1), "budget": False},
        **components,
    )


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels) or 0


ENDPOINTS = ["POST /2010-04-01/Accounts/{sid}/Messages.json", "/v1/items/{item_id}"]


def test_5xx_results_are_retried_and_metered(server, registry):
    clock = FakeClock()
    server.script.extend([("status", 500, {}), ("status", 502, {})])
    with provider_client("twilio", base_url=server.url, policy=policy(clock), registry=registry,
                         endpoints=ENDPOINTS) as client:
        response = client.get("/v1/items/42")
    assert response.status_code == 200 and response.json()["n"] == 3
    assert len(clock.sleeps) == 2
    endpoint = "GET /v1/items/{item_id}"
    for status in ("500", "502", "200"):
        assert sample(registry, "integration_http_requests_total", provider="twilio", endpoint=endpoint,
                      status=status) == 1
    assert sample(registry, "integration_http_latency_seconds_count", provider="twilio", endpoint=endpoint) == 3


def test_429_retry_after_is_honoured(server, registry):
    clock = FakeClock()
    server.script.append(("status", 429, {"Retry-After": "3"}))
    with provider_client("twilio", base_url=server.url, policy=policy(clock), registry=registry) as client:
        assert client.get("/x").status_code == 200
    assert clock.sleeps == [3.0]


def test_after_the_last_attempt_the_last_response_is_returned(server, registry):
    clock = FakeClock()
    server.script.extend([("status", 503, {})] * 3)
    with provider_client("twilio", base_url=server.url, policy=policy(clock), registry=registry) as client:
        response = client.get("/x")
    assert response.status_code == 503 and response.json() == {"status": 503, "n": 3}
    with pytest.raises(httpx.HTTPStatusError):
        response.raise_for_status()


def test_non_idempotent_post_is_not_replayed_on_ambiguous_failures(server, registry):
    clock = FakeClock()
    server.script.extend([("status", 500, {}), ("status", 503, {})])
    with provider_client("twilio", base_url=server.url, policy=policy(clock), registry=registry,
                         endpoints=ENDPOINTS) as client:
        first = client.post("/2010-04-01/Accounts/AC0123456789abcdef/Messages.json", data={"Body": "hi"})
        assert first.status_code == 500  # the SMS may have been sent: no retry
        second = client.post("/2010-04-01/Accounts/AC0123456789abcdef/Messages.json", data={"Body": "hi"})
        assert second.status_code == 200  # 503: the provider refused it; replaying is safe
    assert [r["body"] for r in server.received] == [b"Body=hi"] * 3  # the body was resent intact
    assert sample(registry, "integration_http_requests_total", provider="twilio",
                  endpoint="POST /2010-04-01/Accounts/{sid}/Messages.json", status="503") == 1


def test_idempotency_key_makes_a_post_retryable(server, registry):
    clock = FakeClock()
    server.script.append(("status", 500, {}))
    with provider_client("twilio", base_url=server.url, policy=policy(clock), registry=registry) as client:
        response = client.post("/pay", json={"a": 1}, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 200 and len(server.received) == 2


def test_connection_reset_is_retried_for_get_but_not_for_post(server, registry):
    clock = FakeClock()
    server.script.append(("reset",))
    with provider_client("twilio", base_url=server.url, policy=policy(clock), registry=registry) as client:
        assert client.get("/x").status_code == 200
        server.script.append(("reset",))
        with pytest.raises(httpx.TransportError):
            client.post("/sms", json={})
    statuses = {
        s.labels["status"] for m in registry.collect() if m.name == "integration_http_requests"
        for s in m.samples
    }
    assert statuses & {"RemoteProtocolError", "ReadError"}


def test_slow_response_times_out_and_is_retried(server, registry):
    clock = FakeClock()
    server.script.append(("hang",))
    with provider_client("twilio", base_url=server.url, policy=policy(clock), registry=registry,
                         timeout=httpx.Timeout(5.0, read=0.2)) as client:
        assert client.get("/x").status_code == 200
    assert sample(registry, "integration_http_requests_total", provider="twilio", endpoint="GET /x",
                  status="ReadTimeout") == 1


def test_context_and_trace_headers_are_propagated(server, registry):
    from opentelemetry import trace

    span_context = trace.SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7, is_remote=False,
        trace_flags=trace.TraceFlags(1),
    )
    with provider_client("twilio", base_url=server.url, policy=policy(FakeClock()), registry=registry) as client:
        with context.bound(correlation_id="corr-1", causation_id="cause-1"), trace.use_span(
            trace.NonRecordingSpan(span_context)
        ):
            client.get("/x")
        client.get("/y", headers={"X-Correlation-ID": "mine"})
    first, second = server.received[0]["headers"], server.received[1]["headers"]
    assert first["X-Correlation-ID"] == "corr-1" and first["X-Causation-ID"] == "cause-1"
    assert first["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert second["X-Correlation-ID"] == "mine" and "traceparent" not in second


def test_endpoint_labels_are_bounded(server, registry):
    with provider_client("p", base_url=server.url, registry=registry, policy=Policy(name="p")) as client:
        client.get("/users/12345/orders/9f1c2d3e-aaaa-bbbb-cccc-123456789012")
        client.get("/users/777/profile", extensions={"endpoint": "profile"})
    assert sample(registry, "integration_http_requests_total", provider="p",
                  endpoint="GET /users/{id}/orders/{id}", status="200") == 1
    assert sample(registry, "integration_http_requests_total", provider="p", endpoint="profile", status="200") == 1

    from surefoot.resilience._http import _Endpoints

    versioned = _Endpoints(None, max_endpoints=10)
    assert versioned(httpx.Request("POST", "http://h/2010-04-01/Accounts/AC0123456789abcdef/Messages.json")) == (
        "POST /2010-04-01/Accounts/{id}/Messages.json"
    )
    endpoints = _Endpoints(None, max_endpoints=2)
    labels = {endpoints(httpx.Request("GET", f"http://h/a{i}")) for i in range(5)}
    assert labels == {"GET /a0", "GET /a1", "other"}


async def test_async_client_with_a_breaker_that_opens_on_5xx(server, registry):
    clock = FakeClock()
    breaker = CircuitBreaker("twilio-http", failure_threshold=3, open_duration=60, result_failure=http_failure,
                             clock=clock, metrics=False)
    server.script.extend([("status", 500, {})] * 10)
    events = EventRecorder()
    pol = http_policy(
        "twilio", max_attempts=5, breaker=breaker,
        retry_options={"clock": clock, "rng": random.Random(1), "budget": False, "hooks": events.hooks,
                       "max_retry_after": 5},
    )
    async with aprovider_client("twilio", base_url=server.url, policy=pol, registry=registry) as client:
        with pytest.raises(CircuitOpenError):
            await client.get("/x")
    assert len(server.received) == 3  # the breaker stopped the 4th and 5th attempts from going out
    assert events.kinds()[-1] == "gave_up"


async def test_async_client_success_and_retry_after(server, registry):
    clock = FakeClock()
    server.script.extend([("status", 429, {"Retry-After": "2"}), ("reset",)])
    async with aprovider_client("twilio", base_url=server.url, policy=policy(clock), registry=registry) as client:
        response = await client.get("/x")
    assert response.status_code == 200
    assert clock.sleeps[0] == 2.0 and len(server.received) == 3


def test_chaos_429_bursts_through_the_client(server, registry):
    clock = FakeClock()
    chaos = provider_failures("429", rate=0.1, seed=7, clock=clock, burst=2, retry_after=1)
    pol = policy(clock, max_attempts=6, chaos=chaos)
    with provider_client("twilio", base_url=server.url, policy=pol, registry=registry) as client:
        statuses = [client.get("/x").status_code for _ in range(30)]
    assert statuses == [200] * 30  # every burst is ridden out by the retries
    assert chaos.injected["result"] > 0 and 1.0 in clock.sleeps
    # injected answers never reached the server nor the request metrics
    assert len(server.received) == 30


def test_chaos_timeouts_are_retried_for_get_but_never_replayed_for_post(server, registry):
    clock = FakeClock()
    chaos = provider_failures("timeout", rate=0.5, seed=11, clock=clock)
    with provider_client("twilio", base_url=server.url, policy=policy(clock, max_attempts=8, chaos=chaos),
                         registry=registry) as client:
        assert all(client.get("/x").status_code == 200 for _ in range(10))
        sent_before = len(server.received)
        outcomes = []
        for _ in range(10):
            try:
                outcomes.append(client.post("/sms", json={}).status_code)
            except httpx.ReadTimeout:
                outcomes.append("timeout")
    assert "timeout" in outcomes  # a POST that timed out is not sent again
    assert len(server.received) - sent_before == outcomes.count(200)


def test_policy_timeout_bounds_a_hung_request_and_get_is_retried(server, registry):
    from surefoot.resilience import Timeout

    clock = FakeClock()
    server.script.append(("hang",))
    pol = policy(clock, timeout=Timeout(0.2, name="twilio", sync_mode="thread"))
    with provider_client("twilio", base_url=server.url, policy=pol, registry=registry) as client:
        assert client.get("/x").status_code == 200
    pol.timeout.shutdown()


async def test_async_policy_timeout_on_a_hung_request(server, registry):
    clock = FakeClock()
    server.script.append(("hang",))
    pol = policy(clock, timeout=0.2)
    async with aprovider_client("twilio", base_url=server.url, policy=pol, registry=registry) as client:
        assert (await client.get("/x")).status_code == 200
        server.script.append(("hang",))
        from surefoot.resilience import CallTimeoutError

        with pytest.raises(CallTimeoutError):
            await client.post("/sms", json={})  # may have been processed: not replayed
