"""A service using surefoot the way users write one, for the real-Prometheus test.

Exporters active here (each registers its metric families when it is created):
the request path (HTTP RED), health checks, slo.install (SLO counters, pair durations),
the outbox Dispatcher (outbox_* and worker_queue_depth), the WebhookInbox (webhook_*),
a CircuitBreaker and a Retry (circuit_breaker_*, retry_attempts_total) and the provider
client (integration_http_*).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import sqlalchemy as sa
from fastapi import FastAPI
from tests.integration.slo._slos import FIRST_SMS, OBJECTIVES

import surefoot
import surefoot.metrics
from surefoot import outbox, slo
from surefoot.health import Health, sqlalchemy_check
from surefoot.resilience import CircuitBreaker, Retry, provider_client
from surefoot.webhooks import WebhookInbox

engine = sa.create_engine(os.environ["SLO_TEST_DB"])
slo.migrate(engine)
outbox.create_tables(engine)

if hasattr(surefoot.metrics, "instrument_engine"):  # database pool gauges, where that exporter exists
    surefoot.metrics.instrument_engine(engine)
health = Health()
health.add("database", sqlalchemy_check(engine), timeout=1.0)
@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    # The worker's job, here in the same process: overdue pairs become bad, outcomes are counted.
    task = asyncio.create_task(slo.Sweeper(engine, OBJECTIVES, interval=0.5).arun())
    yield
    task.cancel()


app = FastAPI(lifespan=lifespan)
surefoot.install(app, health=health, extra_buckets=slo.thresholds(OBJECTIVES))
slo.install(app, OBJECTIVES, engine=engine, interval=1.0)
dispatcher = outbox.Dispatcher(engine)
inbox = WebhookInbox(engine)
breaker = CircuitBreaker("twilio")
retry = Retry(name="twilio", max_attempts=2)
twilio = provider_client("twilio", base_url="http://127.0.0.1:9")


@app.get("/work")
async def work(fail: bool = False):
    if fail:
        raise RuntimeError("injected failure")
    return {"ok": True}


@app.post("/bookings")
async def book():
    return {"booked": True}


def _flaky(state: list[int] = []) -> str:
    state.append(1)
    if len(state) == 1:
        raise ConnectionError("first attempt fails")
    return "ok"


retry.call(_flaky)  # one retry: the retry counters exist from the start


@app.get("/pid")
async def pid():
    return {"pid": os.getpid()}


@app.post("/calls/{sid}")
def inbound_call(sid: str):
    with engine.begin() as conn:
        return {"started": FIRST_SMS.start(conn, sid)}


@app.post("/sms/{sid}")
def first_sms_queued(sid: str):
    with engine.begin() as conn:
        return {"finished": FIRST_SMS.finish(conn, sid)}
