"""Window arithmetic against naive reference models (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surefoot.resilience._window import (
    FAILURE,
    N_LATENCY_BUCKETS,
    SLOW,
    CountWindow,
    LatencyBaseline,
    TimeWindow,
    bucket_mid,
    latency_bucket,
    quantile_from_buckets,
)

outcomes = st.sampled_from([0, FAILURE, SLOW, FAILURE | SLOW])


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 20), seq=st.lists(outcomes, max_size=200))
def test_count_window_matches_last_n(size, seq):
    w = CountWindow(size)
    for i, o in enumerate(seq):
        w.record(o)
        last = seq[max(0, i + 1 - size): i + 1]
        assert w.calls == len(last)
        assert w.failures == sum(1 for x in last if x & FAILURE)
        assert w.slow == sum(1 for x in last if x & SLOW)


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 15),
    events=st.lists(st.tuples(st.floats(0, 40, allow_nan=False), outcomes), max_size=120),
    final=st.floats(0, 60, allow_nan=False),
)
def test_time_window_matches_reference(size, events, final):
    w = TimeWindow(size)
    now = 0.0
    recorded: list[tuple[int, int]] = []  # (bucket second, outcome)
    for step, o in events:
        now += step / 10.0
        w.record(o, now)
        # a record lands in the newest bucket seen so far (monotonic time never goes back here)
        recorded.append((int(now), o))

        def live(at: float) -> list[int]:
            head = int(at)
            return [x for s, x in recorded if s > head - size]

        current = live(now)
        assert (w.calls, w.failures, w.slow) == (
            len(current),
            sum(1 for x in current if x & FAILURE),
            sum(1 for x in current if x & SLOW),
        )
    later = now + final
    w.advance(later)
    current = [x for s, x in recorded if s > int(later) - size]
    assert w.calls == len(current)
    assert w.failures == sum(1 for x in current if x & FAILURE)


def test_time_window_earlier_time_counts_in_newest_bucket():
    w = TimeWindow(5)
    w.record(FAILURE, 10.5)
    w.record(0, 9.0)  # measured before, recorded after: not lost
    assert (w.calls, w.failures) == (2, 1)
    w.advance(14.9)
    assert w.calls == 2
    w.advance(15.0)
    assert w.calls == 0


def test_window_sizes_are_validated():
    for cls in (CountWindow, TimeWindow):
        with pytest.raises(ValueError):
            cls(0)


def test_reset():
    w = CountWindow(3)
    w.record(FAILURE)
    w.reset()
    assert (w.calls, w.failures, w.slow) == (0, 0, 0)


@settings(max_examples=300, deadline=None)
@given(st.floats(1e-6, 1000.0, allow_nan=False))
def test_latency_bucket_midpoint_is_close(seconds):
    mid = bucket_mid(latency_bucket(seconds))
    assert abs(mid - seconds) / seconds <= 0.125


def test_latency_bucket_edges():
    assert latency_bucket(0.0) == 0
    assert latency_bucket(-1.0) == 0
    assert latency_bucket(1e-12) == 0
    assert latency_bucket(1e9) == N_LATENCY_BUCKETS - 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1e-4, 100.0, allow_nan=False), min_size=1, max_size=300))
def test_quantile_close_to_exact(values):
    counts = [0] * N_LATENCY_BUCKETS
    for v in values:
        counts[latency_bucket(v)] += 1
    got = quantile_from_buckets(counts, 0.95)
    ordered = sorted(values)
    exact = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    assert got is not None
    assert abs(got - exact) / exact <= 0.125 + 1e-9


def test_quantile_of_empty():
    assert quantile_from_buckets([0] * N_LATENCY_BUCKETS, 0.95) is None


def test_latency_baseline_options():
    for kw in ({"factor": 1.0}, {"window": 0}, {"alpha": 0}, {"quantile": 1.0}, {"min_calls": 0}):
        with pytest.raises(ValueError):
            LatencyBaseline(**kw)


def test_latency_sparse_slices_neither_extend_nor_break_a_streak():
    lb = LatencyBaseline(factor=3.0, window=100, slices=10, min_calls=5, warmup_slices=1)
    t = 0.0
    for _ in range(5):  # healthy slices at 10 ms
        for _ in range(5):
            assert not lb.record(0.010, t)
        t += 10
    assert lb.baseline == pytest.approx(0.010, rel=0.13)
    tripped_at = None
    for k in range(30):
        n = 1 if k % 2 else 5  # every other slice too sparse to judge
        for _ in range(n):
            if lb.record(0.100, t) and tripped_at is None:
                tripped_at = t
        t += 10
    assert tripped_at is not None
    assert tripped_at >= 50 + 100  # slow since t=50, for the whole 100 s window


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 10),
    ops=st.lists(st.tuples(st.floats(0, 30, allow_nan=False), outcomes, st.booleans()), max_size=120),
)
def test_time_window_lock_free_successes_match_reference(size, ops):
    """note_success() in the newest second is the same as record(0) there."""
    w = TimeWindow(size)
    now = 0.0
    recorded: list[tuple[int, int]] = []
    for step, o, note in ops:
        now += step / 10.0
        if note and int(now) == w._head:
            w.note_success()
            recorded.append((int(now), 0))
        else:
            w.record(o, now)
            recorded.append((int(now), o))
        w.advance(now)  # folds
        live = [x for s, x in recorded if s > int(now) - size]
        assert (w.calls, w.failures, w.slow) == (
            len(live), sum(1 for x in live if x & FAILURE), sum(1 for x in live if x & SLOW),
        )
