"""RedisCircuitBreaker against the real Redis: several real processes share one breaker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("redis", reason="needs surefoot[redis]")
import structlog
from prometheus_client import CollectorRegistry

from surefoot.resilience import CircuitOpenError, CircuitState, Hooks, RedisCircuitBreaker
from surefoot.testing import FakeClock

pytestmark = [pytest.mark.redis]

WORKER = Path(__file__).with_name("_breaker_redis_worker.py")


class Worker:
    """One real process holding a RedisCircuitBreaker."""

    def __init__(self, name: str, url: str, env: dict[str, str], **options: object) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), name, url, json.dumps(options)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )

    def wait_ready(self) -> None:
        assert json.loads(self._line()) == {"ready": True}

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.proc.wait()}")
        return line

    def __call__(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line())

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)


@pytest.fixture
def workers(redis_url, subprocess_env, unique):
    started: list[Worker] = []

    def spawn(n: int, **options: object) -> list[Worker]:
        new = [Worker(f"cb-{unique}", redis_url, subprocess_env, **options) for _ in range(n)]
        for w in new:
            w.wait_ready()
        started.extend(new)
        return new

    yield spawn
    for w in started:
        w.stop()
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete(f"{{surefoot:cb:cb-{unique}}}", f"{{surefoot:cb:cb-{unique}}}:w")
    client.close()


@pytest.fixture
def make(redis_url, unique):
    made: list[RedisCircuitBreaker] = []

    def factory(name: str | None = None, **kw) -> RedisCircuitBreaker:
        kw.setdefault("clock", FakeClock())
        kw.setdefault("registry", CollectorRegistry())
        b = RedisCircuitBreaker(name or f"cb-{unique}", url=redis_url, **kw)
        made.append(b)
        return b

    yield factory
    import redis

    client = redis.Redis.from_url(redis_url)
    for b in made:
        client.delete(*b.keys)
        b.close()
    client.close()


# --------------------------------------------------------------------------- real processes
def test_failures_in_one_process_open_it_for_another(workers):
    a, b = workers(2, failure_threshold=3, open_duration=30)
    assert a("fail") == b("fail") == {"ok": True}
    assert b("state")["state"] == "closed"
    a("fail")
    assert a("state") == {"ok": True, "state": "open", "shared": True}
    reply = b("acquire")
    assert reply["rejected"] == "open"
    assert reply["retry_after"] == pytest.approx(30)


def test_half_open_probe_limit_is_shared(workers):
    a, b = workers(2, failure_threshold=1, open_duration=30, half_open_permits=2)
    a("fail")
    for w in (a, b):
        w("advance 30")
    assert a("acquire") == {"ok": True}  # probe 1 (moves the shared state to half-open)
    assert b("acquire") == {"ok": True}  # probe 2
    assert a("acquire")["rejected"] == "half_open"
    assert b("acquire")["rejected"] == "half_open"
    a("success")
    assert b("state")["state"] == "half_open"
    b("success")
    assert a("state")["state"] == "closed"
    assert b("ok") == {"ok": True}


def test_a_failed_probe_in_one_process_reopens_for_all(workers):
    a, b = workers(2, failure_threshold=1, open_duration=10)
    a("fail")
    a("advance 10")
    b("advance 10")
    assert b("acquire") == {"ok": True}
    b("failure")
    reply = a("acquire")
    assert reply["rejected"] == "open" and reply["retry_after"] == pytest.approx(10)


def test_many_processes_race_for_one_probe(workers, redis_url, unique):
    procs = workers(4, failure_threshold=1, open_duration=5, half_open_permits=1)
    procs[0]("fail")
    for w in procs:
        w("advance 5")
    # Send every acquire before reading any reply: the processes race inside Redis.
    for w in procs:
        assert w.proc.stdin is not None
        w.proc.stdin.write("acquire\n")
        w.proc.stdin.flush()
    replies = [json.loads(w._line()) for w in procs]
    assert sum(1 for r in replies if r == {"ok": True}) == 1
    assert sum(1 for r in replies if r.get("rejected") == "half_open") == 3


def test_failure_rate_over_a_shared_time_window(workers):
    a, b = workers(2, failure_rate_threshold=0.5, window="time", window_size=60, minimum_calls=10)
    for _ in range(5):
        a("ok")
    for _ in range(4):
        b("fail")
    assert a("state")["state"] == "closed"  # 4/9, below the minimum calls anyway
    b("fail")  # 5/10 = 50 %
    assert a("acquire")["rejected"] == "open"


# --------------------------------------------------------------------------- in-process, real Redis
def test_threads_with_separate_instances_admit_exactly_n(make, unique):
    clock = FakeClock()
    breakers = [make(failure_threshold=1, open_duration=5, half_open_permits=3, clock=clock) for _ in range(8)]
    breakers[0].acquire()
    breakers[0].on_error(0.0, ConnectionError())
    clock.advance(5)
    admitted: list[int] = []
    barrier = threading.Barrier(len(breakers))

    def worker(i: int) -> None:
        barrier.wait()
        for _ in range(5):
            try:
                breakers[i].acquire()
            except CircuitOpenError:
                continue
            admitted.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(breakers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 3


async def test_async_client(make, redis_url):
    import redis.asyncio

    aclient = redis.asyncio.Redis.from_url(redis_url)
    clock = FakeClock()
    a = make(failure_threshold=2, open_duration=20, clock=clock, aredis=aclient)
    b = make(failure_threshold=2, open_duration=20, clock=clock)

    async def boom():
        raise ConnectionError

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await a.acall(boom)
    with pytest.raises(CircuitOpenError) as info:
        await b.acall(asyncio.sleep, 0)  # b builds its own async client lazily
    assert info.value.retry_after == pytest.approx(20)
    clock.advance(20)

    async def fine():
        return "ok"

    assert await b.acall(fine) == "ok"
    assert a.get_stats()["state"] == "closed"
    assert (await b.aget_stats())["shared"] is True
    await a.aacquire()
    await a.arelease()
    await a.aacquire()
    await a.aon_result(0.1, "fine")
    await a.aacquire()
    await a.aon_error(0.1, KeyError("not a failure by predicate"))
    await a.aacquire()
    await a.aon_error(0.1, asyncio.CancelledError())
    await aclient.aclose()
    await b.aclose()


def test_retry_after_result_opens_for_everyone(make):
    clock = FakeClock()
    a, b = make(clock=clock), make(clock=clock)

    class Response:
        status_code = 429
        headers = {"Retry-After": "90"}

    a.call(lambda: Response())
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert info.value.retry_after == pytest.approx(90)


def test_manual_states_are_shared(make):
    clock = FakeClock()
    a, b = make(clock=clock, open_duration=15), make(clock=clock, open_duration=15)
    a.force_open()
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert info.value.state == "forced_open"
    a.disable()
    b.acquire()
    assert b.state == CircuitState.DISABLED
    b.reset()
    assert a.get_stats()["state"] == "closed"


def test_ignored_and_cancelled_give_the_probe_back(make):
    clock = FakeClock()
    a = make(clock=clock, failure_threshold=1, open_duration=5, ignore_exceptions=KeyError)
    with pytest.raises(ConnectionError):
        a.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    clock.advance(5)
    with pytest.raises(KeyError):
        a.call(lambda: (_ for _ in ()).throw(KeyError()))
    a.acquire()
    a.on_error(0.0, asyncio.CancelledError())
    assert a.get_stats()["state"] == "half_open"
    assert a.call(lambda: 7) == 7
    assert a.get_stats()["state"] == "closed"


def test_stats_and_metrics(make):
    reg = CollectorRegistry()
    a = make(registry=reg, failure_rate_threshold=0.5, window="time", window_size=30, minimum_calls=4)
    a.call(lambda: 1)
    with pytest.raises(ConnectionError):
        a.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    stats = a.get_stats()
    assert stats["shared"] is True
    assert stats["window_calls"] == 2 and stats["failure_rate"] == 0.5
    assert stats["success_count"] == 1 and stats["failure_count"] == 1
    assert reg.get_sample_value("circuit_breaker_calls_total", {"name": a.name, "kind": "failed"}) == 1
    a.clock.advance(31)
    assert a.get_stats()["window_calls"] == 0  # the buckets aged out, though nothing was recorded


def test_rejects_options_it_cannot_share(make):
    from surefoot.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="time"):
        make(failure_rate_threshold=0.5, window="count")


# --------------------------------------------------------------------------- Redis unreachable
class Flaky:
    """A real client that can be switched off (raises redis ConnectionError)."""

    def __init__(self, client) -> None:
        self.client = client
        self.down = False

    def __getattr__(self, item):
        attr = getattr(self.client, item)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if self.down:
                import redis

                raise redis.exceptions.ConnectionError("Redis is down (test)")
            return attr(*args, **kwargs)

        return call


def test_unreachable_redis_falls_back_to_local_state(unique):
    reg = CollectorRegistry()
    events = []
    b = RedisCircuitBreaker(
        f"cb-{unique}", url="redis://127.0.0.1:1/0", failure_threshold=2, open_duration=10,
        clock=FakeClock(), registry=reg, hooks=Hooks(events.append), socket_timeout=0.2,
    )
    with structlog.testing.capture_logs() as logs:
        assert b.call(lambda: "still works") == "still works"
        for _ in range(2):
            with pytest.raises(ConnectionError):
                b.call(lambda: (_ for _ in ()).throw(ConnectionError("dependency down")))
        with pytest.raises(CircuitOpenError):
            b.call(lambda: 1)  # the local state machine still protects the dependency
    unavailable = [x for x in logs if x["event"] == "circuit_breaker_backend_unavailable"]
    assert len(unavailable) == 1 and unavailable[0]["backend"] == "redis"
    assert reg.get_sample_value("circuit_breaker_backend_errors_total", {"name": b.name}) == 1
    assert "backend_unavailable" in [e.kind for e in events]
    assert b.get_stats()["shared"] is False


def test_redis_outage_and_recovery(redis_url, unique):
    import redis

    flaky = Flaky(redis.Redis.from_url(redis_url))
    clock = FakeClock()
    b = RedisCircuitBreaker(
        f"cb-{unique}", redis=flaky, failure_threshold=2, open_duration=10, clock=clock,
        registry=CollectorRegistry(), retry_interval=5,
    )
    other = RedisCircuitBreaker(f"cb-{unique}", url=redis_url, failure_threshold=2, clock=clock,
                                registry=CollectorRegistry())
    try:
        b.call(lambda: 1)
        flaky.down = True
        with structlog.testing.capture_logs() as logs:
            with pytest.raises(ConnectionError):
                b.call(lambda: (_ for _ in ()).throw(ConnectionError()))
            assert b.call(lambda: 2) == 2  # local decisions meanwhile, no Redis error raised
            flaky.down = False
            assert b.call(lambda: 3) == 3  # still inside retry_interval: local
            clock.advance(5)
            for _ in range(2):
                with pytest.raises(ConnectionError):
                    b.call(lambda: (_ for _ in ()).throw(ConnectionError()))
        assert [x["event"] for x in logs if "backend" in x["event"]] == [
            "circuit_breaker_backend_unavailable", "circuit_breaker_backend_recovered",
        ]
        with pytest.raises(CircuitOpenError):
            other.acquire()  # the shared state is authoritative again
    finally:
        flaky.client.delete(*b.keys)
        flaky.client.close()
        other.close()


def test_async_client_from_a_closed_loop_never_breaks_the_call(make):
    b = make(failure_threshold=1, retry_interval=5)

    async def once():
        return await b.acall(asyncio.sleep, 0, "done")

    assert asyncio.run(once()) == "done"  # builds the async client in this loop
    # That loop is gone: the call is decided locally, never fails because of the client...
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(once()) == "done"
    assert [x["event"] for x in logs] == ["circuit_breaker_backend_unavailable"]
    # ...and after retry_interval a fresh client is built in the running loop.
    b.clock.advance(5)

    async def shared():
        await b.acall(asyncio.sleep, 0)
        return (await b.aget_stats())["shared"]

    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(shared()) is True
    assert [x["event"] for x in logs] == ["circuit_breaker_backend_recovered"]


def test_shared_traffic_percentage_half_open(make):
    import random

    clock = FakeClock()
    opts = dict(failure_threshold=1, open_duration=60, half_open_traffic=0.2, half_open_window=30,
                half_open_min_calls=20, half_open_failure_rate=0.05, clock=clock)
    a = make(rng=random.Random(1), **opts)
    b = make(rng=random.Random(2), **opts)
    with pytest.raises(ConnectionError):
        a.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    clock.advance(60)
    admitted = 0
    for _second in range(31):
        for breaker in (a, b):
            for _ in range(10):
                try:
                    breaker.acquire()
                except CircuitOpenError as exc:
                    assert exc.state == "half_open"
                    continue
                admitted += 1
                breaker.on_success(0.01)
        clock.advance(1)
    assert 80 < admitted < 170  # ~20 % of 620 attempts, from both processes
    assert a.get_stats()["state"] == "closed" and b.get_stats()["state"] == "closed"
    assert a.call(lambda: 1) == 1


async def test_latency_judged_in_one_process_opens_the_shared_breaker(make):
    clock = FakeClock()
    opts = dict(latency_factor=3.0, latency_window=60, clock=clock, open_duration=30)
    judge, other = make(**opts), make(**opts)

    async def drive(seconds: int, latency: float) -> None:
        for _ in range(seconds):
            for _ in range(2):
                if judge.state != CircuitState.CLOSED:
                    return
                await judge.aacquire()
                await judge.aon_success(latency)
            clock.advance(1)

    await drive(60, 0.05)
    assert judge.get_stats()["latency_baseline"] == pytest.approx(0.05, rel=0.13)
    await drive(90, 0.5)
    assert judge.state == CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        other.acquire()  # the other process never saw a slow call
    await judge.aclose()


def test_shared_max_wait_guard(make):
    clock = FakeClock()
    a, b = (make(failure_threshold=1, open_duration=5, half_open_permits=1, half_open_max_wait=20, clock=clock)
            for _ in range(2))
    with pytest.raises(ConnectionError):
        a.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    clock.advance(5)
    a.acquire()  # a's probe hangs
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert info.value.state == "half_open" and info.value.retry_after == pytest.approx(10)
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert info.value.state == "open" and info.value.retry_after == pytest.approx(5)


@pytest.mark.parametrize(("failures", "state"), [(7, "open"), (6, "closed")])
def test_a_shared_failure_rate_trips_when_it_reaches_the_threshold(make, failures, state):
    clock = FakeClock()
    a, b = (make(failure_rate_threshold=0.07, window="time", window_size=60, minimum_calls=100, clock=clock)
            for _ in range(2))
    for _ in range(100 - failures):
        a.call(lambda: "ok")
    for _ in range(failures):  # 7 failures in 100 calls are 7 %: the threshold is reached
        with pytest.raises(ConnectionError):
            b.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    assert a.get_stats()["state"] == state


@pytest.mark.parametrize(("failures", "state"), [(7, "open"), (6, "closed")])
def test_shared_half_open_trials_reopen_when_their_rate_reaches_the_threshold(make, failures, state):
    clock = FakeClock()
    a, b = (make(failure_threshold=1, open_duration=5, half_open_permits=100, half_open_failure_rate=0.07,
                 clock=clock) for _ in range(2))
    with pytest.raises(ConnectionError):
        a.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    clock.advance(5)
    for _ in range(100 - failures):
        b.call(lambda: "ok")
    for _ in range(failures):
        with pytest.raises(ConnectionError):
            a.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    assert b.get_stats()["state"] == state


async def test_an_http_policy_counts_5xx_answers_in_the_shared_breaker(make):
    httpx = pytest.importorskip("httpx")
    from surefoot.resilience import aprovider_client, http_policy

    clock = FakeClock()
    breaker, other = make(failure_threshold=2, open_duration=30, clock=clock), make(clock=clock)
    sent = []

    def answer(request):
        sent.append(request)
        return httpx.Response(503)

    policy = http_policy("redis-http", max_attempts=1, breaker=breaker)
    async with aprovider_client("redis-http", base_url="http://provider", policy=policy,
                                transport=httpx.MockTransport(answer), registry=CollectorRegistry()) as client:
        for _ in range(2):
            assert (await client.get("/status")).status_code == 503
        with pytest.raises(CircuitOpenError):
            await client.get("/status")
    assert len(sent) == 2
    with pytest.raises(CircuitOpenError):
        other.acquire()  # the 503 answers opened the breaker for every process
    await breaker.aclose()


async def test_a_refused_call_form_is_never_counted_by_the_shared_breaker(make):
    from surefoot.resilience import Policy, UnsupportedCallableError

    clock = FakeClock()
    a = make(failure_threshold=1, open_duration=5, half_open_permits=1, clock=clock)
    with pytest.raises(ConnectionError):
        a.call(lambda: (_ for _ in ()).throw(ConnectionError()))
    clock.advance(5)

    async def send() -> str:
        return "sent"

    with pytest.raises(UnsupportedCallableError, match="acall"):
        a.call(send)  # the one trial permit is given back
    with pytest.raises(UnsupportedCallableError, match="acall"):
        Policy(name="shared", breaker=a).call(lambda: send())
    await a.aacquire()
    await a.aon_error(0.0, UnsupportedCallableError("a misused call form"))  # given back too
    assert await Policy(name="shared", breaker=a).acall(send) == "sent"  # the trial passes
    assert a.get_stats()["state"] == "closed"
    await a.aclose()
