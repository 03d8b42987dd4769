"""The seed 001 test list, kept by name: users of that report expect exactly this behaviour."""

from __future__ import annotations

import threading

import pytest

from surefoot.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    circuit_breaker,
    get_circuit_breaker,
    remove_circuit_breaker,
    reset_all_circuit_breakers,
)
from surefoot.testing import FakeClock


@pytest.fixture(autouse=True)
def _fresh_shared_breakers():
    remove_circuit_breaker()
    yield
    remove_circuit_breaker()


def failing_call():
    raise ConnectionError("Service down")


def working_call():
    return "success"


def trip(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(ConnectionError):
            breaker.call(failing_call)


class TestCircuitBreaker:
    def test_initial_state_closed(self, registry):
        breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=30, registry=registry)
        assert breaker.state == CircuitState.CLOSED
        assert breaker.state.value == "closed"

    def test_successful_call_in_closed(self, registry):
        breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=30, registry=registry)
        assert breaker.call(lambda a, b: a + b, 1, 2) == 3
        assert breaker.state == CircuitState.CLOSED
        assert breaker.get_stats()["success_count"] == 1

    def test_opens_after_threshold_failures(self, registry, fake_clock):
        breaker = CircuitBreaker(failure_threshold=3, recovery_timeout=30, clock=fake_clock, registry=registry)
        trip(breaker, 2)
        assert breaker.state == CircuitState.CLOSED
        trip(breaker, 1)
        assert breaker.state == CircuitState.OPEN
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(working_call)
        assert info.value.retry_after == pytest.approx(30.0)

    def test_success_resets_consecutive_failures(self, registry):
        breaker = CircuitBreaker(failure_threshold=3, registry=registry)
        trip(breaker, 2)
        breaker.call(working_call)
        trip(breaker, 2)
        assert breaker.state == CircuitState.CLOSED

    def test_half_open_after_recovery_timeout(self, registry, fake_clock):
        breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30, clock=fake_clock, registry=registry)
        trip(breaker, 2)
        fake_clock.advance(29.9)
        assert breaker.state == CircuitState.OPEN
        fake_clock.advance(0.1)
        assert breaker.get_stats()["state"] == "half_open"
        assert breaker.state == CircuitState.HALF_OPEN

    def test_closes_after_successful_half_open(self, registry, fake_clock):
        breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30, clock=fake_clock, registry=registry)
        trip(breaker, 2)
        fake_clock.advance(31)
        assert breaker.call(working_call) == "success"
        for _ in range(3):
            breaker.call(working_call)
        assert breaker.state == CircuitState.CLOSED

    def test_reopens_on_half_open_failure(self, registry, fake_clock):
        breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30, clock=fake_clock, registry=registry)
        trip(breaker, 2)
        fake_clock.advance(30)
        trip(breaker, 1)
        assert breaker.state == CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            breaker.call(working_call)

    def test_manual_reset(self, registry):
        breaker = CircuitBreaker(failure_threshold=1, registry=registry)
        trip(breaker, 1)
        assert breaker.state == CircuitState.OPEN
        breaker.reset()
        assert breaker.state == CircuitState.CLOSED
        stats = breaker.get_stats()
        assert stats["failure_count"] == 0 and stats["consecutive_failures"] == 0
        assert stats["last_failure_time"] is None
        assert breaker.call(working_call) == "success"
        assert breaker.get_stats()["success_count"] == 1

    def test_get_stats(self, registry, fake_clock):
        breaker = get_circuit_breaker("test_service", failure_threshold=3, clock=fake_clock, registry=registry)
        trip(breaker, 3)
        with pytest.raises(CircuitOpenError):
            breaker.call(working_call)
        stats = breaker.get_stats()
        assert stats["name"] == "test_service"
        assert stats["state"] == "open"
        assert stats["failure_count"] == 3
        assert stats["success_count"] == 0
        assert stats["total_calls"] == 3
        assert stats["not_permitted_count"] == 1
        assert stats["last_failure_time"] == fake_clock.time()
        assert stats["retry_after"] == pytest.approx(30.0)

    def test_concurrent_access_thread_safe(self, registry):
        breaker = CircuitBreaker(failure_threshold=10_000, registry=registry)
        n_threads, per_thread = 8, 2_000

        def work(i: int) -> None:
            for k in range(per_thread):
                try:
                    breaker.call(failing_call if (i + k) % 2 else working_call)
                except ConnectionError:
                    pass

        threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = breaker.get_stats()
        assert stats["total_calls"] == n_threads * per_thread
        assert stats["failure_count"] == stats["success_count"] == n_threads * per_thread // 2
        assert breaker.state == CircuitState.CLOSED


class TestCircuitBreakerDecorator:
    def test_decorator_success(self, registry):
        @circuit_breaker(failure_threshold=5, recovery_timeout=30, name="api", registry=registry)
        def call_api(x):
            return x * 2

        assert call_api(21) == 42

    def test_decorator_opens_circuit(self, registry):
        @circuit_breaker(failure_threshold=2, recovery_timeout=30, registry=registry)
        def flaky():
            raise ConnectionError("down")

        for _ in range(2):
            with pytest.raises(ConnectionError):
                flaky()
        with pytest.raises(CircuitOpenError):
            flaky()

    def test_decorator_has_breaker_attribute(self, registry):
        @circuit_breaker(name="api", registry=registry)
        def call_api():
            return 1

        assert isinstance(call_api.breaker, CircuitBreaker)
        assert call_api.breaker is get_circuit_breaker("api")

    def test_bare_decorator(self, registry):
        @circuit_breaker
        def f():
            return 1

        assert f() == 1
        assert f.breaker.name.endswith("f")


class TestGetCircuitBreaker:
    def test_get_creates_new_breaker(self, registry):
        breaker = get_circuit_breaker("gemini_api", registry=registry)
        assert isinstance(breaker, CircuitBreaker)
        assert breaker.name == "gemini_api"

    def test_get_returns_same_instance(self, registry):
        assert get_circuit_breaker("a", registry=registry) is get_circuit_breaker("a")

    def test_different_names_different_instances(self, registry):
        assert get_circuit_breaker("a", registry=registry) is not get_circuit_breaker("b", registry=registry)

    def test_conflicting_options_are_an_error(self, registry):
        get_circuit_breaker("a", failure_threshold=3, registry=registry)
        with pytest.raises(ValueError, match="already exists"):
            get_circuit_breaker("a", failure_threshold=4, registry=registry)

    def test_reset_all_circuit_breakers(self, registry):
        a = get_circuit_breaker("a", failure_threshold=1, registry=registry)
        b = get_circuit_breaker("b", failure_threshold=1, registry=registry)
        trip(a, 1)
        trip(b, 1)
        reset_all_circuit_breakers()
        assert a.state == b.state == CircuitState.CLOSED


def test_seed_scenario_recovery(registry):
    """Seed 001 "Test Scenario 2", in virtual time."""
    clock = FakeClock()
    breaker = get_circuit_breaker("test_service", failure_threshold=3, clock=clock, registry=registry)
    trip(breaker, 3)
    assert breaker.state == CircuitState.OPEN
    clock.sleep(31)
    assert breaker.call(working_call) == "success"
    for _ in range(3):
        breaker.call(working_call)
    assert breaker.state == CircuitState.CLOSED
