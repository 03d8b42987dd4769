"""Webhook inbox cost per delivery: surefoot vs a hand-written route, on SQLite and PostgreSQL.

Run (local PostgreSQL and SQLite, one run, ratios first)::

    python benchmarks/webhooks_inbox.py
    python benchmarks/webhooks_inbox.py --deliveries 2000 --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Each variant is a FastAPI app on an ``AsyncEngine`` driven in-process through
``httpx.ASGITransport`` (no network), one delivery at a time, Stripe-signed JSON; the
variants run interleaved in 10 rounds so that load from other processes affects them alike:

* ``hand-written``: verify the Stripe signature with ``hmac`` by hand, ``INSERT`` one row
  (no dedupe, no outbox) and commit — the floor a team writes first;
* ``hand-written + dedupe + outbox``: the same plus ``INSERT ... ON CONFLICT DO NOTHING
  RETURNING`` and an outbox row — what the hand-written route needs to be correct;
* ``surefoot new``: ``WebhookInbox`` with ``StripeVerifier``, the handler writing one
  outbox event (claim, handler, mark processed, commit, metrics, logs);
* ``surefoot duplicate``: the same delivery again (verify, conflict, lookup, 200).

A scratch PostgreSQL database is created and dropped; the SQLite file lives in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import structlog  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402
from starlette.responses import Response  # noqa: E402

from surefoot import outbox, webhooks  # noqa: E402
from surefoot.testing import golden_stripe_event, sign_stripe  # noqa: E402
from surefoot.webhooks import StripeVerifier, WebhookInbox  # noqa: E402

SECRET = "whsec_bench_secret"
PLAIN_DDL = (
    "CREATE TABLE IF NOT EXISTS plain_webhooks (id {pk}, event_id VARCHAR(255) UNIQUE, payload TEXT, "
    "received_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
)


def hand_written(engine: Any, with_dedupe: bool) -> FastAPI:
    app = FastAPI()
    insert = sa.text(
        "INSERT INTO plain_webhooks (event_id, payload) VALUES (:e, :p)"
        + (" ON CONFLICT (event_id) DO NOTHING RETURNING id" if with_dedupe else "")
    )

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        header = request.headers.get("stripe-signature", "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        expected = hmac.new(SECRET.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts.get("v1", "")) or abs(time.time() - int(parts["t"])) > 300:
            return Response(status_code=401)
        event_id = json.loads(body)["id"]
        async with engine.begin() as conn:
            result = await conn.execute(insert, {"e": event_id, "p": body.decode()})
            if with_dedupe and result.first() is not None:
                await outbox.add(conn, "InvoicePaid", {"event": event_id})
        return Response(status_code=200)

    return app


def surefoot_app(engine: Any) -> FastAPI:
    app = FastAPI()
    inbox = WebhookInbox(engine, registry=CollectorRegistry())

    @inbox.endpoint(app, "/hook", verifier=StripeVerifier(SECRET))
    async def hook(delivery: Any) -> None:
        await delivery.add_event("InvoicePaid", {"event": delivery.dedupe_key})

    return app


async def run(app: FastAPI, n: int, *, duplicate: bool = False) -> list[float]:
    latencies = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        fixed = golden_stripe_event(event_id=f"evt_dup_{uuid.uuid4().hex}")
        if duplicate:
            await client.post("/hook", content=fixed, headers=sign_stripe(fixed, SECRET))
        for _ in range(n):
            body = fixed if duplicate else golden_stripe_event(event_id=f"evt_{uuid.uuid4().hex}")
            headers = sign_stripe(body, SECRET)
            start = time.perf_counter()
            response = await client.post("/hook", content=body, headers=headers)
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"unexpected {response.status_code}: {response.text}")
    return latencies


async def bench(url: str, name: str, n: int) -> list[tuple[str, str, float, float, float]]:
    sync = sa.create_engine(url)
    with sync.begin() as conn:
        outbox.create_tables(conn)
        webhooks.create_tables(conn)
        pk = "BIGSERIAL PRIMARY KEY" if sync.dialect.name == "postgresql" else "INTEGER PRIMARY KEY"
        conn.exec_driver_sql(PLAIN_DDL.format(pk=pk))
    sync.dispose()
    engine = create_async_engine(url.replace("sqlite:///", "sqlite+aiosqlite:///"))
    variants = [
        ("hand-written (verify + INSERT)", hand_written(engine, False), False),
        ("hand-written + dedupe + outbox", hand_written(engine, True), False),
        ("surefoot inbox, new delivery", surefoot_app(engine), False),
        ("surefoot inbox, duplicate", surefoot_app(engine), True),
    ]
    for _, app, duplicate in variants:
        await run(app, max(20, n // 10), duplicate=duplicate)  # warm-up
    # Interleave the variants in rounds so a change in machine load hits them all alike.
    samples: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    rounds = 10
    for _ in range(rounds):
        for label, app, duplicate in variants:
            samples[label] += await run(app, max(1, n // rounds), duplicate=duplicate)
    rows = []
    for label, lat in samples.items():
        rows.append((name, label, len(lat) / sum(lat), statistics.median(lat) * 1000, sorted(lat)[int(len(lat) * 0.95)] * 1000))
    await engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # WARN+: no per-delivery lines

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results += asyncio.run(bench(f"sqlite:///{tmp}/bench.db", "SQLite", args.deliveries))
    admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    scratch = f"surefoot_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
    try:
        results += asyncio.run(bench(args.pg_url.rsplit("/", 1)[0] + "/" + scratch, "PostgreSQL", args.deliveries))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        admin.dispose()

    print(f"\n{args.deliveries} sequential deliveries per variant (in-process ASGI, AsyncEngine)\n")
    print("| database | variant | vs hand-written | deliveries/s | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|")
    floors = {db: rate for db, label, rate, _, _ in results if label.startswith("hand-written (")}
    for db, label, rate, p50, p95 in results:
        print(f"| {db} | {label} | {rate / floors[db]:.2f}x | {rate:,.0f} | {p50:.2f} | {p95:.2f} |")


if __name__ == "__main__":
    main()
