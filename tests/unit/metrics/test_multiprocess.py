from __future__ import annotations

import os

import pytest
from prometheus_client import values

from surefoot.errors import ConfigurationError
from surefoot.metrics import multiprocess


@pytest.fixture
def mp_env(monkeypatch, tmp_path):
    monkeypatch.delenv(multiprocess.ENV, raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    # prepare()/activate() switch the process-wide value class: restore it afterwards.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    return tmp_path


def test_prepare_creates_clears_and_exports(mp_env):
    target = mp_env / "prom"
    target.mkdir()
    (target / "counter_123.db").write_bytes(b"old run")
    (target / "keep.txt").write_text("not ours")
    path = multiprocess.prepare(target)
    assert path == target
    assert os.environ[multiprocess.ENV] == str(target)
    assert not (target / "counter_123.db").exists() and (target / "keep.txt").exists()
    assert multiprocess.is_active()


def test_prepare_without_clear_and_temp_dir(mp_env):
    target = mp_env / "p2"
    target.mkdir()
    (target / "counter_1.db").write_bytes(b"x")
    multiprocess.prepare(target, clear=False)
    assert (target / "counter_1.db").exists()


def test_prepare_refuses_a_file(mp_env):
    afile = mp_env / "file"
    afile.write_text("x")
    with pytest.raises(ConfigurationError, match="not a directory"):
        multiprocess.prepare(afile)


def test_activate_repairs_a_late_environment(mp_env, monkeypatch):
    assert values.ValueClass is values.MutexValue
    assert multiprocess.activate() is False
    monkeypatch.setenv(multiprocess.ENV, str(mp_env))
    assert not multiprocess.is_active()
    assert multiprocess.activate() is True
    assert multiprocess.is_active()


def test_dead_workers_lose_live_gauges_but_keep_counters(mp_env, monkeypatch):
    monkeypatch.setenv(multiprocess.ENV, str(mp_env))
    dead_pid = 2**22 + 12345  # above pid_max on Linux: never alive
    me = os.getpid()
    for name in (f"gauge_livesum_{dead_pid}.db", f"gauge_liveall_{dead_pid}.db",
                 f"counter_{dead_pid}.db", f"histogram_{dead_pid}.db", f"gauge_livesum_{me}.db",
                 f"gauge_max_{dead_pid}.db"):
        (mp_env / name).write_bytes(b"")
    assert multiprocess.collect_dead() == [dead_pid]
    left = sorted(p.name for p in mp_env.iterdir())
    assert left == sorted([f"counter_{dead_pid}.db", f"histogram_{dead_pid}.db",
                           f"gauge_livesum_{me}.db", f"gauge_max_{dead_pid}.db"])


def test_gunicorn_hooks(mp_env, monkeypatch):
    monkeypatch.setenv(multiprocess.ENV, str(mp_env / "g"))
    multiprocess.on_starting(object())
    assert (mp_env / "g").is_dir()
    (mp_env / "g" / "gauge_livesum_77.db").write_bytes(b"")
    multiprocess.child_exit(object(), type("W", (), {"pid": 77})())
    assert not (mp_env / "g" / "gauge_livesum_77.db").exists()


def test_registry_needs_a_directory(mp_env):
    with pytest.raises(ConfigurationError, match=multiprocess.ENV):
        multiprocess.registry()


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_multiproc_dir_that_is_not_a_directory_stops_the_start_up_with_the_fix(mp_env, monkeypatch, kind):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import surefoot

    target = mp_env / "prom"
    if kind == "file":
        target.write_text("not a directory")
    monkeypatch.setenv(multiprocess.ENV, str(target))
    with pytest.raises(ConfigurationError, match="is not an existing directory: create"):
        multiprocess.warn_if_unshared()
    app = FastAPI()
    surefoot.install(app, logging=False)
    with pytest.raises(ConfigurationError, match=f"{multiprocess.ENV}={target}"), TestClient(app):
        pass


def test_no_gauge_outlives_its_worker():
    # A dead worker's gauge values (an outbox lag, a queue depth) must leave the totals with
    # it: a stale maximum would keep an alert firing after the worker is gone.
    from surefoot._core import catalogue

    gauges = [spec for spec in vars(catalogue).values()
              if isinstance(spec, catalogue.MetricSpec) and spec.kind == "gauge"]
    assert gauges, "the catalogue declares gauges"
    assert {spec.name: spec.multiprocess_mode for spec in gauges if not spec.multiprocess_mode.startswith("live")} == {}
