"""A separate process that starts or finishes pairs (or sweeps), as a web process or worker would."""

from __future__ import annotations

import os
import sys

import sqlalchemy as sa

from surefoot import slo

FIRST_SMS = slo.EventPair("first_sms", target=0.95, deadline=float(os.environ.get("DEADLINE", "5")))


def main() -> None:
    action, url, *keys = sys.argv[1:]
    engine = sa.create_engine(url)
    if action == "sweep":
        result = slo.Sweeper(engine, [FIRST_SMS]).sweep()
        print(sum(n for (_, outcome), n in result.counted.items() if outcome == "bad"), flush=True)
        return
    with engine.begin() as conn:
        for key in keys:
            done = (FIRST_SMS.start if action == "start" else FIRST_SMS.finish)(conn, key)
            print(f"{key}={done}", flush=True)
        if os.environ.get("CRASH_BEFORE_COMMIT"):
            os._exit(3)  # the transaction never commits: nothing may be recorded
    if os.environ.get("CRASH_AFTER_COMMIT"):
        os._exit(4)  # committed, then the process dies without any clean-up


if __name__ == "__main__":
    main()
