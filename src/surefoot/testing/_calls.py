"""A call simulator: signed Twilio voice status callbacks (and inbound SMS) posted to a service.

Runs in a background thread (:meth:`CallSimulator.start`) or call by call, so sync and async
tests (and other processes) can use it; :class:`~._twilio.TwilioFake` is the other side.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from ._twilio import API_VERSION
from ._webhooks import form_body, sign_twilio

__all__ = ["CallSimulator", "SimulatedCall"]


@dataclass
class SimulatedCall:
    """One voice callback the simulator posted."""

    call_sid: str
    from_: str
    to: str
    status: str
    sent_at: float
    status_code: int | None
    error: str | None = None


class CallSimulator:
    """Posts signed Twilio voice status callbacks (and inbound SMS) to a service.

    Args:
        voice_url: the service's public voice status callback URL (what Twilio signs).
        auth_token: the Twilio auth token the service verifies with.
        account_sid: the account in the payloads.
        to: the service's numbers (called); one is picked per call.
        callers: the numbers calling (default: random US numbers).
        statuses: ``CallStatus`` values to draw from (default: the missed ones).
        sms_url: the inbound SMS webhook URL (for :meth:`sms`).
        seed: makes the calls reproducible.
    """

    def __init__(
        self,
        voice_url: str,
        auth_token: str,
        *,
        account_sid: str = "AC00000000000000000000000000000000",
        to: Sequence[str] = ("+14155550100",),
        callers: Sequence[str] | None = None,
        statuses: Sequence[str] = ("no-answer", "busy", "failed"),
        sms_url: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.voice_url = voice_url
        self.sms_url = sms_url
        self.auth_token = auth_token
        self.account_sid = account_sid
        self.to = list(to)
        self.callers = list(callers) if callers else None
        self.statuses = list(statuses)
        self.rng = random.Random(seed)
        self.calls: list[SimulatedCall] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def voice_params(self, *, call_sid: str | None = None, from_: str | None = None, to: str | None = None,
                     status: str | None = None, duration: int = 0) -> dict[str, str]:
        """The form fields of one voice status callback."""
        with self._lock:
            call_sid = call_sid or f"CA{self.rng.getrandbits(128):032x}"
            caller = from_ or (self.rng.choice(self.callers) if self.callers
                               else f"+1415{self.rng.randrange(10**7):07d}")
            to = to or self.rng.choice(self.to)
            status = status or self.rng.choice(self.statuses)
        return {
            "AccountSid": self.account_sid, "CallSid": call_sid, "From": caller, "To": to,
            "Direction": "inbound", "CallStatus": status, "ApiVersion": API_VERSION,
            "CallDuration": str(duration), "Timestamp": formatdate(usegmt=True),
            "CallbackSource": "call-progress-events", "SequenceNumber": "0",
        }

    def post(self, url: str, params: dict[str, str], client: Any = None) -> Any:
        """POST ``params`` signed to ``url``; returns the ``httpx.Response``."""
        import httpx

        headers = {**sign_twilio(url, params, self.auth_token), "Content-Type": "application/x-www-form-urlencoded"}
        if client is None:
            return httpx.post(url, content=form_body(params), headers=headers, timeout=30)
        return client.post(url, content=form_body(params), headers=headers)

    def call(self, client: Any = None, **overrides: Any) -> SimulatedCall:
        """Post one voice status callback (fields from :meth:`voice_params`)."""
        params = self.voice_params(**overrides)
        sent_at = time.time()
        try:
            response = self.post(self.voice_url, params, client)
            record = SimulatedCall(params["CallSid"], params["From"], params["To"], params["CallStatus"],
                                   sent_at, response.status_code)
        except Exception as exc:  # noqa: BLE001  (recorded, the run goes on)
            record = SimulatedCall(params["CallSid"], params["From"], params["To"], params["CallStatus"],
                                   sent_at, None, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.calls.append(record)
        return record

    def sms(self, from_: str, to: str, body: str, client: Any = None) -> Any:
        """Post one signed inbound SMS (e.g. ``STOP``) to ``sms_url``; returns the response."""
        if not self.sms_url:
            raise ValueError("CallSimulator(sms_url=...) is needed to send inbound SMS")
        params = {"MessageSid": f"SM{self.rng.getrandbits(128):032x}", "AccountSid": self.account_sid,
                  "From": from_, "To": to, "Body": body, "NumMedia": "0", "ApiVersion": API_VERSION}
        return self.post(self.sms_url, params, client)

    def run(self, count: int, rate: float, **overrides: Any) -> list[SimulatedCall]:
        """Post ``count`` calls at ``rate`` per second (open loop, paced on a schedule).

        Requests go out from a small thread pool so a slow answer does not slow the schedule.
        """
        import httpx

        if rate <= 0:
            raise ValueError("rate must be positive")
        results: list[SimulatedCall] = []
        with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64)) as client, \
                ThreadPoolExecutor(max_workers=32) as pool:
            start = time.monotonic()
            futures = []
            for i in range(count):
                if self._stop.is_set():
                    break
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(self.call, client, **overrides))
            results = [f.result() for f in futures]
        return results

    def start(self, rate: float) -> CallSimulator:
        """Post calls at ``rate`` per second in a background thread until :meth:`stop`."""
        if rate <= 0:
            raise ValueError("rate must be positive")

        def loop() -> None:
            import httpx

            with httpx.Client(timeout=30) as client:
                while not self._stop.wait(1.0 / rate):
                    self.call(client)

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="call-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the background stream started with :meth:`start`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(35)
            self._thread = None
