"""Broker sink throughput: surefoot's sinks vs the bare client doing the same work.

Run (local NATS JetStream, Redis, RabbitMQ; a local uvicorn receiver for HTTP)::

    python benchmarks/sinks_throughput.py
    python benchmarks/sinks_throughput.py --events 20000 --batch 100 --only nats,redis

For each broker the same pre-built events (same body bytes, same headers) are published in
batches of ``--batch`` (the dispatcher's default batch size), one batch after the other:

* surefoot: ``await sink.send_many(batch)`` (confirmed/acked, per-event results);
* bare, pipelined: the fastest idiomatic code with the plain client and the same guarantees
  (NATS ``publish_async`` + gather the PubAcks; Redis ``XADD`` pipeline; aio-pika confirm-mode
  publishes gathered; httpx POSTs gathered with a semaphore of 10 and HMAC signing);
* bare, one by one (NATS, RabbitMQ): ``await js.publish()`` / ``await exchange.publish()`` per
  message, the loop most code bases start with.

Each measurement is the best of ``--rounds`` runs, the variants alternating round by round
(a shared machine is noisy), with this process's CPU time per event (the least noisy
measure of the client-side overhead); ratios first.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from surefoot.outbox import Event  # noqa: E402
from surefoot.outbox.sinks import HttpSink, NatsSink, RabbitMQSink, RedisStreamSink  # noqa: E402
from surefoot.outbox.sinks._base import event_headers  # noqa: E402

PAYLOAD = {"call_sid": "CA0123456789abcdef", "from": "+15550001111", "to": "+15550002222", "status": "no-answer"}
SECRET = "whsec_" + base64.b64encode(b"benchmark secret key bytes!").decode()

ASGI_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
'''


def make_events(n: int) -> list[Event]:
    return [
        Event(
            "CallDetected",
            PAYLOAD,
            tenant_id="t1",
            correlation_id=str(uuid.uuid4()),
            key=f"k{i % 50}",
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        )
        for i in range(n)
    ]


def batches(events: list[Event], size: int) -> list[list[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


async def compare(
    runs: dict[str, tuple[Callable[[list[Event]], Awaitable[None]], int]], rounds: int
) -> dict[str, float]:
    """Best events/s of each run, and the least client CPU per event (``<name>_cpu_us``).

    The runs alternate round by round so load spikes hit all of them; CPU time of this
    process per event is the overhead measure least disturbed by other load on the machine.
    """
    best = {name: 0.0 for name in runs}
    for name in runs:
        best[f"{name}_cpu_us"] = float("inf")
    for _ in range(rounds):
        for name, (run, n) in runs.items():
            events = make_events(n)  # fresh ids: dedupe must not make later rounds cheaper
            cpu = time.process_time()
            started = time.perf_counter()
            await run(events)
            best[name] = max(best[name], n / (time.perf_counter() - started))
            best[f"{name}_cpu_us"] = min(best[f"{name}_cpu_us"], (time.process_time() - cpu) / n * 1e6)
    return best


# -- NATS ----------------------------------------------------------------------------------


async def bench_nats(args: argparse.Namespace) -> dict[str, float]:
    import nats

    nc = await nats.connect(args.nats_url)
    js = nc.jetstream()
    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"BENCH_{tag}", f"bench_{tag}"
    await js.add_stream(name=stream, subjects=[f"{prefix}.>"], duplicate_window=120)
    subject = f"{prefix}.CallDetected"
    out: dict[str, float] = {}
    try:
        sink = NatsSink(args.nats_url, subject=f"{prefix}.{{event_name}}", stream=stream)
        await sink.open()

        async def surefoot(events: list[Event]) -> None:
            for batch in batches(events, args.batch):
                results = await sink.send_many(batch)
                if any(results):
                    raise RuntimeError(results)

        async def bare_pipelined(events: list[Event]) -> None:
            for batch in batches(events, args.batch):
                futures = []
                for event in batch:
                    headers = event_headers(event)
                    headers["Nats-Msg-Id"] = event.event_id
                    futures.append(await js.publish_async(subject, event.to_json(), headers=headers, stream=stream))
                await asyncio.gather(*futures)

        async def bare_one_by_one(events: list[Event]) -> None:
            for event in events:
                headers = event_headers(event)
                headers["Nats-Msg-Id"] = event.event_id
                await js.publish(subject, event.to_json(), headers=headers, stream=stream)

        await surefoot(make_events(args.batch))  # warm up
        await bare_pipelined(make_events(args.batch))
        out = await compare(
            {
                "surefoot": (surefoot, args.events),
                "bare_pipelined": (bare_pipelined, args.events),
                "bare_one_by_one": (bare_one_by_one, min(args.events, 3000)),
            },
            args.rounds,
        )
        await sink.close()
    finally:
        await js.delete_stream(stream)
        await nc.close()
    return out


# -- Redis ---------------------------------------------------------------------------------


async def bench_redis(args: argparse.Namespace) -> dict[str, float]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(args.redis_url)
    tag = uuid.uuid4().hex[:8]
    stream = f"bench:{tag}"
    out: dict[str, float] = {}
    try:
        plain = RedisStreamSink(args.redis_url, stream=stream)
        deduped = RedisStreamSink(args.redis_url, stream=stream, dedupe=True, dedupe_ttl=300, dedupe_prefix=f"bench:dd:{tag}:")
        await plain.open()
        await deduped.open()

        def via(sink: RedisStreamSink) -> Callable[[list[Event]], Awaitable[None]]:
            async def run(events: list[Event]) -> None:
                for batch in batches(events, args.batch):
                    results = await sink.send_many(batch)
                    if any(results):
                        raise RuntimeError(results)

            return run

        async def bare(events: list[Event]) -> None:
            for batch in batches(events, args.batch):
                pipe = client.pipeline(transaction=False)
                for event in batch:
                    fields: dict[str, Any] = event_headers(event)
                    fields["envelope"] = event.to_json()
                    pipe.xadd(stream, fields)
                await pipe.execute()

        for run in (via(plain), via(deduped), bare):
            await run(make_events(args.batch))
        out = await compare(
            {
                "surefoot": (via(plain), args.events),
                "bare_pipelined": (bare, args.events),
                "surefoot_dedupe": (via(deduped), args.events),
            },
            args.rounds,
        )
        await plain.close()
        await deduped.close()
    finally:
        keys = [k async for k in client.scan_iter(match=f"bench:*{tag}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return out


# -- RabbitMQ ------------------------------------------------------------------------------


async def bench_rabbitmq(args: argparse.Namespace) -> dict[str, float]:
    import aio_pika

    tag = uuid.uuid4().hex[:8]
    exchange_name = f"bench.{tag}"
    connection = await aio_pika.connect(args.amqp_url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(f"bench.{tag}", durable=False, auto_delete=False)
    await queue.bind(exchange, "#")
    out: dict[str, float] = {}

    def message(event: Event) -> aio_pika.Message:
        headers: dict[str, Any] = event_headers(event)
        headers.pop("content-type")
        return aio_pika.Message(
            event.to_json(),
            headers=headers,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.event_id,
            correlation_id=event.correlation_id,
            type=event.event_name,
            timestamp=event.occurred_at,
        )

    try:
        sink = RabbitMQSink(args.amqp_url, exchange=exchange_name)
        await sink.open()

        async def surefoot(events: list[Event]) -> None:
            for batch in batches(events, args.batch):
                results = await sink.send_many(batch)
                if any(results):
                    raise RuntimeError(results)

        async def bare_pipelined(events: list[Event]) -> None:
            for batch in batches(events, args.batch):
                await asyncio.gather(
                    *(exchange.publish(message(e), e.event_name, mandatory=True, timeout=10) for e in batch)
                )

        async def bare_one_by_one(events: list[Event]) -> None:
            for event in events:
                await exchange.publish(message(event), event.event_name, mandatory=True, timeout=10)

        await surefoot(make_events(args.batch))
        await bare_pipelined(make_events(args.batch))
        out = await compare(
            {
                "surefoot": (surefoot, args.events),
                "bare_pipelined": (bare_pipelined, args.events),
                "bare_one_by_one": (bare_one_by_one, min(args.events, 2000)),
            },
            args.rounds,
        )
        await sink.close()
    finally:
        await queue.delete(if_unused=False, if_empty=False)
        await channel.exchange_delete(exchange_name)
        await connection.close()
    return out


# -- HTTP ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_receiver(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    (tmp / "bench_receiver.py").write_text(ASGI_APP)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench_receiver:app", "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
        cwd=tmp,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}/hook"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the uvicorn receiver did not start")


async def bench_http(args: argparse.Namespace) -> dict[str, float]:
    import tempfile

    import httpx

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_receiver(Path(tmp))
        try:
            sink = HttpSink(url, secrets=SECRET, max_concurrency=10)
            await sink.open()
            key = base64.b64decode(SECRET.removeprefix("whsec_"))
            client = httpx.AsyncClient(follow_redirects=False, timeout=15)
            limit = asyncio.Semaphore(10)

            async def surefoot(events: list[Event]) -> None:
                for batch in batches(events, args.batch):
                    results = await sink.send_many(batch)
                    if any(results):
                        raise RuntimeError(results)

            async def post(event: Event) -> None:
                body = event.to_json()
                ts = str(int(time.time()))
                mac = hmac.new(key, f"{event.event_id}.{ts}.".encode() + body, hashlib.sha256).digest()
                headers = {
                    "content-type": "application/json",
                    "webhook-id": event.event_id,
                    "webhook-timestamp": ts,
                    "webhook-signature": "v1," + base64.b64encode(mac).decode(),
                    "X-Correlation-ID": event.correlation_id or "",
                }
                async with limit:
                    response = await client.post(url, content=body, headers=headers)
                if not 200 <= response.status_code < 300:
                    raise RuntimeError(response.status_code)

            async def bare(events: list[Event]) -> None:
                for batch in batches(events, args.batch):
                    await asyncio.gather(*(post(e) for e in batch))

            n = min(args.events, 3000)
            await surefoot(make_events(args.batch))
            await bare(make_events(args.batch))
            out = await compare({"surefoot": (surefoot, n), "bare_pipelined": (bare, n)}, args.rounds)
            await sink.close()
            await client.aclose()
        finally:
            proc.terminate()
            proc.wait(10)
    return out


# -- report --------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(f"\n# sink throughput — {args.events} events (HTTP: at most 3000), batches of {args.batch}, "
          f"best of {args.rounds}\n")
    print("ratios, surefoot / bare pipelined client (throughput: 1.00 = as fast; CPU: 1.00 = no overhead):")
    for name, r in results.items():
        line = (f"  {name:9s} throughput {r['surefoot'] / r['bare_pipelined']:5.2f}x   "
                f"client CPU per event {r['surefoot_cpu_us'] / r['bare_pipelined_cpu_us']:5.2f}x")
        if "bare_one_by_one" in r:
            line += f"   throughput vs one-by-one publish+ack {r['surefoot'] / r['bare_one_by_one']:5.1f}x"
        if "surefoot_dedupe" in r:
            line += f"   dedupe=True throughput {r['surefoot_dedupe'] / r['bare_pipelined']:5.2f}x"
        print(line)
    print()
    print("| sink | surefoot events/s (CPU µs/event) | bare pipelined events/s (CPU µs/event) "
          "| bare one by one events/s | throughput ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        one = f"{fmt(r['bare_one_by_one'])}" if "bare_one_by_one" in r else "–"
        print(f"| {name} | {fmt(r['surefoot'])} ({r['surefoot_cpu_us']:.0f}) | {fmt(r['bare_pipelined'])} "
              f"({r['bare_pipelined_cpu_us']:.0f}) | {one} | {r['surefoot'] / r['bare_pipelined']:.2f} |")
        if "surefoot_dedupe" in r:
            print(f"| {name} dedupe=True | {fmt(r['surefoot_dedupe'])} ({r['surefoot_dedupe_cpu_us']:.0f}) "
                  f"| {fmt(r['bare_pipelined'])} ({r['bare_pipelined_cpu_us']:.0f}) | – "
                  f"| {r['surefoot_dedupe'] / r['bare_pipelined']:.2f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="nats,redis,rabbitmq,http")
    parser.add_argument("--nats-url", default=os.environ.get("SUREFOOT_TEST_NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--redis-url", default=os.environ.get("SUREFOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument(
        "--amqp-url", default=os.environ.get("SUREFOOT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    )
    args = parser.parse_args()
    benches = {"nats": bench_nats, "redis": bench_redis, "rabbitmq": bench_rabbitmq, "http": bench_http}
    results: dict[str, dict[str, float]] = {}
    for name in args.only.split(","):
        print(f"[{name}] ...", file=sys.stderr)
        results[name] = await benches[name](args)
    report(results, args)


if __name__ == "__main__":
    import logging

    import structlog

    # the sinks log at info on open/close; keep the benchmark output to the table
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(main())
