"""Cost of one access-log line: surefoot's logging versus what teams write or configure today.

    python3 dev.py bench logging_overhead [--rounds 7] [-n 20000]

Every variant writes the same access-log line (method, route, status, latency, bytes,
correlation id, plus one e-mail field) as one JSON line to /dev/null, flushed after each line:

* ``hand-rolled json.dumps + write`` — the baseline: what a team writes without a logging
  library: a dict of timestamp, level, event, module and the fields, ``json.dumps`` and one
  ``write(line + "\n")`` + ``flush()``, with a minimum-level check (no redaction, no ids from
  context);
* ``structlog fast JSON`` — structlog's documented production set-up (filtering bound logger,
  orjson, BytesLogger), without redaction or context ids;
* ``structlog + regex redaction`` — the same plus the redaction processor teams usually write
  (e-mail and phone regexes over every string value);
* ``stdlib logging + JSON formatter`` — ``logging`` with a JSON ``Formatter`` written by hand,
  without redaction;
* ``stdlib logging + python-json-logger`` — the same with python-json-logger's formatter (when
  it is installed: the ``bench`` extra has it);
* ``surefoot`` — ``surefoot.logging.configure_logging`` and ``log.info("http_request", ...)``
  (the structlog path): ids from context, ISO timestamp, module, e-mail/phone/secret
  redaction, orjson, one write per line.

The text variants write to ``open(os.devnull, "w")``; structlog's BytesLogger needs
``open(os.devnull, "wb")``. Variants run in interleaved rounds (A, B, C, ..., A, ...) so machine
noise hits all alike; the table reports the median µs per line, the median over rounds of each
round's ratio to the hand-rolled baseline, and the cost of a call at a disabled level (DEBUG
while INFO is the minimum). The last line checks surefoot's target: a JSON log line with
redaction costs at most 1.5x the hand-rolled baseline.
"""

from __future__ import annotations

import argparse
import datetime
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


class _HandRolled:
    """A JSON logger as a team writes it by hand: one dict, ``json.dumps``, one write."""

    def __init__(self, module: str, stream: Any, level: int = logging.INFO) -> None:
        self.module = module
        self.stream = stream
        self.level = level

    def _emit(self, levelno: int, level: str, event: str, fields: dict[str, Any]) -> None:
        if levelno < self.level:
            return
        line = {
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "level": level,
            "event": event,
            "module": self.module,
        }
        line.update(fields)
        self.stream.write(json.dumps(line) + "\n")
        self.stream.flush()

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, "debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, "info", event, fields)


def hand_rolled() -> tuple[Callable[[], None], Callable[[], None]]:
    log = _HandRolled("access", open(os.devnull, "w"))  # noqa: SIM115
    return (
        lambda: log.info("http_request", correlation_id=CORRELATION_ID, **FIELDS),
        lambda: log.debug("http_request", correlation_id=CORRELATION_ID, **FIELDS),
    )


def python_json_logger() -> tuple[Callable[[], None], Callable[[], None]]:
    from pythonjsonlogger.json import JsonFormatter  # python-json-logger >= 3.1
    logger = logging.getLogger("bench.python_json_logger")
    logger.handlers.clear()
    logger.propagate = False
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(message)s %(name)s",
            rename_fields={"asctime": "timestamp", "levelname": "level", "message": "event", "name": "module"},
        )
    )
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    extra = {"correlation_id": CORRELATION_ID, **FIELDS}
    return (
        lambda: logger.info("http_request", extra=extra),
        lambda: logger.debug("http_request", extra=extra),
    )


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


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


BASELINE = "hand-rolled json.dumps + write"
SUREFOOT = "surefoot (ids + redaction)"
TARGET = 1.5

VARIANTS: dict[str, Callable[[], tuple[Callable[[], None], Callable[[], None]]]] = {
    BASELINE: hand_rolled,
    "structlog fast JSON": lambda: structlog_fast(False),
    "structlog + regex redaction": lambda: structlog_fast(True),
    "stdlib logging + JSON formatter": stdlib_json,
    **({"stdlib logging + python-json-logger": python_json_logger} if _installed("pythonjsonlogger") else {}),
    SUREFOOT: surefoot_logging,
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
    # Each round's ratio to the baseline of the same round, then the median: noise that slows
    # one whole round does not move the ratio.
    ratios = {
        name: statistics.median(a / b for a, b in zip(enabled[name], enabled[BASELINE], strict=True))
        for name in VARIANTS
    }
    width = max(map(len, VARIANTS))
    print(f"one access-log line to /dev/null, median of {args.rounds} rounds x {args.n:,} lines\n")
    print(f"{'variant':<{width}}  {'µs/line':>8}  {'x hand-rolled':>13}  {'disabled µs':>11}")
    for name in VARIANTS:
        on_median = statistics.median(enabled[name])
        off_median = statistics.median(disabled[name])
        print(f"{name:<{width}}  {on_median:>8.2f}  {ratios[name]:>13.2f}  {off_median:>11.3f}")
    empty = statistics.median(_time(lambda: None, args.n) for _ in range(args.rounds))
    print(f"{'(an empty call, the loop included)':<{width}}  {'':>8}  {'':>13}  {empty:>11.3f}")
    measured = ratios[SUREFOOT]
    verdict = "met" if measured <= TARGET else "NOT met"
    print(f"\ntarget: <= {TARGET}x hand-rolled json.dumps + write -> measured {measured:.2f}x ({verdict})")


if __name__ == "__main__":
    main(sys.argv[1:])
