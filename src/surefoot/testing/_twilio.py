"""A Twilio fake over real HTTP (Messages API + signed status callbacks).

The call simulator (signed voice callbacks posted to a service) is in :mod:`._calls`.

    with TwilioFake(error_rate=0.3, timeout_rate=0.1, lost_fraction=0.5, seed=7) as twilio:
        client = httpx.Client(base_url=twilio.url, auth=twilio.auth)
        ...
        twilio.messages          # every accepted message
        twilio.stats()           # requests, accepted, errors, timeouts, lost, duplicates ...

Both run in background threads, so sync and async tests (and other processes) can use them.
"""

from __future__ import annotations

import base64
import hmac
import json
import random
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._webhooks import form_body, sign_twilio

__all__ = ["E164", "FakeMessage", "TwilioFake"]

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
API_VERSION = "2010-04-01"
_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages(?:/(?P<sid>SM[0-9a-f]{32}))?\.json$")
_FINAL = ("delivered", "undelivered", "failed")
MAX_BODY = 64 * 1024


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # a burst of concurrent sends must queue, not be refused
    daemon_threads = True


@dataclass
class FakeMessage:
    """One message the fake accepted (it was "sent", whatever the client heard back)."""

    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    status: str
    date_created: str
    response_lost: bool = False
    callbacks: list[str] = field(default_factory=list)
    accepted_at: float = 0.0
    """Epoch seconds when the fake accepted it (Twilio's "queued")."""

    def as_json(self, account_sid: str) -> dict[str, Any]:
        segments = max(1, -(-len(self.body) // 160))
        return {
            "sid": self.sid,
            "account_sid": account_sid,
            "messaging_service_sid": self.messaging_service_sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "status": self.status,
            "direction": "outbound-api",
            "api_version": API_VERSION,
            "date_created": self.date_created,
            "date_updated": self.date_created,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "num_segments": str(segments),
            "num_media": "0",
            "price": None,
            "price_unit": "USD",
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{self.sid}.json",
        }


def _error(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


class TwilioFake:
    """A local Messages API with fault injection and signed status callbacks.

    Args:
        account_sid: the account (``AC`` + 32 hex; default random); basic auth user.
        auth_token: the auth token (default random); basic auth password and the key that
            signs status callbacks (``X-Twilio-Signature``).
        latency: seconds before answering: a number, or ``fn(rng) -> seconds`` (see
            :meth:`lognormal`).
        error_rate: share of requests answered ``500`` with Twilio's error JSON (code 20500).
        timeout_rate: share of requests that get no answer for ``hang_seconds`` (the client
            times out), then the connection is closed.
        lost_fraction: share of the injected 5xx and timeouts where the message **was**
            accepted (and will be delivered) before the failure answer: "accepted but the
            response was lost".
        lost_response_rate: share of requests accepted and then answered by closing the
            connection without a response.
        rate_limit: requests per second above which the answer is ``429`` (code 20429) with
            ``Retry-After: 1``; ``None``: no limit.
        opted_out: numbers that replied STOP: sending to them is ``400`` code 21610.
        failing_numbers: numbers whose messages end ``failed`` (ErrorCode 30003).
        callbacks: send status callbacks (``sent`` then ``delivered``/``failed``) to each
            message's ``StatusCallback``.
        callback_delay: seconds between a message's accepted answer and each callback.
        duplicate_callbacks: send every callback twice (as Twilio may).
        hang_seconds: how long a timeout fault holds the request.
        seed: makes the faults and sids reproducible.
        host, port: where to listen (default: a free loopback port).
    """

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        latency: float | Callable[[random.Random], float] = 0.0,
        error_rate: float = 0.0,
        timeout_rate: float = 0.0,
        lost_fraction: float = 0.0,
        lost_response_rate: float = 0.0,
        rate_limit: float | None = None,
        opted_out: Iterable[str] = (),
        failing_numbers: Iterable[str] = (),
        callbacks: bool = True,
        callback_delay: float = 0.01,
        duplicate_callbacks: bool = False,
        hang_seconds: float = 10.0,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        for name, rate in (("error_rate", error_rate), ("timeout_rate", timeout_rate),
                           ("lost_fraction", lost_fraction), ("lost_response_rate", lost_response_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        if error_rate + timeout_rate + lost_response_rate > 1.0:
            raise ValueError("error_rate + timeout_rate + lost_response_rate must not exceed 1")
        if not callable(latency) and not (isinstance(latency, (int, float)) and latency >= 0):
            raise ValueError(f"latency must be seconds >= 0 or fn(rng) -> seconds, got {latency!r}")
        for name, seconds in (("callback_delay", callback_delay), ("hang_seconds", hang_seconds)):
            if not (isinstance(seconds, (int, float)) and seconds >= 0):
                raise ValueError(f"{name} must be seconds >= 0, got {seconds!r}")
        if rate_limit is not None and not (isinstance(rate_limit, (int, float)) and rate_limit > 0):
            raise ValueError(f"rate_limit must be requests per second > 0 (or None: no limit), got {rate_limit!r}")
        self.rng = random.Random(seed)
        self.account_sid = account_sid or "AC" + self._hex()
        self.auth_token = auth_token or secrets.token_hex(16)
        self.latency = latency
        self.error_rate = error_rate
        self.timeout_rate = timeout_rate
        self.lost_fraction = lost_fraction
        self.lost_response_rate = lost_response_rate
        self.rate_limit = rate_limit
        self.opted_out: set[str] = set(opted_out)
        self.failing_numbers: set[str] = set(failing_numbers)
        self.callbacks = callbacks
        self.callback_delay = callback_delay
        self.duplicate_callbacks = duplicate_callbacks
        self.hang_seconds = hang_seconds
        self.messages: list[FakeMessage] = []
        self.counts: Counter[str] = Counter()
        self.callback_failures: list[str] = []
        self._lock = threading.Lock()
        self._window: list[float] = []
        self._stopping = threading.Event()
        self._server = _Server((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="twilio-fake-callbacks")
        self._pending_callbacks = 0
        self._idle = threading.Condition(self._lock)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``): use it as the client's ``base_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def auth(self) -> tuple[str, str]:
        """``(account_sid, auth_token)`` for HTTP basic auth."""
        return (self.account_sid, self.auth_token)

    @property
    def messages_path(self) -> str:
        """The Messages resource path for this account."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def start(self) -> TwilioFake:
        """Start serving in a background thread (idempotent); returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="twilio-fake", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and sending callbacks (hanging requests are released)."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> TwilioFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection --------------------------------------------------------------------

    @staticmethod
    def lognormal(median: float, p95: float) -> Callable[[random.Random], float]:
        """A latency distribution with the given median and 95th percentile (seconds)."""
        import math

        if not 0 < median <= p95:
            raise ValueError(f"lognormal needs 0 < median <= p95 (seconds), got median={median!r} p95={p95!r}")
        mu = math.log(median)
        sigma = max(1e-9, (math.log(p95) - mu) / 1.6449)
        return lambda rng: rng.lognormvariate(mu, sigma)

    def stats(self) -> dict[str, int]:
        """Counts: ``requests``, ``accepted``, ``errors``, ``timeouts``, ``lost`` (accepted
        but the client heard a failure or nothing), ``rate_limited``, ``rejected`` (4xx),
        ``callbacks``, ``duplicates`` (messages beyond the first per ``StatusCallback`` URL,
        or per To+Body when there is none)."""
        with self._lock:
            counts = dict(self.counts)
        for key in ("requests", "accepted", "errors", "timeouts", "lost", "rate_limited", "rejected", "callbacks"):
            counts.setdefault(key, 0)
        counts["duplicates"] = sum(n - 1 for n in self.sent_per_key().values() if n > 1)
        return counts

    def sent_per_key(self) -> dict[str, int]:
        """How many messages were accepted per ``StatusCallback`` URL (else per To+Body)."""
        with self._lock:
            return dict(Counter(m.status_callback or f"{m.to}|{m.body}" for m in self.messages))

    def wait_for_callbacks(self, timeout: float = 10.0) -> bool:
        """Wait until no status callback is pending; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending_callbacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- internals ---------------------------------------------------------------------

    def _hex(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def _rate_limited(self) -> bool:
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        with self._lock:
            self._window = [t for t in self._window if now - t < 1.0]
            if len(self._window) >= self.rate_limit:
                return True
            self._window.append(now)
        return False

    def _draw(self) -> tuple[str, bool, float]:
        """Decide the fault for one request: (kind, accepted_before_failure, delay)."""
        with self._lock:
            roll = self.rng.random()
            lost = self.rng.random() < self.lost_fraction
            delay = self.latency(self.rng) if callable(self.latency) else self.latency
        if roll < self.error_rate:
            return "error", lost, delay
        if roll < self.error_rate + self.timeout_rate:
            return "timeout", lost, delay
        if roll < self.error_rate + self.timeout_rate + self.lost_response_rate:
            return "drop", True, delay
        return "ok", True, delay

    def _accept(self, form: dict[str, str], *, lost: bool) -> FakeMessage:
        with self._lock:
            sid = "SM" + self._hex()
            message = FakeMessage(
                sid=sid, to=form["To"], from_=form.get("From"),
                messaging_service_sid=form.get("MessagingServiceSid"), body=form["Body"],
                status_callback=form.get("StatusCallback"),
                status="accepted" if form.get("MessagingServiceSid") and not form.get("From") else "queued",
                date_created=formatdate(usegmt=True), response_lost=lost, accepted_at=time.time(),
            )
            self.messages.append(message)
            self.counts["accepted"] += 1
            if lost:
                self.counts["lost"] += 1
        if self.callbacks and message.status_callback:
            self._schedule_callbacks(message)
        return message

    def _schedule_callbacks(self, message: FakeMessage) -> None:
        final = "failed" if message.to in self.failing_numbers else "delivered"
        with self._lock:
            self._pending_callbacks += 1
        try:
            self._pool.submit(self._send_callbacks, message, ["sent", final])
        except RuntimeError:  # stopped
            with self._idle:
                self._pending_callbacks -= 1
                self._idle.notify_all()

    def _send_callbacks(self, message: FakeMessage, statuses: Sequence[str]) -> None:
        import httpx

        try:
            with httpx.Client(timeout=10) as client:
                for status in statuses:
                    if self._stopping.wait(self.callback_delay):
                        return
                    params = {
                        "MessageSid": message.sid, "SmsSid": message.sid, "AccountSid": self.account_sid,
                        "MessageStatus": status, "SmsStatus": status, "To": message.to,
                        "From": message.from_ or "", "ApiVersion": API_VERSION,
                    }
                    if status == "failed":
                        params["ErrorCode"] = "30003"
                    url = message.status_callback or ""
                    headers = {**sign_twilio(url, params, self.auth_token),
                               "Content-Type": "application/x-www-form-urlencoded"}
                    for _ in range(2 if self.duplicate_callbacks else 1):
                        try:
                            response = client.post(url, content=form_body(params), headers=headers)
                            ok = response.status_code < 300
                        except httpx.HTTPError as exc:
                            ok, response = False, exc  # type: ignore[assignment]
                        with self._lock:
                            self.counts["callbacks"] += 1
                            message.status = status
                            message.callbacks.append(status)
                            if not ok:
                                self.callback_failures.append(f"{message.sid} {status}: {response}")
        finally:
            with self._idle:
                self._pending_callbacks -= 1
                self._idle.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "TwilioFake/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self, account: str) -> bool:
                header = self.headers.get("Authorization", "")
                scheme, _, encoded = header.partition(" ")
                try:
                    user, _, password = base64.b64decode(encoded).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return False
                return (
                    scheme.lower() == "basic"
                    and hmac.compare_digest(user, fake.account_sid)
                    and hmac.compare_digest(password, fake.auth_token)
                    and account == fake.account_sid
                )

            def do_GET(self) -> None:
                match = _MESSAGES.match(urlsplit(self.path).path)
                if not match or not match["sid"]:
                    self._send(404, _error(20404, "The requested resource was not found", 404))
                    return
                if not self._authorised(match["account"]):
                    self._send(401, _error(20003, "Authenticate", 401))
                    return
                with fake._lock:
                    found = next((m for m in fake.messages if m.sid == match["sid"]), None)
                if found is None:
                    self._send(404, _error(20404, f"The requested resource {self.path} was not found", 404))
                    return
                self._send(200, found.as_json(fake.account_sid))

            def do_POST(self) -> None:
                with fake._lock:
                    fake.counts["requests"] += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._send(413, _error(21617, "The concatenated message body exceeds the limit", 413))
                    return
                raw = self.rfile.read(length)
                match = _MESSAGES.match(urlsplit(self.path).path)
                if not match or match["sid"]:
                    self._send(404, _error(20404, "The requested resource was not found", 404))
                    return
                if not self._authorised(match["account"]):
                    with fake._lock:
                        fake.counts["rejected"] += 1
                    self._send(401, _error(20003, "Authenticate", 401))
                    return
                if fake._rate_limited():
                    with fake._lock:
                        fake.counts["rate_limited"] += 1
                    self._send(429, _error(20429, "Too Many Requests", 429), {"Retry-After": "1"})
                    return
                form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
                problem = self._validate(form)
                if problem is not None:
                    with fake._lock:
                        fake.counts["rejected"] += 1
                    self._send(400, problem)
                    return
                kind, accepted, delay = fake._draw()
                if delay > 0:
                    fake._stopping.wait(delay)
                if kind == "ok":
                    message = fake._accept(form, lost=False)
                    try:
                        self._send(201, message.as_json(fake.account_sid))
                    except OSError:  # the client gave up (timed out) first: its answer is lost
                        with fake._lock:
                            message.response_lost = True
                            fake.counts["lost"] += 1
                        self.close_connection = True
                elif kind == "drop":
                    fake._accept(form, lost=True)
                    self.close_connection = True
                    self.connection.close()
                elif kind == "error":
                    if accepted:
                        fake._accept(form, lost=True)
                    with fake._lock:
                        fake.counts["errors"] += 1
                    self._send(500, _error(20500, "Internal Server Error", 500))
                else:  # timeout
                    if accepted:
                        fake._accept(form, lost=True)
                    with fake._lock:
                        fake.counts["timeouts"] += 1
                    fake._stopping.wait(fake.hang_seconds)
                    self.close_connection = True
                    self.connection.close()

            def _validate(self, form: dict[str, str]) -> dict[str, Any] | None:
                to = form.get("To", "")
                if not E164.match(to):
                    return _error(21211, f"The 'To' number {to} is not a valid phone number.", 400)
                if not form.get("From") and not form.get("MessagingServiceSid"):
                    return _error(21603, "A 'From' or 'MessagingServiceSid' parameter is required", 400)
                if not form.get("Body"):
                    return _error(21602, "Message body is required.", 400)
                if to in fake.opted_out:
                    return _error(21610, "Attempt to send to unsubscribed recipient", 400)
                return None

        return Handler
