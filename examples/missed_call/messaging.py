"""The Twilio Messages API client: surefoot's provider client with seed 004's breaker policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from surefoot.resilience import CircuitBreaker, aprovider_client, http_failure, http_policy

from .config import ServiceSettings

MESSAGES_ENDPOINT = "POST /2010-04-01/Accounts/{sid}/Messages.json"


def twilio_breaker(settings: ServiceSettings) -> CircuitBreaker:
    """Seed 004 §7: open if 5xx > 2 % over 3 min or P95 > 3x baseline for 5 min; half-open
    after 2 min with 10 % of traffic; close when errors < 1 % for 5 min.

    ``BREAKER_TIME_SCALE`` shrinks every duration (tests run the whole cycle in seconds).
    """
    scale = settings.breaker_time_scale
    return CircuitBreaker(
        "twilio",
        failure_rate_threshold=0.02, window="time", window_size=max(1, round(180 * scale)),
        minimum_calls=20, result_failure=http_failure,
        latency_factor=3.0, latency_window=max(1.0, 300 * scale),
        open_duration=120 * scale,
        half_open_traffic=0.10, half_open_window=300 * scale, half_open_failure_rate=0.01,
        half_open_min_calls=5,
    )


@dataclass
class SendResult:
    """What Twilio answered to one send."""

    status_code: int
    sid: str | None
    status: str | None
    error_code: int | None
    error_message: str | None
    retry_after: float | None


class TwilioClient:
    """Sends SMS through ``aprovider_client("twilio")``: timeout, retries with jitter, breaker.

    A POST to the Messages API is not idempotent, so the provider client retries it only
    when Twilio cannot have processed it (connect errors, 429, 503, an open breaker); other
    failures come back to the conversation handler, whose outbox event is retried later.
    """

    def __init__(self, settings: ServiceSettings, *, transport: Any = None) -> None:
        self.settings = settings
        self.breaker = twilio_breaker(settings)
        policy = http_policy(
            "twilio", max_attempts=settings.twilio_max_attempts, base_delay=0.05, max_delay=1.0,
            deadline=settings.twilio_timeout_seconds * settings.twilio_max_attempts,
            breaker=self.breaker, timeout=settings.twilio_timeout_seconds,
            retry_options={"max_retry_after": 2.0},
        )
        self.client = aprovider_client(
            "twilio", base_url=settings.twilio_api_base_url, endpoints=[MESSAGES_ENDPOINT], policy=policy,
            auth=(settings.twilio_account_sid, settings.twilio_auth_token),
            timeout=httpx.Timeout(settings.twilio_timeout_seconds), transport=transport,
        )
        self.path = f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages.json"

    async def send(self, *, to: str, body: str, status_callback: str) -> SendResult:
        """POST one message; returns Twilio's answer (raises on transport errors and refusals)."""
        form = {"To": to, "Body": body, "StatusCallback": status_callback}
        if self.settings.twilio_messaging_service_sid:
            form["MessagingServiceSid"] = self.settings.twilio_messaging_service_sid
        if self.settings.twilio_from_number:
            form["From"] = self.settings.twilio_from_number
        response = await self.client.post(self.path, data=form)
        try:
            data = response.json()
        except ValueError:
            data = {}
        retry_after = response.headers.get("retry-after")
        if response.status_code == 201:
            return SendResult(201, data.get("sid"), data.get("status"), None, None, None)
        return SendResult(
            response.status_code, None, None, data.get("code"), str(data.get("message", response.text[:200])),
            float(retry_after) if retry_after and retry_after.isdigit() else None,
        )

    async def aclose(self) -> None:
        await self.client.aclose()
