"""A process sharing a Redis circuit breaker, driven line by line over stdin (one JSON reply per line).

    python _breaker_redis_worker.py NAME REDIS_URL '{"failure_threshold": 3}'

Commands: ``fail`` / ``ok`` (a whole call), ``acquire``, ``success``, ``failure``, ``release``,
``advance SECONDS`` (the process's virtual clock), ``state``, ``quit``.
"""

from __future__ import annotations

import json
import sys

import structlog
from prometheus_client import CollectorRegistry

from surefoot.resilience import CircuitOpenError, RedisCircuitBreaker
from surefoot.testing import FakeClock


def main() -> None:
    name, url, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout is the protocol
    clock = FakeClock()
    breaker = RedisCircuitBreaker(name, url=url, clock=clock, registry=CollectorRegistry(), **options)

    def boom() -> None:
        raise ConnectionError("down")

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd, *arg = line.split()
        reply: dict[str, object] = {"ok": True}
        try:
            if cmd == "fail":
                try:
                    breaker.call(boom)
                except ConnectionError:
                    pass
            elif cmd == "ok":
                breaker.call(lambda: None)
            elif cmd == "acquire":
                breaker.acquire()
            elif cmd == "success":
                breaker.on_success(0.01)
            elif cmd == "failure":
                breaker.on_error(0.01, ConnectionError("down"))
            elif cmd == "release":
                breaker.release()
            elif cmd == "advance":
                clock.advance(float(arg[0]))
            elif cmd == "state":
                stats = breaker.get_stats()
                reply["state"] = stats["state"]
                reply["shared"] = stats["shared"]
            elif cmd == "quit":
                break
            else:
                reply = {"error": f"unknown command {cmd!r}"}
        except CircuitOpenError as exc:
            reply = {"rejected": exc.state, "retry_after": exc.retry_after}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
