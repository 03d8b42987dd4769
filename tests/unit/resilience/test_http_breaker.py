"""The provider client's breaker counts 429/5xx answers as failures, as it counts transport errors."""

from __future__ import annotations

import random

import pytest

httpx = pytest.importorskip("httpx", reason="needs surefoot[http]")

from surefoot.resilience import (  # noqa: E402 - after the importorskip
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    aprovider_client,
    http_policy,
    provider_client,
)
from surefoot.testing import FakeClock  # noqa: E402


class Provider:
    """Answers from a script, then 200."""

    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.requests: list[object] = []

    def __call__(self, request: object) -> object:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, headers=self.headers if status != 200 else {})


def _policy(breaker: CircuitBreaker, clock: FakeClock, **options: object):
    return http_policy(
        "provider", breaker=breaker,
        retry_options={"clock": clock, "rng": random.Random(3), "budget": False, "max_retry_after": 5},
        **options,
    )


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_answers_that_fail_open_a_breaker_without_result_failure(registry, status):
    clock = FakeClock()
    breaker = CircuitBreaker("provider", failure_threshold=2, open_duration=60, clock=clock, registry=registry)
    provider = Provider(*[status] * 10)
    with provider_client("provider", base_url="http://provider", policy=_policy(breaker, clock, max_attempts=1),
                         transport=httpx.MockTransport(provider), registry=registry) as client:
        assert client.get("/a").status_code == status  # the last answer comes back to the caller
        assert client.get("/a").status_code == status
        with pytest.raises(CircuitOpenError):
            client.get("/a")
    assert len(provider.requests) == 2
    stats = breaker.get_stats()
    assert stats["failure_count"] == 2 and stats["success_count"] == 0


def test_other_answers_are_successes(registry):
    clock = FakeClock()
    breaker = CircuitBreaker("provider", failure_threshold=1, clock=clock, registry=registry)
    provider = Provider(404, 400, 201)
    with provider_client("provider", base_url="http://provider", policy=_policy(breaker, clock),
                         transport=httpx.MockTransport(provider), registry=registry) as client:
        assert [client.post("/a").status_code for _ in range(3)] == [404, 400, 201]
    assert breaker.state == CircuitState.CLOSED
    assert breaker.get_stats()["success_count"] == 3


def test_a_429_with_retry_after_opens_the_breaker_for_that_long(registry):
    clock = FakeClock()
    breaker = CircuitBreaker("provider", failure_threshold=5, clock=clock, registry=registry)
    provider = Provider(429, headers={"Retry-After": "40"})
    with provider_client("provider", base_url="http://provider", policy=_policy(breaker, clock, max_attempts=1),
                         transport=httpx.MockTransport(provider), registry=registry) as client:
        assert client.get("/a").status_code == 429
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after == pytest.approx(40)


async def test_async_client_counts_5xx_answers_and_keeps_the_breaker_visible(registry):
    clock = FakeClock()
    breaker = CircuitBreaker("provider", failure_threshold=3, open_duration=60, clock=clock, registry=registry)
    provider = Provider(*[503] * 10)
    policy = _policy(breaker, clock, max_attempts=5)
    assert policy.breaker is breaker
    async with aprovider_client("provider", base_url="http://provider", policy=policy,
                                transport=httpx.MockTransport(provider), registry=registry) as client:
        with pytest.raises(CircuitOpenError):
            await client.get("/a")  # three 503s opened it; the retry stopped at the refusal
    assert len(provider.requests) == 3
    assert breaker.state == CircuitState.OPEN
