"""Dispatcher processes for the crash test: each records every delivery in a file, then acks.

Run as a *launcher*: ``python _crash_worker.py URL DELIVERIES_FILE BATCH_SIZE LEASE_SECONDS``.
It imports everything once, then for each ``spawn`` line on stdin forks a fresh dispatcher
process and prints its pid; ``wait PID`` prints that process's exit status. Forking from a
warm launcher keeps each of the test's many crash cycles short.

Each delivery appends ``<event n> <pid>`` with one unbuffered write, so a SIGKILL loses
nothing the handler already reported.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys

import prometheus_client
import sqlalchemy  # noqa: F401  (warm the imports the children use)
import sqlalchemy.ext.asyncio  # noqa: F401

from surefoot.outbox import Dispatcher, _dispatcher, _store  # noqa: F401


def dispatcher_main(url: str, path: str, batch: int, lease: float) -> int:
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
            registry=prometheus_client.CollectorRegistry(),
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, dispatcher.request_stop)
        await dispatcher.run()

    asyncio.run(run())
    return 0


def main() -> None:
    url, path, batch, lease = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    for line in sys.stdin:
        command = line.split()
        if not command:
            continue
        if command[0] == "spawn":
            pid = os.fork()
            if pid == 0:
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)  # the launcher's stdout carries pids only
                code = 1
                try:
                    code = dispatcher_main(url, path, batch, lease)
                finally:
                    os._exit(code)
            print(pid, flush=True)
        elif command[0] == "wait":
            _, status = os.waitpid(int(command[1]), 0)
            print(os.waitstatus_to_exitcode(status), flush=True)
        # reap the killed ones so they do not linger as zombies
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass


if __name__ == "__main__":
    main()
