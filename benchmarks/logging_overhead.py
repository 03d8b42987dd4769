"""Cost of one access-log line: surefoot's logging versus what teams configure today.

    python3 dev.py bench logging_overhead [--rounds 7] [-n 20000]

Every variant writes the same access-log line (method, route, status, latency, bytes,
correlation id, plus one e-mail field) as one JSON line to /dev/null:

* ``structlog fast JSON`` — structlog's documented production set-up (filtering bound logger,
  orjson, BytesLogger), without redaction or context ids: the floor;
* ``structlog + regex redaction`` — the same plus the redaction processor teams usually write
  (e-mail and phone regexes over every string value);
* ``stdlib logging + JSON formatter`` — ``logging`` with a JSON ``Formatter`` (the
  python-json-logger style), without redaction;
* ``surefoot`` — ``surefoot.logging.configure_logging``: ids from context, ISO timestamp,
  module, e-mail/phone/secret redaction, orjson, one write per line.

Variants run in interleaved rounds (A, B, C, D, A, ...) so machine noise hits all alike; the
table reports the median µs per line and the ratio to the floor, then the cost of a call at a
disabled level (DEBUG while INFO is the minimum).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import orjson  # noqa: E402
import structlog  # noqa: E402

CORRELATION_ID = "550e8400-e29b-41d4-a716-446655440000"
FIELDS = {
    "method": "GET",
    "route": "/users/{user_id}",
    "status": 200,
    "latency_ms": 1.234,
    "bytes": 512,
    "user_email": "alice@example.com",
}

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def _typical_redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in event_dict.items():
        if isinstance(value, str):
            value = _EMAIL.sub(lambda m: "***" + m.group()[-4:], value)
            event_dict[key] = _PHONE.sub(lambda m: "***" + m.group()[-4:], value)
    return event_dict


def structlog_fast(redact: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if redact:
        processors.append(_typical_redact)
    processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(file=open(os.devnull, "wb")),  # noqa: SIM115
        cache_logger_on_first_use=False,
    )
    log = structlog.get_logger("access").bind()
    return (
        lambda: log.info("http_request", correlation_id=CORRELATION_ID, **FIELDS),
        lambda: log.debug("http_request", correlation_id=CORRELATION_ID, **FIELDS),
    )


class _JsonFormatter(logging.Formatter):
    _skip = frozenset(vars(logging.LogRecord("x", 20, "x", 0, "x", None, None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "timestamp": self.formatTime(record),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "module": record.name,
        }
        out.update((k, v) for k, v in record.__dict__.items() if k not in self._skip)
        return json.dumps(out)


def stdlib_json() -> tuple[Callable[[], None], Callable[[], None]]:
    logger = logging.getLogger("bench.stdlib")
    logger.handlers.clear()
    logger.propagate = False
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(_JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    extra = {"correlation_id": CORRELATION_ID, **FIELDS}
    return (
        lambda: logger.info("http_request", extra=extra),
        lambda: logger.debug("http_request", extra=extra),
    )


def surefoot_logging() -> tuple[Callable[[], None], Callable[[], None]]:
    from surefoot import context
    from surefoot.logging import configure_logging

    configure_logging(stream=open(os.devnull, "w"), fmt="json", level="INFO")  # noqa: SIM115
    context.bind(correlation_id=CORRELATION_ID)
    log = structlog.get_logger("surefoot.access").bind()
    return (
        lambda: log.info("http_request", **FIELDS),
        lambda: log.debug("http_request", **FIELDS),
    )


VARIANTS: dict[str, Callable[[], tuple[Callable[[], None], Callable[[], None]]]] = {
    "structlog fast JSON (floor)": lambda: structlog_fast(False),
    "structlog + regex redaction": lambda: structlog_fast(True),
    "stdlib logging + JSON formatter": stdlib_json,
    "surefoot (ids + redaction)": surefoot_logging,
}


def _time(fn: Callable[[], None], n: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) * 1e6 / n


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-n", type=int, default=20_000)
    args = parser.parse_args(argv)
    enabled: dict[str, list[float]] = {name: [] for name in VARIANTS}
    disabled: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, make in VARIANTS.items():
            on, off = make()  # configuration is global: set it up outside the timed loop
            on()
            enabled[name].append(_time(on, args.n))
            disabled[name].append(_time(off, args.n))
    floor = statistics.median(enabled["structlog fast JSON (floor)"])
    width = max(map(len, VARIANTS))
    print(f"one access-log line to /dev/null, median of {args.rounds} rounds x {args.n:,} lines\n")
    print(f"{'variant':<{width}}  {'µs/line':>8}  {'x floor':>7}  {'disabled µs':>11}")
    for name in VARIANTS:
        on_median = statistics.median(enabled[name])
        off_median = statistics.median(disabled[name])
        print(f"{name:<{width}}  {on_median:>8.2f}  {on_median / floor:>7.2f}  {off_median:>11.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
