"""Every state transition of the circuit breaker, in virtual time."""

from __future__ import annotations

import asyncio
import pickle
import random

import pytest
import structlog
from prometheus_client import CollectorRegistry

from surefoot.errors import ConfigurationError, RateLimitError, ServiceUnavailableError
from surefoot.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Hooks,
    exponential_open_duration,
    http_failure,
    retry_after_of,
)
from surefoot.testing import FakeClock


class Response:
    """Shaped like httpx.Response for what the breaker reads."""

    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


def ok():
    return "ok"


def boom():
    raise ConnectionError("down")


def fail(b: CircuitBreaker, n: int = 1, exc: type[BaseException] = ConnectionError) -> None:
    def raiser():
        raise exc("x")

    for _ in range(n):
        with pytest.raises(exc):
            b.call(raiser)


def succeed(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        assert b.call(ok) == "ok"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(clock, registry):
    def factory(**kw):
        kw.setdefault("clock", clock)
        kw.setdefault("registry", registry)
        kw.setdefault("name", "dep")
        return CircuitBreaker(**kw)

    return factory


def sample(registry: CollectorRegistry, metric: str, **labels: str) -> float:
    v = registry.get_sample_value(metric, labels)
    return 0.0 if v is None else v


# --------------------------------------------------------------------------- rate windows
class TestCountWindow:
    def test_minimum_calls_gate(self, make):
        b = make(failure_rate_threshold=0.5, window_size=10, minimum_calls=4)
        fail(b, 3)
        assert b.state == CircuitState.CLOSED  # 100 % but only 3 calls
        fail(b, 1)
        assert b.state == CircuitState.OPEN

    def test_rate_below_threshold_stays_closed(self, make):
        b = make(failure_rate_threshold=0.5, window_size=10)
        for _ in range(10):
            succeed(b, 2)
            fail(b, 1)
        assert b.state == CircuitState.CLOSED
        assert b.get_stats()["failure_rate"] == pytest.approx(0.3, abs=0.11)

    def test_success_completing_the_gate_trips(self, make):
        b = make(failure_rate_threshold=0.5, window_size=4)
        fail(b, 2)
        succeed(b, 1)
        assert b.state == CircuitState.CLOSED
        succeed(b, 1)  # window full (4 calls), 2/4 failed = 50 %
        assert b.state == CircuitState.OPEN

    def test_old_failures_are_evicted(self, make):
        b = make(failure_rate_threshold=0.5, window_size=4)
        fail(b, 1)
        succeed(b, 3)
        succeed(b, 4)  # the failure left the window
        assert b.get_stats()["failure_rate"] == 0.0
        fail(b, 1)
        assert b.state == CircuitState.CLOSED

    def test_full_window_of_successes_then_failures(self, make):
        b = make(failure_rate_threshold=0.5, window_size=10)
        succeed(b, 50)  # exercises the lock-free full-window path
        fail(b, 4)
        assert b.state == CircuitState.CLOSED
        fail(b, 1)
        assert b.state == CircuitState.OPEN
        assert b.get_stats()["failure_rate"] == 0.5

    def test_consecutive_and_rate_together(self, make):
        b = make(failure_threshold=3, failure_rate_threshold=0.9, window_size=100)
        fail(b, 3)
        assert b.state == CircuitState.OPEN


class TestTimeWindow:
    def test_failures_expire_with_time(self, make, clock):
        b = make(failure_rate_threshold=0.5, window="time", window_size=10, minimum_calls=4)
        fail(b, 3)
        clock.advance(11)
        fail(b, 1)
        succeed(b, 1)
        assert b.state == CircuitState.CLOSED
        assert b.get_stats()["window_calls"] == 2

    def test_trips_within_window(self, make, clock):
        b = make(failure_rate_threshold=0.02, window="time", window_size=180, minimum_calls=100)
        for _ in range(98):
            succeed(b, 1)
            clock.advance(1)
        assert b.state == CircuitState.CLOSED
        fail(b, 2)  # 2/100 = 2 %
        assert b.state == CircuitState.OPEN

    def test_stats_advance_the_window(self, make, clock):
        b = make(failure_rate_threshold=0.5, window="time", window_size=5, minimum_calls=100)
        fail(b, 3)
        clock.advance(100)
        assert b.get_stats()["window_calls"] == 0


class TestSlowCalls:
    def test_slow_successes_trip(self, make, clock):
        b = make(slow_call_duration=1.0, slow_call_rate_threshold=0.5, window_size=4)

        def slow():
            clock.advance(2.0)
            return "ok"

        b.call(slow)
        b.call(slow)
        succeed(b, 1)
        assert b.state == CircuitState.CLOSED
        succeed(b, 1)
        assert b.state == CircuitState.OPEN
        stats = b.get_stats()
        assert stats["slow_count"] == 2
        assert stats["success_count"] == 4

    def test_slow_protocol(self, make):
        b = make(slow_call_duration=0.5, window_size=2)
        b.acquire()
        b.on_success(0.6)
        assert b.state == CircuitState.CLOSED
        b.acquire()
        b.on_error(0.7, ValueError())
        assert b.state == CircuitState.OPEN  # 2/2 slow >= default 100 %


class TestLatencyBaseline:
    def drive(self, b, clock, seconds, latency, per_second=2):
        for _ in range(int(seconds)):
            for _ in range(per_second):
                if b.state != CircuitState.CLOSED:
                    return
                b.acquire()
                b.on_success(latency)
            clock.advance(1)

    def test_learns_baseline_then_trips_on_3x(self, make, clock):
        b = make(latency_factor=3.0, latency_window=300, latency_min_calls=20)
        self.drive(b, clock, 300, 0.100)
        base = b.get_stats()["latency_baseline"]
        assert base == pytest.approx(0.1, rel=0.2)
        self.drive(b, clock, 280, 0.350)  # 3.5x, but not yet for the whole window
        assert b.state == CircuitState.CLOSED
        self.drive(b, clock, 60, 0.350)
        assert b.state == CircuitState.OPEN
        assert b.get_stats()["openings"] == 1
        # the slow period never fed the baseline
        assert b.get_stats()["latency_baseline"] == pytest.approx(base)

    def test_a_burst_shorter_than_the_window_does_not_trip(self, make, clock):
        b = make(latency_factor=3.0, latency_window=300)
        self.drive(b, clock, 300, 0.100)
        for _ in range(5):
            self.drive(b, clock, 240, 1.0)
            self.drive(b, clock, 30, 0.100)
        assert b.state == CircuitState.CLOSED

    def test_2x_does_not_trip(self, make, clock):
        b = make(latency_factor=3.0, latency_window=300)
        self.drive(b, clock, 300, 0.100)
        self.drive(b, clock, 900, 0.200)
        assert b.state == CircuitState.CLOSED

    def test_no_trip_before_a_baseline(self, make, clock):
        b = make(latency_factor=3.0, latency_window=300)
        self.drive(b, clock, 900, 5.0)
        assert b.state == CircuitState.CLOSED
        assert b.get_stats()["latency_baseline"] == pytest.approx(5.0, rel=0.2)

    def test_bad_latency_options(self, make):
        with pytest.raises(ConfigurationError):
            make(latency_factor=0.5)
        with pytest.raises(ConfigurationError):
            make(latency_factor=3.0, latency_options={"nope": 1})


# --------------------------------------------------------------------------- half-open
class TestHalfOpenPermits:
    def test_admits_exactly_n_then_rejects(self, make, clock):
        b = make(failure_rate_threshold=0.5, window_size=2, half_open_permits=3, open_duration=10)
        fail(b, 2)
        clock.advance(10)
        for _ in range(3):
            b.acquire()
        with pytest.raises(CircuitOpenError) as info:
            b.acquire()
        assert info.value.state == "half_open"
        assert b.state == CircuitState.HALF_OPEN
        for _ in range(3):
            b.on_success(0.01)
        assert b.state == CircuitState.CLOSED

    def test_decides_on_the_rate_over_the_trials(self, make, clock):
        b = make(failure_rate_threshold=0.5, window_size=2, half_open_permits=4, open_duration=10)
        fail(b, 2)
        clock.advance(10)
        for _ in range(4):
            b.acquire()
        b.on_error(0.01, ConnectionError())
        b.on_success(0.01)
        b.on_success(0.01)
        assert b.state == CircuitState.HALF_OPEN
        b.on_success(0.01)  # 1/4 = 25 % < 50 %
        assert b.state == CircuitState.CLOSED

    def test_reopens_as_soon_as_the_rate_is_certain(self, make, clock):
        b = make(failure_rate_threshold=0.5, window_size=2, half_open_permits=4, open_duration=10)
        fail(b, 2)
        clock.advance(10)
        for _ in range(4):
            b.acquire()
        b.on_error(0.01, ConnectionError())
        assert b.state == CircuitState.HALF_OPEN
        b.on_error(0.01, ConnectionError())  # 2/4 already >= 50 %
        assert b.state == CircuitState.OPEN

    def test_release_gives_the_permit_back(self, make, clock):
        b = make(failure_threshold=1, half_open_permits=1, open_duration=5)
        fail(b)
        clock.advance(5)
        b.acquire()
        with pytest.raises(CircuitOpenError):
            b.acquire()
        b.release()
        b.acquire()
        b.on_success(0.0)
        assert b.state == CircuitState.CLOSED

    def test_max_wait_reopens_a_wedged_half_open(self, make, clock):
        b = make(failure_threshold=1, open_duration=5, half_open_max_wait=20)
        fail(b)
        clock.advance(5)
        b.acquire()  # the probe hangs forever
        clock.advance(19)
        with pytest.raises(CircuitOpenError) as info:
            b.acquire()
        assert info.value.retry_after == pytest.approx(1.0)
        clock.advance(1)
        with pytest.raises(CircuitOpenError) as info:
            b.acquire()
        assert b.state == CircuitState.OPEN
        assert info.value.retry_after == pytest.approx(5.0)
        clock.advance(5)
        b.acquire()  # a fresh probe
        b.on_success(0.1)
        assert b.state == CircuitState.CLOSED

    def test_max_wait_counts_from_the_last_permit(self, make, clock):
        b = make(failure_threshold=1, open_duration=5, half_open_permits=2, half_open_max_wait=60)
        fail(b)
        clock.advance(5)
        b.acquire()  # first trial at t=5
        clock.advance(95)
        b.acquire()  # slow traffic: the second permit goes at t=100
        clock.advance(1)
        with pytest.raises(CircuitOpenError) as info:
            b.acquire()
        assert info.value.state == "half_open" and info.value.retry_after == pytest.approx(59)
        b.on_success(0.1)
        b.on_success(0.1)
        assert b.state == CircuitState.CLOSED

    def test_late_outcome_of_abandoned_probe_is_ignored_when_open(self, make, clock):
        b = make(failure_threshold=1, open_duration=5, half_open_max_wait=20)
        fail(b)
        clock.advance(5)
        b.acquire()
        clock.advance(20)
        with pytest.raises(CircuitOpenError):
            b.acquire()
        b.on_success(25.0)  # the hung probe finally answers
        assert b.state == CircuitState.OPEN

    def test_ignored_exception_in_half_open_frees_the_permit(self, make, clock):
        b = make(failure_threshold=1, open_duration=5, ignore_exceptions=KeyError)
        fail(b)
        clock.advance(5)
        fail(b, 1, KeyError)
        assert b.state == CircuitState.HALF_OPEN
        succeed(b)
        assert b.state == CircuitState.CLOSED


class TestHalfOpenTraffic:
    def test_admits_the_fraction_and_closes_after_the_window(self, make, clock):
        b = make(
            failure_threshold=1, open_duration=120, half_open_traffic=0.10, half_open_window=300,
            half_open_failure_rate=0.01, rng=random.Random(7),
        )
        fail(b)
        clock.advance(120)
        admitted = rejected = 0
        for _ in range(310):
            for _ in range(20):
                try:
                    b.acquire()
                except CircuitOpenError as exc:
                    assert exc.retry_after == 1.0
                    rejected += 1
                else:
                    admitted += 1
                    b.on_success(0.01)
            if b.state == CircuitState.CLOSED:
                break
            clock.advance(1)
        total = admitted + rejected
        assert 0.08 < admitted / total < 0.12
        assert b.state == CircuitState.CLOSED

    def test_reopens_when_trial_error_rate_reaches_threshold(self, make, clock):
        b = make(
            failure_threshold=1, open_duration=120, half_open_traffic=0.5, half_open_min_calls=100,
            half_open_failure_rate=0.01, rng=random.Random(1),
        )
        fail(b)
        clock.advance(120)
        outcomes = 0
        while b.current_state() == CircuitState.HALF_OPEN:
            try:
                b.acquire()
            except CircuitOpenError:
                continue
            outcomes += 1
            if outcomes % 50 == 0:
                b.on_error(0.01, ConnectionError())
            else:
                b.on_success(0.01)
        assert b.state == CircuitState.OPEN
        assert outcomes == 100  # 2/100 = 2 % >= 1 %, decided at the minimum

    def test_default_min_calls_from_the_rate(self, make):
        b = make(half_open_traffic=0.1)
        assert b._ho_min == 100


class TestOpenDuration:
    def test_exponential_backoff_of_open_time(self, make, clock):
        b = make(failure_threshold=1, open_duration=exponential_open_duration(10, factor=2, max_duration=35))
        fail(b)
        for expected in (10, 20, 35, 35):
            with pytest.raises(CircuitOpenError) as info:
                b.acquire()
            assert info.value.retry_after == pytest.approx(expected)
            clock.advance(expected)
            fail(b)  # the half-open probe fails: reopen, longer
        clock.advance(35)
        succeed(b)
        fail(b)  # closed again: the count of openings restarted
        with pytest.raises(CircuitOpenError) as info:
            b.acquire()
        assert info.value.retry_after == pytest.approx(10)

    def test_function_and_cap(self, make):
        b = make(failure_threshold=1, open_duration=lambda n: 100 * n, max_open_duration=150)
        fail(b)
        assert b.get_stats()["retry_after"] == 100

    def test_bad_exponential(self):
        with pytest.raises(ConfigurationError):
            exponential_open_duration(0)


# --------------------------------------------------------------------------- operational states
class TestOperationalStates:
    def test_disabled_permits_and_records_nothing(self, make):
        b = make(failure_threshold=1)
        b.disable()
        fail(b, 5)
        assert b.state == CircuitState.DISABLED
        b.reset()
        assert b.state == CircuitState.CLOSED

    def test_forced_open_rejects(self, make):
        b = make(open_duration=42)
        b.force_open()
        with pytest.raises(CircuitOpenError) as info:
            b.call(ok)
        assert info.value.state == "forced_open"
        assert info.value.retry_after == 42
        assert b.state == CircuitState.FORCED_OPEN
        b.reset()
        succeed(b)

    def test_metrics_only_never_rejects_but_transitions(self, make, clock):
        events = []
        b = make(failure_threshold=2, open_duration=10, metrics_only=True, hooks=Hooks(events.append))
        fail(b, 2)
        assert b.state == CircuitState.OPEN
        succeed(b, 3)  # shadow: still permitted
        assert b.state == CircuitState.OPEN
        clock.advance(10)
        succeed(b)
        assert b.state == CircuitState.CLOSED
        changes = [(e.attributes["from_state"], e.attributes["to_state"]) for e in events if e.kind == "state_change"]
        assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
        assert b.get_stats()["not_permitted_count"] == 0
        b.set_metrics_only(False)
        assert not b.metrics_only


# --------------------------------------------------------------------------- classification
class TestClassification:
    def test_ignored_is_neither_success_nor_failure(self, make):
        b = make(failure_threshold=2, ignore_exceptions=(KeyError,))
        fail(b, 1)
        fail(b, 1, KeyError)  # must not reset the run of failures
        fail(b, 1)
        assert b.state == CircuitState.OPEN
        stats = b.get_stats()
        assert stats["ignored_count"] == 1
        assert stats["success_count"] == 0

    @pytest.mark.parametrize("exc", [asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit])
    def test_cancellation_and_exit_are_not_failures(self, make, exc):
        b = make(failure_threshold=1)
        fail(b, 1, exc)
        assert b.state == CircuitState.CLOSED
        assert b.get_stats()["failure_count"] == 0

    def test_cancelled_probe_releases_its_permit(self, make, clock):
        b = make(failure_threshold=1, open_duration=5)
        fail(b)
        clock.advance(5)
        fail(b, 1, asyncio.CancelledError)
        assert b.state == CircuitState.HALF_OPEN
        succeed(b)
        assert b.state == CircuitState.CLOSED

    def test_non_failure_exception_counts_as_success(self, make):
        b = make(failure_threshold=2, failure_exceptions=(ConnectionError,))
        fail(b, 1)
        fail(b, 1, ValueError)  # the dependency answered: a success
        fail(b, 1)
        assert b.state == CircuitState.CLOSED
        assert b.get_stats()["success_count"] == 1

    def test_expected_exception_alias(self, make):
        b = make(failure_threshold=1, expected_exception=ConnectionError)
        fail(b, 1, ValueError)
        assert b.state == CircuitState.CLOSED
        fail(b, 1)
        assert b.state == CircuitState.OPEN
        with pytest.raises(ConfigurationError):
            make(expected_exception=KeyError, failure_exceptions=ValueError)

    def test_failure_predicate(self, make):
        b = make(failure_threshold=1, failure_predicate=lambda e: "fatal" in str(e))
        with pytest.raises(RuntimeError):
            b.call(lambda: (_ for _ in ()).throw(RuntimeError("benign")))
        assert b.state == CircuitState.CLOSED
        with pytest.raises(RuntimeError):
            b.call(lambda: (_ for _ in ()).throw(RuntimeError("fatal")))
        assert b.state == CircuitState.OPEN

    def test_result_failure(self, make):
        b = make(failure_threshold=2, result_failure=http_failure)
        assert b.call(lambda: Response(200)).status_code == 200
        b.call(lambda: Response(503))
        b.call(lambda: Response(500))
        assert b.state == CircuitState.OPEN

    def test_bad_exception_types(self, make):
        with pytest.raises(ConfigurationError):
            make(ignore_exceptions=("KeyError",))


class TestRetryAfter:
    def test_429_result_forces_open_for_retry_after(self, make, clock):
        b = make(failure_threshold=5, open_duration=30)
        b.call(lambda: Response(429, {"Retry-After": "120"}))
        assert b.state == CircuitState.OPEN
        with pytest.raises(CircuitOpenError) as info:
            b.acquire()
        assert info.value.retry_after == pytest.approx(120)
        assert info.value.headers["Retry-After"] == "120"
        clock.advance(120)
        succeed(b)
        assert b.state == CircuitState.CLOSED

    def test_http_date(self, clock):
        from email.utils import formatdate

        value = formatdate(clock.time() + 60, usegmt=True)
        assert retry_after_of(Response(503, {"retry-after": value}), clock.time()) == pytest.approx(60)

    def test_exception_with_retry_after(self, make, clock):
        b = make(failure_threshold=5)
        with pytest.raises(RateLimitError):
            b.call(lambda: (_ for _ in ()).throw(RateLimitError(retry_after=7)))
        assert b.get_stats()["retry_after"] == pytest.approx(7)

    def test_exception_with_response(self, clock):
        class HTTPStatusError(Exception):
            response = Response(429, {"Retry-After": "3"})

        assert retry_after_of(HTTPStatusError(), clock.time()) == 3

    def test_capped(self, make):
        b = make(max_retry_after=60)
        b.call(lambda: Response(429, {"Retry-After": "99999"}))
        assert b.get_stats()["retry_after"] == pytest.approx(60)

    def test_not_honoured_when_off_or_ignored(self, make):
        b = make(honor_retry_after=False)
        b.call(lambda: Response(429, {"Retry-After": "10"}))
        assert b.state == CircuitState.CLOSED
        b2 = make(ignore_exceptions=RateLimitError, name="b2")
        with pytest.raises(RateLimitError):
            b2.call(lambda: (_ for _ in ()).throw(RateLimitError(retry_after=7)))
        assert b2.state == CircuitState.CLOSED

    @pytest.mark.parametrize(
        "obj",
        [Response(200, {"Retry-After": "5"}), Response(429), Response(429, {"Retry-After": "soon"}),
         Response(429, {"Retry-After": "-3"}), CircuitOpenError("x", 5.0), 42, None],
    )
    def test_no_retry_after(self, obj, clock):
        assert retry_after_of(obj, clock.time()) is None

    def test_retry_after_extends_an_open_breaker(self, make, clock):
        b = make(failure_threshold=1, open_duration=10)
        b.acquire()
        fail(b)
        b.on_result(0.1, Response(429, {"Retry-After": "50"}))  # a late answer
        assert b.get_stats()["retry_after"] == pytest.approx(50)


# --------------------------------------------------------------------------- errors, metrics, events, logs
class TestCircuitOpenError:
    def test_is_a_503_with_retry_after(self):
        err = CircuitOpenError("twilio", 12.3, "open")
        assert isinstance(err, ServiceUnavailableError)
        assert err.status == 503
        assert err.code == "CIRCUIT_OPEN"
        assert err.headers == {"Retry-After": "13"}
        assert "twilio" in str(err)
        body = err.problem(instance="/x")
        assert body["status"] == 503 and body["code"] == "CIRCUIT_OPEN" and "twilio" in body["detail"]
        copy = pickle.loads(pickle.dumps(err))
        assert (copy.name, copy.retry_after, copy.state) == ("twilio", 12.3, "open")
        with pytest.raises(AttributeError):
            err.nope  # noqa: B018


class TestInstrumentation:
    def test_reset_restarts_stats_but_not_prometheus(self, make, registry):
        b = make(failure_threshold=1)
        fail(b)
        b.reset()
        succeed(b)
        stats = b.get_stats()
        assert (stats["failure_count"], stats["success_count"]) == (0, 1)
        assert sample(registry, "circuit_breaker_calls_total", name="dep", kind="failed") == 1

    def test_prometheus_counts_and_state(self, make, registry, clock):
        b = make(failure_threshold=2, ignore_exceptions=KeyError, slow_call_duration=100)
        succeed(b, 3)
        fail(b, 1, KeyError)
        fail(b, 2)
        with pytest.raises(CircuitOpenError):
            b.acquire()
        # a scrape flushes pending counts first
        from prometheus_client import generate_latest

        text = generate_latest(registry).decode()
        assert 'circuit_breaker_calls_total{kind="successful",name="dep"} 3.0' in text
        assert sample(registry, "circuit_breaker_calls_total", name="dep", kind="failed") == 2
        assert sample(registry, "circuit_breaker_calls_total", name="dep", kind="ignored") == 1
        assert sample(registry, "circuit_breaker_calls_total", name="dep", kind="not_permitted") == 1
        assert sample(registry, "circuit_breaker_state", name="dep", state="open") == 1
        assert sample(registry, "circuit_breaker_state", name="dep", state="closed") == 0

    def test_slow_kind(self, make, registry):
        b = make(slow_call_duration=1.0, slow_call_rate_threshold=1.0, window_size=10)
        b.acquire()
        b.on_success(2.0)
        b.get_stats()
        assert sample(registry, "circuit_breaker_calls_total", name="dep", kind="slow") == 1

    def test_metrics_off(self, make, registry):
        b = make(metrics=False)
        succeed(b)
        assert registry.get_sample_value("circuit_breaker_state", {"name": "dep", "state": "closed"}) is None

    def test_default_registry(self, clock):
        from surefoot._core.state import set_default_registry

        reg = CollectorRegistry()
        set_default_registry(reg)
        CircuitBreaker("defaulted", clock=clock)
        assert sample(reg, "circuit_breaker_state", name="defaulted", state="closed") == 1

    def test_hook_events(self, make, clock):
        events = []
        b = make(failure_threshold=1, open_duration=5, hooks=Hooks(events.append), ignore_exceptions=KeyError)
        succeed(b)
        fail(b, 1, KeyError)
        fail(b)
        with pytest.raises(CircuitOpenError):
            b.call(ok)
        kinds = [e.kind for e in events]
        assert kinds == ["success", "ignored", "failure", "state_change", "not_permitted"]
        assert all(e.component == "circuit_breaker" and e.name == "dep" for e in events)
        change = events[3].attributes
        assert change["from_state"] == "closed" and change["to_state"] == "open"
        assert change["reason"] == "consecutive_failures"
        assert events[4].attributes["retry_after"] == pytest.approx(5)

    def test_log_line_on_state_change(self, make, clock):
        b = make(failure_rate_threshold=0.5, window_size=2, open_duration=5, half_open_permits=1)
        with structlog.testing.capture_logs() as logs:
            fail(b, 2)
            clock.advance(5)
            succeed(b)
        events = [(x["event"], x["log_level"]) for x in logs]
        assert events == [
            ("circuit_opened", "warning"), ("circuit_half_opened", "info"), ("circuit_closed", "info"),
        ]
        opened = logs[0]
        assert opened["name"] == "dep" and opened["from_state"] == "closed" and opened["to_state"] == "open"
        assert opened["failure_rate"] == 1.0 and opened["reason"] == "failure_rate" and opened["open_for"] == 5


class TestConfiguration:
    @pytest.mark.parametrize(
        "kw",
        [
            {"failure_rate_threshold": 0}, {"failure_rate_threshold": 1.5}, {"failure_threshold": 0},
            {"slow_call_rate_threshold": 0.5}, {"slow_call_duration": -1}, {"window": "sliding"},
            {"failure_rate_threshold": 0.5, "window_size": 0}, {"failure_rate_threshold": 0.5, "minimum_calls": 0},
            {"open_duration": -1}, {"open_duration": 1, "recovery_timeout": 2}, {"half_open_permits": 0},
            {"half_open_permits": 1, "success_threshold": 1}, {"half_open_traffic": 0},
            {"half_open_traffic": 0.1, "half_open_window": 0}, {"half_open_max_wait": 0},
            {"half_open_failure_rate": 2}, {"max_open_duration": 0}, {"half_open_min_calls": 0},
        ],
    )
    def test_bad_options_say_what_to_fix(self, make, kw):
        with pytest.raises(ConfigurationError):
            make(**kw)

    def test_defaults(self, make):
        b = make()
        assert b._threshold == 5 and b._open_duration == 30.0 and b._permits == 1
        r = make(failure_rate_threshold=0.5)
        assert r._threshold is None and r._permits == 10 and r._min_calls == 100
        assert repr(b) == "<CircuitBreaker 'dep' closed>"


def test_seed_004_twilio_policy(registry):
    """Open if 5xx > 2 % over 3 min or P95 > 3x baseline for 5 min; half-open after 2 min with
    10 % of traffic; close when the error rate stays < 1 % for 5 min."""
    clock = FakeClock()
    twilio = CircuitBreaker(
        "twilio", failure_rate_threshold=0.02, window="time", window_size=180, minimum_calls=100,
        result_failure=http_failure, latency_factor=3.0, latency_window=300, open_duration=120,
        half_open_traffic=0.10, half_open_window=300, half_open_failure_rate=0.01,
        clock=clock, registry=registry, rng=random.Random(4),
    )

    def send(status: int, latency: float = 0.2) -> None:
        twilio.acquire()
        twilio.on_result(latency, Response(status))

    for _second in range(600):  # ten healthy minutes, 10 sends a second
        for _ in range(10):
            send(200)
        clock.advance(1)
    assert twilio.state == CircuitState.CLOSED
    for second in range(240):  # 3 % of sends fail: the 3-minute window crosses 2 % after ~2 min
        for i in range(10):
            try:
                send(503 if (second * 10 + i) % 33 == 0 else 200)
            except CircuitOpenError:
                pass
        clock.advance(1)
        if twilio.state == CircuitState.OPEN:
            break
    assert twilio.state == CircuitState.OPEN
    clock.advance(120)
    admitted = 0
    for _second in range(301):
        for _ in range(10):
            try:
                send(200)
                admitted += 1
            except CircuitOpenError:
                pass
        clock.advance(1)
    assert twilio.state == CircuitState.CLOSED
    assert 200 < admitted < 400  # ~10 % of 3,000 sends


def test_multiprocess_metrics_are_pushed_per_success(tmp_path, subprocess_env):
    """With PROMETHEUS_MULTIPROC_DIR no scrape runs in the worker: counts must reach the files."""
    import subprocess
    import sys

    env = dict(subprocess_env, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    code = """
from prometheus_client import CollectorRegistry
from surefoot.resilience import CircuitBreaker
b = CircuitBreaker("mp", registry=CollectorRegistry())
for _ in range(3):
    b.call(lambda: 1)
"""
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(tmp_path))
    assert reg.get_sample_value("circuit_breaker_calls_total", {"name": "mp", "kind": "successful"}) == 3
