"""Micro-benchmark of the circuit breaker hot paths, per configuration.

    python benchmarks/_breaker_micro.py [--rounds 21] [--n 50000]

ns per call (min and median over rounds; the rounds of all cases are interleaved so that
machine noise hits every case alike), and the overhead over the matching bare baseline:
a bare call, a bare ``await``, or a bare raise-and-catch for the fast-fail case.
``benchmarks/resilience_overhead.py`` is the cross-library table; this one splits the
breaker's own configurations (consecutive failures, count window, time window, slow calls).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from prometheus_client import CollectorRegistry  # noqa: E402

from surefoot.resilience import CircuitBreaker, CircuitOpenError  # noqa: E402


def work() -> int:
    return 1


async def awork() -> int:
    return 1


class Boom(Exception):
    pass


def fail() -> int:
    raise Boom()


def loop_of(fn: Callable[[], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            fn()

    return run


def fail_loop_of(fn: Callable[[], Any], exc: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            try:
                fn()
            except exc:
                pass

    return run


def aloop_of(fn: Callable[[], Any]) -> Callable[[int], Any]:
    async def run(n: int) -> None:
        for _ in range(n):
            await fn()

    return run


def protocol_loop(b: CircuitBreaker) -> Callable[[int], None]:
    acquire, on_success, mono = b.acquire, b.on_success, b.clock.monotonic

    def run(n: int) -> None:
        for _ in range(n):
            acquire()
            t0 = mono()
            work()
            on_success(mono() - t0)

    return run


def cases() -> list[tuple[str, str, Any, str]]:
    reg = CollectorRegistry()
    seed = CircuitBreaker("seed", registry=reg)
    count = CircuitBreaker("count", failure_rate_threshold=0.5, window_size=100, registry=reg)
    timew = CircuitBreaker("time", failure_rate_threshold=0.5, window="time", window_size=60, registry=reg)
    slow = CircuitBreaker(
        "slow", failure_rate_threshold=0.5, window="time", window_size=60, slow_call_duration=1.0, registry=reg
    )
    forced = CircuitBreaker("forced", registry=reg, metrics=False)
    forced.force_open()
    opened = CircuitBreaker("opened", failure_threshold=1, open_duration=1e9, registry=reg)
    try:
        opened.call(fail)
    except Boom:
        pass

    out: list[tuple[str, str, Any, str]] = [
        ("bare call", "sync", loop_of(work), ""),
        ("bare raise-and-catch", "sync", fail_loop_of(fail, Boom), ""),
        ("bare await", "async", aloop_of(awork), ""),
        ("consecutive (default) decorator", "sync", loop_of(seed(work)), "bare call"),
        ("consecutive .call", "sync", loop_of(lambda: seed.call(work)), "bare call"),
        ("consecutive protocol", "sync", protocol_loop(seed), "bare call"),
        ("count window decorator", "sync", loop_of(count(work)), "bare call"),
        ("time window decorator", "sync", loop_of(timew(work)), "bare call"),
        ("time window + slow calls decorator", "sync", loop_of(slow(work)), "bare call"),
        ("open fast-fail decorator", "sync", fail_loop_of(opened(work), CircuitOpenError), "bare raise-and-catch"),
        ("forced-open fast-fail decorator", "sync", fail_loop_of(forced(work), CircuitOpenError),
         "bare raise-and-catch"),
        ("consecutive (default) async decorator", "async", aloop_of(seed(awork)), "bare await"),
        ("count window async decorator", "async", aloop_of(count(awork)), "bare await"),
        ("time window async decorator", "async", aloop_of(timew(awork)), "bare await"),
    ]
    try:
        import pybreaker

        out.append(("pybreaker decorator", "sync", loop_of(pybreaker.CircuitBreaker(fail_max=5)(work)), "bare call"))
    except ImportError:  # pragma: no cover - bench extra not installed
        pass
    try:
        import circuitbreaker

        cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30)
        out.append(("circuitbreaker decorator", "sync", loop_of(cb(work)), "bare call"))
        cba = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30)
        out.append(("circuitbreaker async decorator", "async", aloop_of(cba(awork)), "bare await"))
    except ImportError:  # pragma: no cover
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--n", type=int, default=50_000)
    opts = parser.parse_args()
    table = cases()
    samples: dict[str, list[float]] = {name: [] for name, *_ in table}

    async def arun(loop: Any, n: int) -> float:
        t0 = time.perf_counter_ns()
        await loop(n)
        return (time.perf_counter_ns() - t0) / n

    async def all_rounds() -> None:
        for _ in range(opts.rounds):
            for name, kind, loop, _ in table:
                if kind == "sync":
                    t0 = time.perf_counter_ns()
                    loop(opts.n)
                    samples[name].append((time.perf_counter_ns() - t0) / opts.n)
                else:
                    samples[name].append(await arun(loop, opts.n))

    asyncio.run(all_rounds())
    lo = {k: min(v) for k, v in samples.items()}
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{'case':42} {'min ns':>7} {'overhead':>9} {'median':>7} {'overhead':>9}")
    for name, _, _, base in table:
        o_lo = f"{lo[name] - lo[base]:+9.0f}" if base else ""
        o_med = f"{med[name] - med[base]:+9.0f}" if base else ""
        print(f"{name:42} {lo[name]:7.0f} {o_lo:>9} {med[name]:7.0f} {o_med:>9}")


if __name__ == "__main__":
    main()
