"""A dispatcher process for the crash test: records every delivery in a file, then acks.

Usage: python _crash_worker.py URL DELIVERIES_FILE BATCH_SIZE LEASE_SECONDS
Each delivery appends ``<event n> <pid>`` with one unbuffered write, so a SIGKILL loses nothing
that the handler already reported.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys

from surefoot.outbox import Dispatcher


def main() -> None:
    url, path, batch, lease = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()
    rng = random.Random(pid)

    async def record(event):
        # a little work per event so that a kill lands in the middle of a batch
        await asyncio.sleep(rng.uniform(0, 0.004))
        os.write(fd, f"{event.payload['n']} {pid}\n".encode())

    async def run() -> None:
        dispatcher = Dispatcher(
            url,
            handlers={"Crash": record},
            batch_size=batch,
            concurrency=1,
            lease_seconds=lease,
            poll_interval=0.05,
            max_attempts=1000,
            registry=__import__("prometheus_client").CollectorRegistry(),
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, dispatcher.request_stop)
        os.write(fd, f"# started {pid}\n".encode())
        await dispatcher.run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
