"""A silent network partition between a dispatcher and PostgreSQL.

An in-test TCP proxy sits in front of the real PostgreSQL. ``blackhole()`` makes it swallow
every byte while keeping every socket open (what a NAT or firewall that lost its connection
state does): nothing errors, nothing closes. The dispatcher must turn that into errors,
reconnect and resume on its own, for the claim loop, LISTEN and the stats loop.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from surefoot import outbox
from surefoot.outbox import Dispatcher, OutboxSettings
from surefoot.testing import capture_logs


class BlackholeProxy:
    """Forwards TCP to ``target`` until :meth:`blackhole`; then drops bytes both ways, sockets
    left open. Connections made before or during the partition stay dead after :meth:`heal`
    (their state is gone); new ones work again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.blackholed = False
        self.generation = 0
        self.server: asyncio.AbstractServer | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task] = set()
        self.connections = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def blackhole(self) -> None:
        self.blackholed = True
        self.generation += 1  # every open connection is dead from now on

    def heal(self) -> None:
        self.blackholed = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        born = self.generation
        if self.blackholed:
            await self._swallow(reader)
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers.append(up_writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self.generation != born:
                        continue  # black-holed: read and drop, never close
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass

        for coro in (pump(reader, up_writer), pump(up_reader, writer)):
            task = asyncio.ensure_future(coro)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _swallow(reader: asyncio.StreamReader) -> None:
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        for writer in self.writers:
            writer.close()
        await asyncio.sleep(0)


async def _until(predicate, timeout: float, interval: float = 0.05) -> float | None:
    """Seconds it took for ``predicate`` to hold, or None after ``timeout``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if predicate():
            return time.monotonic() - began
        await asyncio.sleep(interval)
    return None


@pytest.fixture
async def proxy(pg_outbox_url):
    url = sa.engine.make_url(pg_outbox_url)
    p = BlackholeProxy(url.host or "127.0.0.1", url.port or 5432)
    port = await p.start()
    p.url = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    yield p
    await p.close()


async def test_silent_partition_is_detected_and_dispatch_resumes(pg_outbox_url, proxy, registry):
    direct = sa.create_engine(pg_outbox_url)
    delivered: list[int] = []

    async def handle(event):
        delivered.append(event.payload["n"])

    def add(name: str, n: int) -> None:
        with direct.begin() as conn:
            outbox.add(conn, name, {"n": n})

    settings = OutboxSettings(
        db_timeout_seconds=2, listen_check_interval_seconds=1, stats_interval_seconds=0.5,
        poll_interval_seconds=4,
        retention_interval_seconds=0, watchdog_interval_seconds=0.2, concurrency=2,
    )
    d = Dispatcher(proxy.url, settings=settings, registry=registry, handlers={"A": handle})
    check = d.health_check()
    bound = 2 + 5 + 2 + 3  # db_timeout + retry delay cap + reconnect + scheduling slack on a loaded machine
    try:
        with capture_logs() as logs:
            async with d.running():
                add("A", 1)
                assert await _until(lambda: delivered == [1], 10) is not None, "LISTEN wake-up before the partition"

                proxy.blackhole()
                add("A", 2)
                add("Unrouted", 0)  # pending, never claimed: the stats loop must see it
                # the dispatcher notices on its own: the health check fails within its bound
                failing = None
                began = time.monotonic()
                while time.monotonic() - began < 15:
                    try:
                        await check()
                    except RuntimeError as exc:
                        failing = str(exc)
                        break
                    await asyncio.sleep(0.1)
                assert failing is not None and "has not reached its database" in failing
                await asyncio.sleep(1.5)  # let the LISTEN probe and the stats loop hit the wall too
                assert delivered == [1]
                errors = {loop: registry.get_sample_value("outbox_dispatcher_db_errors_total", {"loop": loop})
                          for loop in ("claim", "listen", "stats")}
                assert all(errors.values()), errors

                proxy.heal()
                connected = sum(1 for line in logs if line["event"] == "outbox_listen_connected")
                took = await _until(lambda: delivered == [1, 2], bound)
                assert took is not None, f"claim loop did not resume within {bound} s"
                # LISTEN is back too: once reconnected, a notification delivers well before the poll
                took = await _until(
                    lambda: sum(1 for line in logs if line["event"] == "outbox_listen_connected") > connected, bound)
                assert took is not None, "LISTEN did not reconnect"
                await asyncio.sleep(0.3)  # the workers' own poll timers restart after the wake-up
                add("A", 3)
                took = await _until(lambda: delivered == [1, 2, 3], 2.0)
                assert took is not None, "no wake-up from LISTEN after the partition"
                # and the stats loop: the pending gauge sees the unrouted event
                took = await _until(lambda: registry.get_sample_value("outbox_pending_events") == 1, bound)
                assert took is not None, "stats loop did not resume"
                details = await check()
                assert details["database_age_seconds"] < bound
            report = d._workers  # stopped: nothing left running
            assert report == {}
        names = {line["event"] for line in logs}
        assert {"outbox_claim_failed", "outbox_listen_failed", "outbox_stats_failed"} <= names, names
        timeouts = [line for line in logs if line["event"] == "outbox_claim_failed"]
        assert any("db_timeout_seconds" in line["error_message"] or "timeout" in line["error_message"].lower()
                   for line in timeouts), timeouts
    finally:
        direct.dispose()


async def test_an_owned_engine_gets_the_timeouts_and_keepalives(pg_outbox_url, registry):
    d = Dispatcher(pg_outbox_url, db_timeout=3, registry=registry, handlers={"A": lambda e: None}, listen=False)
    try:
        shown = await d._db.run(lambda conn: conn.exec_driver_sql("SHOW statement_timeout").scalar())
        params = await d._db.run(lambda conn: conn.connection.dbapi_connection.info.get_parameters())
    finally:
        await d.aclose()
    assert shown == "3s"
    assert outbox.pg_connect_args(3)["keepalives_idle"] == 3
    assert params.get("connect_timeout") == "3"
