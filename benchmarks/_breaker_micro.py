"""Micro-benchmark of the circuit breaker hot paths (ns per call: min and median of rounds).

    python benchmarks/_breaker_micro.py

Overheads are reported against the matching bare baseline (bare call, bare raise-and-catch).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from prometheus_client import CollectorRegistry  # noqa: E402

from surefoot.resilience import CircuitBreaker, CircuitOpenError  # noqa: E402

N = 50_000
ROUNDS = 21


def bench(fn, n: int = N) -> float:
    samples = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter_ns()
        fn(n)
        samples.append((time.perf_counter_ns() - t0) / n)
    return min(samples), statistics.median(samples)


def abench(make, n: int = N) -> float:
    async def main() -> float:
        samples = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter_ns()
            await make(n)
            samples.append((time.perf_counter_ns() - t0) / n)
        return min(samples), statistics.median(samples)

    return asyncio.run(main())


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def main() -> None:
    reg = CollectorRegistry()
    seed = CircuitBreaker("seed", registry=reg)
    rate = CircuitBreaker("rate", failure_rate_threshold=0.5, window_size=100, registry=reg)
    timed = CircuitBreaker(
        "time", failure_rate_threshold=0.5, window="time", window_size=60,
        slow_call_duration=1.0, registry=reg,
    )
    opened = CircuitBreaker("open", registry=reg, open_duration=1e9)
    opened.force_open()

    def bare(n):
        for _ in range(n):
            work()

    def via(b):
        call = b.call

        def run(n):
            for _ in range(n):
                call(work)

        return run

    def deco(b):
        f = b(work)

        def run(n):
            for _ in range(n):
                f()

        return run

    def protocol(b):
        acquire, on_success, mono = b.acquire, b.on_success, b.clock.monotonic

        def run(n):
            for _ in range(n):
                acquire()
                t0 = mono()
                work()
                on_success(mono() - t0)

        return run

    def bare_raise(n):
        err = RuntimeError("x")
        for _ in range(n):
            try:
                raise err
            except RuntimeError:
                pass

    def open_fail(n):
        call = opened.call
        for _ in range(n):
            try:
                call(work)
            except CircuitOpenError:
                pass

    async def abare(n):
        for _ in range(n):
            await awork()

    def avia(b):
        async def run(n):
            acall = b.acall
            for _ in range(n):
                await acall(awork)

        return run

    others = []
    try:
        import pybreaker

        pyb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
        others.append(("pybreaker .call (closed)", via(pyb)))
    except ImportError:  # pragma: no cover - bench extra not installed
        pass
    try:
        import circuitbreaker

        cb_deco = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=30)(work)

        def cb_run(n):
            for _ in range(n):
                cb_deco()

        others.append(("circuitbreaker decorator (closed)", cb_run))
    except ImportError:  # pragma: no cover
        pass

    base = bench(bare)
    braise = bench(bare_raise)
    abase = abench(abare)
    rows = [
        ("bare call", base, base),
        ("seed breaker .call (consecutive, closed)", bench(via(seed)), base),
        ("seed breaker decorator (closed)", bench(deco(seed)), base),
        ("seed breaker protocol acquire/on_success", bench(protocol(seed)), base),
        ("count-window breaker .call (closed)", bench(via(rate)), base),
        ("count-window protocol acquire/on_success", bench(protocol(rate)), base),
        ("time-window+slow breaker .call (closed)", bench(via(timed)), base),
        *[(name, bench(run), base) for name, run in others],
        ("bare raise-and-catch", braise, braise),
        ("open fast-fail (.call -> CircuitOpenError)", bench(open_fail), braise),
        ("async bare await", abase, abase),
        ("async seed breaker .acall (closed)", abench(avia(seed)), abase),
        ("async count-window .acall (closed)", abench(avia(rate)), abase),
    ]
    print(f"{'case':48} {'min ns':>8} {'overhead':>9} {'median':>8} {'overhead':>9}")
    for name, (lo, med), (rlo, rmed) in rows:
        print(f"{name:48} {lo:8.0f} {lo - rlo:+9.0f} {med:8.0f} {med - rmed:+9.0f}")


if __name__ == "__main__":
    main()
