"""The breaker against a small reference model of its specification (hypothesis stateful)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from surefoot.resilience import CircuitBreaker, CircuitOpenError
from surefoot.testing import FakeClock

T, D, P = 3, 10.0, 2  # consecutive failures, open seconds (doubling per opening, cap 40), permits


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        from prometheus_client import CollectorRegistry

        self.clock = FakeClock()
        self.b = CircuitBreaker(
            "model", failure_threshold=T, half_open_permits=P, half_open_max_wait=None,
            open_duration=lambda n: min(40.0, D * 2 ** (n - 1)), clock=self.clock,
            registry=CollectorRegistry(),
        )
        # the model
        self.state = "closed"
        self.consec = 0
        self.openings = 0
        self.until = 0.0
        self.issued = self.done = 0
        self.held = 0  # permits acquired and not yet finished

    def now(self) -> float:
        return self.clock.monotonic()

    def model_open(self) -> None:
        self.openings += 1
        self.state = "open"
        self.until = self.now() + min(40.0, D * 2 ** (self.openings - 1))

    def model_acquire(self) -> float | None:
        """None when permitted, else the expected retry_after."""
        if self.state == "open":
            if self.now() < self.until:
                return self.until - self.now()
            self.state, self.issued, self.done = "half_open", 0, 0
        if self.state == "half_open":
            if self.issued >= P:
                return 1.0
            self.issued += 1
        return None

    def model_outcome(self, failed: bool) -> None:
        if self.state == "closed":
            if failed:
                self.consec += 1
                if self.consec >= T:
                    self.model_open()
            else:
                self.consec = 0
        elif self.state == "half_open" and self.done < self.issued:
            self.done += 1
            if failed:
                self.model_open()
            elif self.done >= P:
                self.state, self.consec, self.openings = "closed", 0, 0

    def acquire_both(self) -> bool:
        expected = self.model_acquire()
        try:
            self.b.acquire()
        except CircuitOpenError as exc:
            assert expected is not None, "breaker rejected, model permits"
            assert exc.retry_after == pytest.approx(expected)
            return False
        assert expected is None, "breaker permitted, model rejects"
        return True

    @rule(failed=st.booleans())
    def call(self, failed: bool) -> None:
        if self.acquire_both():
            if failed:
                self.b.on_error(0.01, ConnectionError())
            else:
                self.b.on_success(0.01)
            self.model_outcome(failed)

    @rule()
    def hold(self) -> None:
        if self.acquire_both():
            self.held += 1

    @precondition(lambda self: self.held > 0)
    @rule(failed=st.booleans())
    def finish_held(self, failed: bool) -> None:
        self.held -= 1
        if failed:
            self.b.on_error(0.01, ConnectionError())
        else:
            self.b.on_success(0.01)
        self.model_outcome(failed)

    @precondition(lambda self: self.held > 0)
    @rule()
    def release_held(self) -> None:
        self.held -= 1
        self.b.release()
        if self.state == "half_open" and self.issued > self.done:
            self.issued -= 1

    @rule(seconds=st.sampled_from([0.5, 5.0, 10.0, 20.0, 45.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def same_state(self) -> None:
        assert self.b._state == {"closed": 0, "open": 1, "half_open": 2}[self.state]
        if self.state == "closed":
            assert self.b.get_stats()["consecutive_failures"] == self.consec


TestBreakerModel = BreakerMachine.TestCase
TestBreakerModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
