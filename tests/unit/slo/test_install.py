"""slo.install on a FastAPI app: route counting through the request path and GET /slo."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

import surefoot
from surefoot import slo
from surefoot.errors import ConfigurationError
from surefoot.testing import FakeClock, expect_slo


def _app(objectives, registry, clock, **kwargs):
    app = FastAPI()
    surefoot.install(app, registry=registry, extra_buckets=slo.thresholds(objectives), **kwargs)

    @app.post("/bookings")
    async def book(slow: float = 0.0, fail: bool = False):
        if slow:
            await asyncio.sleep(slow)
        if fail:
            raise RuntimeError("calendar down")
        return {"ok": True}

    @app.get("/bookings/{booking_id}")
    async def read(booking_id: int):
        return {"id": booking_id}

    tracker = slo.install(app, objectives, clock=clock, registry=registry)
    return app, tracker


async def test_route_objectives_count_responses_and_slo_reports_them(registry):
    clock = FakeClock()
    booking = slo.Latency("booking_post", target=0.95, threshold=0.3, route="/bookings", method="POST",
                          description="booking API under 300 ms")
    reads = slo.Ratio("booking_reads", target=0.99, route="/bookings/{booking_id}")
    app, tracker = _app([booking, reads], registry, clock)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for _ in range(8):
            assert (await client.post("/bookings")).status_code == 200
        assert (await client.post("/bookings", params={"slow": 0.35})).status_code == 200
        assert (await client.post("/bookings", params={"fail": True})).status_code == 500
        for i in range(3):
            assert (await client.get(f"/bookings/{i}")).status_code == 200
        response = await client.get("/slo")
        html = await client.get("/slo", params={"format": "html"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    by_name = {o["name"]: o for o in body["objectives"]}
    entry = by_name["booking_post"]
    assert entry["kind"] == "latency" and entry["threshold_seconds"] == 0.3
    assert entry["windows"]["5m"]["good"] == 8 and entry["windows"]["5m"]["bad"] == 2
    assert set(entry["windows"]) == {"5m", "1h", "6h", "1d", "28d"}
    assert [a["tier"] for a in entry["alerts"]] == ["page", "ticket"]
    assert entry["p95_seconds"] is not None and entry["p95_seconds"] > 0.3  # 2 of 10 above 0.3 s
    assert by_name["booking_reads"]["windows"]["5m"] == {
        "good": 3, "bad": 0, "total": 3, "sli": 1.0, "burn_rate": 0.0}
    assert "booking API under 300 ms" in html.text and html.headers["content-type"].startswith("text/html")
    expect_slo(booking, good=8, bad=2, met=False)


def test_threshold_that_is_not_a_bucket_is_refused(registry):
    app = FastAPI()
    surefoot.install(app, registry=registry)
    odd = slo.Latency("odd", target=0.9, threshold=0.3, route="/x")
    with pytest.raises(ConfigurationError, match="extra_buckets"):
        slo.install(app, [odd], registry=registry)


@pytest.mark.parametrize("options, names", [({"path": "slo"}, "path must start with '/'"),
                                             ({"cache_seconds": -1}, "cache_seconds"),
                                             ({"interval": 0}, "interval")])
def test_install_options_that_cannot_work_are_refused(registry, options, names):
    app = FastAPI()
    surefoot.install(app, registry=registry)
    with pytest.raises(ConfigurationError, match=names):
        slo.install(app, [slo.Ratio("r", target=0.9)], registry=registry, **options)


def test_route_objective_needs_surefoot_request_path(registry):
    with pytest.raises(ConfigurationError, match="surefoot.install"):
        slo.install(FastAPI(), [slo.Ratio("r", target=0.9, route="/x")], registry=registry)


async def test_lifespan_ticks_and_fires_hooks(registry):
    clock = FakeClock()
    avail = slo.Ratio("api", target=0.9)
    app = FastAPI()
    fired = asyncio.Event()
    tracker = slo.install(app, [avail], clock=clock, registry=registry, interval=0.01,
                          on_burn=lambda event: fired.set())
    avail.bad()
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(fired.wait(), 5)
    assert tracker.firing(avail, "page")


async def test_an_app_that_already_started_is_refused(registry):
    app = FastAPI()
    surefoot.install(app, registry=registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/livez")).status_code == 200  # the app has built its stack
    with pytest.raises(ConfigurationError, match="not started yet"):
        slo.install(app, [slo.Ratio("api", target=0.9)], registry=registry)
