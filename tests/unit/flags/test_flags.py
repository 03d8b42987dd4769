"""surefoot.flags: defaults from the environment, shared overrides, audit, metrics, admin, CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from surefoot import flags
from surefoot.errors import ConfigurationError, NotFoundError
from surefoot.testing import capture_logs, metric_value


@pytest.fixture(autouse=True)
def _reset_flags():
    flags.reset()
    yield
    flags.reset()


def unique_name() -> str:
    return "f_" + uuid.uuid4().hex[:12]


def test_default_comes_from_code_then_environment(monkeypatch) -> None:
    name = unique_name()
    flag = flags.Flag(name, default=False)
    assert flag.enabled is False and flag.env == name.upper()
    flags.reset()  # environment defaults are read once; reset re-reads
    monkeypatch.setenv(name.upper(), "on")
    assert flag.enabled is True and bool(flag)
    custom = flags.Flag(unique_name(), default=True, env="MY_SWITCH")
    monkeypatch.setenv("MY_SWITCH", "false")
    assert custom.enabled is False


def test_a_bad_environment_value_names_the_variable(monkeypatch) -> None:
    flag = flags.Flag(unique_name(), env="SOME_SWITCH")
    monkeypatch.setenv("SOME_SWITCH", "maybe")
    with pytest.raises(ConfigurationError, match="SOME_SWITCH.*'maybe'.*on/off"):
        _ = flag.enabled


@pytest.mark.parametrize("name", ["", "Upper", "1abc", "has-dash", "x" * 64, "spa ce"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="flag name"):
        flags.Flag(name)


def test_redeclaring_with_another_default_is_refused() -> None:
    name = unique_name()
    flags.Flag(name, default=False)
    flags.Flag(name, default=False)  # same declaration (module imported twice): fine
    with pytest.raises(ConfigurationError, match="already declared"):
        flags.Flag(name, default=True)


def test_redeclaring_the_same_flag_gives_an_equivalent_flag(monkeypatch) -> None:
    name = unique_name()
    first = flags.Flag(name, default=True)
    again = flags.Flag(name, default=True)
    assert again == first and hash(again) == hash(first)
    assert flags.Flag(unique_name()) != first
    monkeypatch.setenv(name.upper(), "off")
    assert first.enabled is again.enabled is False


@pytest.mark.parametrize("value", ["", "enabled", "disabled", "2", "y", "onn"])
def test_only_the_documented_spellings_are_booleans(monkeypatch, value: str) -> None:
    flag = flags.Flag(unique_name(), default=True)
    monkeypatch.setenv(flag.env, value)
    with pytest.raises(ConfigurationError, match=flag.env):
        _ = flag.enabled


@pytest.mark.parametrize("value, expected", [("ON", True), ("Off", False), ("TRUE", True), ("false", False),
                                             ("1", True), ("0", False), ("Yes", True), ("no", False)])
def test_every_documented_spelling_in_any_case(monkeypatch, value: str, expected: bool) -> None:
    flag = flags.Flag(unique_name(), default=not expected)
    monkeypatch.setenv(flag.env, value)
    assert flag.enabled is expected


def test_a_long_name_is_refused_with_the_limit() -> None:
    with pytest.raises(ConfigurationError, match="at most 63 characters"):
        flags.Flag("x" * 64)


def test_get_flag_of_an_undeclared_name_says_so() -> None:
    name = unique_name()
    with pytest.raises(KeyError, match=name):
        flags.get_flag(name)
    assert flags.get_flag(flags.Flag(name).name).name == name


def test_set_without_configure_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match=r"flags.configure"):
        flags.set(unique_name(), True, actor="t")


def test_set_clear_audit_log_and_metrics(db_url: str, registry) -> None:
    name = unique_name()
    flag = flags.Flag(name, default=False, description="test switch")
    flags.configure(db_url, refresh_interval=0, registry=registry)
    with capture_logs() as logs:
        result = flags.set(name, True, actor="alice", reason="provider down")
    assert result == {"name": name, "enabled": True, "previous": None}
    assert flag.enabled is True and flag.overridden
    described = flag.describe()
    assert described["updated_by"] == "alice" and described["reason"] == "provider down"
    line = next(e for e in logs if e["event"] == "flag_set")
    assert line["level"] == "warning" and line["flag"] == name and line["actor"] == "alice"
    assert metric_value(registry, "feature_flag_changes_total", {"flag": name, "source": "api"}) == 1
    assert metric_value(registry, "feature_flag_enabled", {"flag": name}) == 1

    flags.set(name, False, actor="bob")
    assert flag.enabled is False
    flags.clear(name, actor="carol", reason="back to default")
    assert flag.enabled is False and not flag.overridden
    assert metric_value(registry, "feature_flag_changes_total", {"flag": name, "source": "api"}) == 3
    history = flags.history(name)
    assert [(h["enabled"], h["changed_by"]) for h in history] == [(None, "carol"), (False, "bob"), (True, "alice")]


def test_invalid_actor_reason_and_name(sqlite_url: str) -> None:
    flags.configure(sqlite_url, refresh_interval=0)
    with pytest.raises(ConfigurationError, match="actor"):
        flags.set("some_flag", True, actor="")
    with pytest.raises(ConfigurationError, match="reason"):
        flags.set("some_flag", True, actor="a", reason="x" * 501)
    with pytest.raises(NotFoundError):
        flags.set("Not A Flag", True, actor="a")


@pytest.mark.parametrize("value", ["off", "false", 0, None])
def test_set_takes_a_real_boolean_so_text_never_turns_a_flag_on(sqlite_url: str, value) -> None:
    flag = flags.Flag(unique_name())
    flags.configure(sqlite_url, refresh_interval=0)
    with pytest.raises(ConfigurationError, match="enabled must be True or False"):
        flags.set(flag.name, value, actor="a")
    assert flag.enabled is False and not flag.overridden
    assert flags.history(flag.name) == []


@pytest.mark.parametrize("limit", [0, -1])
def test_history_limit_must_be_positive(sqlite_url: str, limit: int) -> None:
    flags.configure(sqlite_url, refresh_interval=0)
    with pytest.raises(ConfigurationError, match="limit"):
        flags.history(limit=limit)


def test_another_process_sees_a_flip_within_the_refresh_interval(db_url: str, subprocess_env, tmp_path) -> None:
    """A second process (the worker) polls the database; a flip made here reaches it."""
    name = unique_name()
    flags.configure(db_url, refresh_interval=0)
    script = tmp_path / "watch.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from surefoot import flags
        flag = flags.Flag({name!r})
        flags.configure({db_url!r}, refresh_interval=0.1)
        print("ready", flag.enabled, file=sys.stderr, flush=True)
        deadline = time.monotonic() + 20
        while not flag.enabled and time.monotonic() < deadline:
            time.sleep(0.02)
        print("seen", flag.enabled, file=sys.stderr, flush=True)
    """))
    # The markers go to stderr: the child's log lines (standard output) are written by the flag
    # refresher's thread, and two threads printing to one text stream can merge lines.
    child = subprocess.Popen([sys.executable, str(script)], env=subprocess_env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    skipped: list[str] = []

    def next_marker() -> str:
        assert child.stderr is not None
        for line in child.stderr:
            if line.startswith(("ready", "seen")):
                return line.strip()
            skipped.append(line)  # a traceback, if the child failed
        return "<eof>: " + "".join(skipped)[-2000:]

    try:
        assert next_marker() == "ready False"
        flipped = time.monotonic()
        flags.set(name, True, actor="test")
        assert next_marker() == "seen True"
        assert time.monotonic() - flipped < 5
    finally:
        child.wait(20)


def test_remote_change_is_logged_counted_and_notifies_listeners(sqlite_url: str, registry) -> None:
    name = unique_name()
    flag = flags.Flag(name)
    seen: list[bool] = []
    flag.on_change(seen.append)
    flags.configure(sqlite_url, refresh_interval=0, registry=registry)
    # another process writes the row directly through its own store
    other = flags.FlagStore(sqlite_url)
    other.write(name, True, actor="elsewhere", reason="")
    with capture_logs() as logs:
        flags.refresh()
    assert flag.enabled and seen == [True]
    changed = next(e for e in logs if e["event"] == "flag_changed")
    assert changed["source"] == "remote" and changed["updated_by"] == "elsewhere"
    assert metric_value(registry, "feature_flag_changes_total", {"flag": name, "source": "remote"}) == 1


def test_a_failing_listener_does_not_break_the_flip(sqlite_url: str) -> None:
    name = unique_name()
    flag = flags.Flag(name)

    @flag.on_change
    def broken(value: bool) -> None:
        raise RuntimeError("listener bug")

    flags.configure(sqlite_url, refresh_interval=0)
    with capture_logs() as logs:
        flags.set(name, True, actor="t")
    assert flag.enabled
    assert any(e["event"] == "flag_listener_failed" for e in logs)


def test_refresher_keeps_the_last_view_when_the_database_goes_away(tmp_path) -> None:
    name = unique_name()
    flag = flags.Flag(name)
    path = tmp_path / "flags.db"
    flags.configure(f"sqlite:///{path}", refresh_interval=0.05)
    flags.set(name, True, actor="t")
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE feature_flags"))
    time.sleep(0.3)
    assert flag.enabled is True  # refresh failures keep the last known values


# -- admin endpoint ----------------------------------------------------------------------

def _admin_client(token: str | None = "s3cret"):  # type: ignore[no-untyped-def]
    from fastapi import FastAPI

    import surefoot

    app = FastAPI()
    app.mount("/admin/flags", flags.admin_app(token=token))
    surefoot.install(app, logging=False)
    from starlette.testclient import TestClient

    return TestClient(app)


def test_admin_endpoint_is_protected_and_flips_declared_flags(sqlite_url: str) -> None:
    name = unique_name()
    flag = flags.Flag(name, description="admin test")
    flags.configure(sqlite_url, refresh_interval=0)
    with _admin_client() as client:
        missing = client.get("/admin/flags/")
        assert missing.status_code == 401
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert client.get("/admin/flags/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        listed = client.get("/admin/flags/", headers=auth).json()["flags"]
        assert any(f["name"] == name and f["enabled"] is False for f in listed)

        put = client.put(f"/admin/flags/{name}", json={"enabled": True, "reason": "page"}, headers=auth)
        assert put.status_code == 200 and put.json()["enabled"] is True and put.json()["updated_by"] == "admin-endpoint"
        assert flag.enabled

        assert client.put("/admin/flags/undeclared_flag", json={"enabled": True}, headers=auth).status_code == 404
        bad = client.put(f"/admin/flags/{name}", json={"enabled": "yes"}, headers=auth)
        assert bad.status_code == 400 and bad.json()["code"] == "VALIDATION_ERROR"
        assert client.put(f"/admin/flags/{name}", content=b"{", headers=auth).status_code == 400
        assert client.put(f"/admin/flags/{name}", content=b"x" * 5000, headers=auth).status_code == 400

        cleared = client.delete(f"/admin/flags/{name}", headers=auth)
        assert cleared.status_code == 200 and cleared.json()["overridden"] is False
    assert flags.history(name)[0]["changed_by"] == "admin-endpoint"


def test_admin_endpoint_without_a_token_refuses_everything(monkeypatch) -> None:
    monkeypatch.delenv("SUREFOOT_FLAGS_ADMIN_TOKEN", raising=False)
    with _admin_client(token=None) as client:
        refused = client.get("/admin/flags/", headers={"Authorization": "Bearer "})
    assert refused.status_code == 403 and "SUREFOOT_FLAGS_ADMIN_TOKEN" in refused.json()["detail"]


# -- CLI ---------------------------------------------------------------------------------

def test_cli_set_list_clear_history(sqlite_url: str) -> None:
    pytest.importorskip("sqlalchemy")
    from typer.testing import CliRunner

    from surefoot.cli import _register, app

    _register()
    runner = CliRunner()
    name = unique_name()
    result = runner.invoke(app, ["flags", "set", name, "on", "--url", sqlite_url, "--reason", "drill"])
    assert result.exit_code == 0, result.output
    assert f"{name}: default -> on" in result.output
    listed = runner.invoke(app, ["flags", "list", "--url", sqlite_url])
    assert name in listed.output and "drill" in listed.output
    for value in ("perhaps", "enabled", ""):
        bad = runner.invoke(app, ["flags", "set", name, value, "--url", sqlite_url])
        assert bad.exit_code == 2 and "on/off" in bad.output
    assert runner.invoke(app, ["flags", "clear", name, "--url", sqlite_url]).exit_code == 0
    history = runner.invoke(app, ["flags", "history", name, "--url", sqlite_url])
    lines = [line for line in history.output.splitlines() if name in line]
    assert "cleared" in lines[0] and " on " in lines[1]


@pytest.mark.parametrize("bind", ["not a url", 42])
def test_configure_with_something_that_is_not_a_database_says_so(bind) -> None:
    with pytest.raises(ConfigurationError, match="flags need a database URL"):
        flags.configure(bind, refresh_interval=0)


def test_configure_accepts_a_url_an_engine_or_an_async_engine(tmp_path) -> None:
    pytest.importorskip("aiosqlite")
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    path = tmp_path / "flags.db"
    flag = flags.Flag(unique_name())
    store = flags.configure(create_async_engine(f"sqlite+aiosqlite:///{path}"), refresh_interval=0)
    assert store.engine.url.drivername == "sqlite"  # reached through the matching sync driver
    flags.set(flag.name, True, actor="t")
    for bind in (f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}", sa.create_engine(f"sqlite:///{path}")):
        flags.reset()
        assert flag.enabled is False
        flags.configure(bind, refresh_interval=0)
        assert flag.enabled is True and flag.describe()["updated_by"] == "t"
