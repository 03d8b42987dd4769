"""A real webhook receiver on a loopback port that checks Standard Webhooks signatures itself.

The verification is written here from the specification, not with surefoot's signing
code: base64(HMAC-SHA256(key = base64 of the secret after ``whsec_``, msg =
``f"{webhook-id}.{webhook-timestamp}.{body}"``)), any ``v1,`` token of the space-separated
``webhook-signature`` header may match. An unsigned or badly signed request gets 401.

Paths choose the behaviour:
    /ok, /ok/<anything>   204
    /gone                 410
    /throttle             429 with ``Retry-After: 7``
    /unavailable          503 with ``Retry-After: <receiver.retry_after_date>``
    /bad-gateway          502 without ``Retry-After``
    /moved                301 to /ok
    /bad                  400 with a short body
    /error                500
    /slow                 holds the request until the test ends, then 200
    /hold                 holds each request briefly (concurrency is recorded), then 200
    /flaky                500 when the JSON payload has ``"fail": true``, else 200
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


def decode_secret(secret: str) -> bytes:
    text = secret.removeprefix("whsec_")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verify(keys: list[bytes], headers: dict[str, str], body: bytes) -> bool:
    try:
        msg_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"]
        signatures = headers["webhook-signature"]
    except KeyError:
        return False
    if not timestamp.isdigit():
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = [base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys]
    for token in signatures.split(" "):
        version, _, signature = token.partition(",")
        if version == "v1" and any(hmac.compare_digest(signature, e) for e in expected):
            return True
    return False


class Receiver:
    def __init__(self, secrets: list[str]) -> None:
        self.keys = [decode_secret(s) for s in secrets]
        self.requests: list[Received] = []
        self.rejected = 0
        self.retry_after_date = "Wed, 21 Oct 2015 07:28:00 GMT"
        self.release = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if not verify(receiver.keys, headers, body):
                    with receiver._lock:
                        receiver.rejected += 1
                    return self._reply(401, b"bad signature")
                with receiver._lock:
                    receiver.requests.append(Received(self.path, headers, body))
                receiver.handle(self, body)

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def handle(self, h, body: bytes) -> None:
        path = h.path.split("?")[0]
        if path == "/ok" or path.startswith("/ok/"):
            return h._reply(204)
        if path == "/gone":
            return h._reply(410, b"gone")
        if path == "/throttle":
            return h._reply(429, b"slow down", {"Retry-After": "7"})
        if path == "/unavailable":
            return h._reply(503, b"", {"Retry-After": self.retry_after_date})
        if path == "/bad-gateway":
            return h._reply(502, b"upstream")
        if path == "/moved":
            return h._reply(301, b"", {"Location": self.url("/ok")})
        if path == "/bad":
            return h._reply(400, b"payload.call_id is required")
        if path == "/error":
            return h._reply(500, b"boom")
        if path == "/slow":
            self.release.wait(30)
            return h._reply(200)
        if path == "/hold":
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            # a short hold so that parallel requests overlap; the assertion is on the cap
            time.sleep(0.05)
            with self._lock:
                self.in_flight -= 1
            return h._reply(200)
        if path == "/flaky":
            failing = json.loads(body)["payload"].get("fail")
            return h._reply(500 if failing else 200)
        return h._reply(404)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
