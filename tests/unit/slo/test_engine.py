"""The in-process engine: objectives, windows, burn-rate tiers and hooks, in virtual time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot import slo
from surefoot.errors import ConfigurationError
from surefoot.slo._store import MemoryCounts
from surefoot.slo._windows import WINDOWS, duration_text, minute_of, parse_duration, quantile
from surefoot.testing import FakeClock, SloExpectationError, expect_slo, metric_value


def test_declarations_validate_their_numbers():
    with pytest.raises(ConfigurationError, match="target"):
        slo.Ratio("a", target=95)
    with pytest.raises(ConfigurationError, match="name"):
        slo.Ratio("Bad-Name", target=0.9)
    with pytest.raises(ConfigurationError, match="threshold"):
        slo.Latency("l", target=0.9, threshold=0)
    with pytest.raises(ConfigurationError, match="deadline"):
        slo.EventPair("p", target=0.9, deadline=float("nan"))
    assert slo.Ratio("a", target=0.999).error_budget == 0.001


@pytest.mark.parametrize("statuses", [500, (599, 500), (500,), ("500", "599"), (50, 599)])
def test_bad_statuses_must_be_a_low_high_pair(statuses):
    with pytest.raises(ConfigurationError, match=r"bad_statuses must be \(low, high\)"):
        slo.Ratio("a", target=0.9, bad_statuses=statuses)


def test_objectives_declared_alike_are_equal():
    assert slo.Latency("b", target=0.95, threshold=0.5, route="/b") == slo.Latency("b", target=0.95, threshold=0.5,
                                                                                  route="/b")
    assert slo.Latency("b", target=0.95, threshold=0.5) != slo.Latency("b", target=0.95, threshold=0.4)
    assert slo.Ratio("b", target=0.95) != slo.Latency("b", target=0.95, threshold=0.5)
    assert len({slo.Ratio("r", target=0.9), slo.Ratio("r", target=0.9)}) == 1


def test_latency_counts_at_the_threshold_inclusive(registry):
    booking = slo.Latency("booking_post", target=0.95, threshold=0.5)
    booking.bind(registry)
    for seconds in (0.1, 0.5, 0.5000001, 3.0):
        booking.observe(seconds)
    assert booking.counts() == (2, 2)
    assert metric_value(registry, "slo_events_total", {"slo": "booking_post", "outcome": "good"}) == 2
    assert metric_value(registry, "slo_events_total", {"slo": "booking_post", "outcome": "bad"}) == 2


def test_ratio_response_statuses(registry):
    avail = slo.Ratio("api", target=0.99, route="*", bad_statuses=(500, 599))
    avail.bind(registry)
    for status in (200, 404, 429, 500, 503):
        avail.observe_response("GET", status, 0.01)
    assert avail.counts() == (3, 2)


def test_tracker_windows_budget_and_tiers_in_virtual_time(registry):
    clock = FakeClock(start=1_700_000_000.0)
    avail = slo.Ratio("api", target=0.99)
    tracker = slo.Tracker([avail], clock=clock, registry=registry)
    events = []
    tracker.on_burn(events.append)
    for _ in range(80):
        avail.good()
    for _ in range(20):
        avail.bad()  # 20 % errors = burn rate 20 > 14.4
    report = tracker.tick()
    (entry,) = report["objectives"]
    assert entry["windows"]["5m"] == {"good": 80, "bad": 20, "total": 100, "sli": 0.8, "burn_rate": 20.0}
    assert entry["windows"]["28d"]["total"] == 100
    assert entry["error_budget_remaining"] == pytest.approx(1 - 20.0)
    page = next(a for a in entry["alerts"] if a["tier"] == "page")
    assert page["firing"] is True
    assert [(e.objective, e.tier, e.firing) for e in events] == [("api", "page", True), ("api", "ticket", True)]
    # The same state again fires nothing: hooks fire on changes only.
    tracker.tick()
    assert len(events) == 2
    # Ten minutes of healthy traffic: the 5m window clears, so the page tier stops.
    clock.advance(600)
    for _ in range(1000):
        avail.good()
    report = tracker.tick()
    entry = report["objectives"][0]
    assert entry["windows"]["5m"]["bad"] == 0
    assert entry["windows"]["1h"]["bad"] == 20
    assert ("api", "page", False) in [(e.objective, e.tier, e.firing) for e in events]
    assert tracker.firing(avail, "page") is False
    # After 29 days nothing is left in any window.
    clock.advance(29 * 86400)
    entry = tracker.tick()["objectives"][0]
    assert entry["windows"]["28d"]["total"] == 0 and entry["windows"]["28d"]["sli"] is None
    assert entry["error_budget_remaining"] == 1.0


def test_failing_hook_is_logged_not_raised(registry):
    clock = FakeClock()
    avail = slo.Ratio("api", target=0.9)
    calls = []

    def broken(event):
        calls.append(event)
        raise RuntimeError("hook bug")

    tracker = slo.Tracker([avail], clock=clock, registry=registry, on_burn=broken)
    avail.bad()
    tracker.tick()
    assert calls, "the hook ran"


async def test_async_hook_is_awaited_by_atick(registry):
    clock = FakeClock()
    avail = slo.Ratio("api", target=0.9)
    tracker = slo.Tracker([avail], clock=clock, registry=registry)
    seen = []

    async def shed_load(event):
        seen.append((event.tier, event.firing))

    tracker.on_burn(shed_load, objective=avail, tier="page")
    avail.bad()
    await tracker.atick()
    assert seen == [("page", True)]


def test_events_before_the_tracker_are_not_put_in_a_window(registry):
    clock = FakeClock()
    avail = slo.Ratio("api", target=0.9)
    avail.bind(registry)
    avail.bad()
    tracker = slo.Tracker([avail], clock=clock, registry=registry)
    assert tracker.tick()["objectives"][0]["windows"]["5m"]["total"] == 0


def test_tracker_rejects_duplicates_and_unknown_windows():
    with pytest.raises(ConfigurationError, match="unique"):
        slo.Tracker([slo.Ratio("a", target=0.9), slo.Ratio("a", target=0.9)])
    with pytest.raises(ConfigurationError, match="window"):
        slo.Tracker([slo.Ratio("b", target=0.9)], tiers=[slo.Tier("x", (slo.Condition("7m", "5m", 2.0),))])


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(st.tuples(st.integers(0, 40 * 86400), st.booleans()), max_size=60),
    now_offset=st.integers(0, 41 * 86400),
)
def test_window_sums_match_brute_force(events, now_offset):
    base = 1_700_000_000 - (1_700_000_000 % 60)
    store = MemoryCounts()
    # Increments are added at tick time, so never in a minute after "now".
    events = [(offset, good) for offset, good in events if offset <= now_offset]
    for offset, good in events:
        t = base + offset
        store.add({("x", "good" if good else "bad", minute_of(t)): 1})
    now = base + now_offset + 17.5
    sums = store.sums(["x"], now)["x"]
    now_minute = minute_of(now)
    for window, seconds in WINDOWS.items():
        first = now_minute - seconds // 60  # the window is (first, now_minute]
        if seconds <= 6 * 3600:
            expected_good = sum(1 for offset, good in events if good and first < minute_of(base + offset) <= now_minute)
        else:  # long windows round their old edge out to the whole hour
            expected_good = sum(
                1 for offset, good in events
                if good and minute_of(base + offset) <= now_minute and (minute_of(base + offset) // 60) * 60 + 59 > first
            )
        assert sums.get("good", {}).get(window, 0) == expected_good, window


@given(st.integers(1, 10**7))
def test_duration_text_round_trips(seconds):
    assert parse_duration(duration_text(seconds)) == seconds


def test_quantile_interpolates_like_prometheus():
    assert quantile(0.95, [2.5, 5.0, math.inf], [0, 10, 0]) == pytest.approx(4.875)
    assert quantile(0.5, [1.0, math.inf], [0, 4]) == 1.0
    assert quantile(0.5, [1.0], [0]) is None


def test_expect_slo(registry):
    booking = slo.Latency("booking_post", target=0.95, threshold=0.5)
    booking.bind(registry)
    with pytest.raises(SloExpectationError, match="fewer than 1"):
        expect_slo(booking)
    for _ in range(19):
        booking.observe(0.1)
    booking.observe(2.0)
    assert expect_slo(booking, good=19, bad=1, min_sli=0.95)["sli"] == 0.95
    booking.observe(2.0)
    with pytest.raises(SloExpectationError, match="not met"):
        expect_slo(booking)
    expect_slo(booking, met=False)


def test_expect_slo_takes_the_objective_not_its_name():
    with pytest.raises(TypeError, match="needs a surefoot.slo objective"):
        expect_slo("booking_post")


def test_public_names_resolve():
    assert sorted(slo.__all__) == sorted(set(slo.__all__))
    for name in slo.__all__:
        assert getattr(slo, name) is not None, name
