"""The lock-free metric values of the request path stay exact under threads."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Gauge, Histogram

from surefoot.http import _middleware as mw

from .conftest import samples


def _hammer(fn, threads: int = 4, times: int = 5000) -> None:
    def work() -> None:
        for _ in range(times):
            fn()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_active_gauge_reads_started_minus_finished():
    registry = CollectorRegistry()
    gauge = Gauge("g", "g", ["m"], registry=registry)
    started, finished = mw._active_pair(gauge.labels("GET"))
    started()
    started()
    assert samples(registry, "g") == {(("m", "GET"),): 2.0}
    finished()
    assert samples(registry, "g") == {(("m", "GET"),): 1.0}

    def one_request() -> None:
        started()
        finished()

    _hammer(one_request)
    assert samples(registry, "g") == {(("m", "GET"),): 1.0}


def test_histogram_buckets_count_every_observation_under_threads():
    registry = CollectorRegistry()
    histogram = Histogram("h", "h", ["x"], registry=registry, buckets=(0.1, 1.0))
    observe = mw._observer(histogram.labels("1"))
    assert isinstance(histogram.labels("1")._buckets[0], mw._CountValue)
    _hammer(lambda: observe(0.0625))
    _hammer(lambda: observe(0.5), threads=2)
    buckets = samples(registry, "h_bucket")
    assert buckets[(("le", "0.1"), ("x", "1"))] == 20000
    assert buckets[(("le", "1.0"), ("x", "1"))] == 30000
    assert buckets[(("le", "+Inf"), ("x", "1"))] == 30000
    assert samples(registry, "h_count")[(("x", "1"),)] == 30000
    assert samples(registry, "h_sum")[(("x", "1"),)] == 20000 * 0.0625 + 10000 * 0.5  # exact in binary
    assert len(histogram.labels("1")._sum.pending) == 0  # folded by the scrape
    # the public method still works on the same child
    histogram.labels("1").observe(5.0)
    assert samples(registry, "h_count")[(("x", "1"),)] == 30001
    assert samples(registry, "h_sum")[(("x", "1"),)] == 6255.0


def test_scrapes_racing_observations_lose_nothing():
    registry = CollectorRegistry()
    histogram = Histogram("h", "h", registry=registry, buckets=(1.0,))
    observe = mw._observer(histogram)
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            samples(registry, "h_sum")

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        _hammer(lambda: observe(0.25), threads=3, times=6000)
    finally:
        stop.set()
        scraper.join()
    assert samples(registry, "h_sum")[()] == 18000 * 0.25


def test_shared_values_keep_prometheus_client_increments():
    class Shared:  # stands for the multi-process file-backed value
        def __init__(self) -> None:
            self.value = 0.0

        def inc(self, amount: float) -> None:
            self.value += amount

    class Child:
        _value = Shared()

        def inc(self, amount: float = 1) -> None:
            self._value.inc(amount)

    child = Child()
    started, finished = mw._active_pair(child)
    started()
    started()
    finished()
    assert child._value.value == 1.0


def test_two_meters_on_one_registry_share_the_active_gauge():
    registry = CollectorRegistry()
    one = mw._Meter(registry, 10, (0.1, 1.0))
    two = mw._Meter(registry, 10, (0.1, 1.0))
    a = one.start("GET", "http")
    b = two.start("GET", "http")
    assert samples(registry, "http_server_active_requests")[(("http_request_method", "GET"), ("url_scheme", "http"))] == 2
    one.finish(a, "GET", "http", 200, "", 0.05, "/x")
    two.finish(b, "GET", "http", 200, "", 0.5, "/x")
    assert samples(registry, "http_server_active_requests")[(("http_request_method", "GET"), ("url_scheme", "http"))] == 0
    counts = samples(registry, "http_server_request_duration_seconds_count")
    assert sum(counts.values()) == 2
    assert sum(samples(registry, "http_server_request_duration_seconds_sum").values()) == 0.55
