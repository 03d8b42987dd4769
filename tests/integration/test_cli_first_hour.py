"""The command line in a new user's first hour: one-line fixes, no stray files, one spelling."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from surefoot import outbox
from surefoot.cli import _register, app
from surefoot.outbox import Dispatcher, dead_letters_table, events_table

_register()
runner = CliRunner()


def cli(*args: str, **kwargs):
    return runner.invoke(app, list(args), catch_exceptions=False, **kwargs)


def run_cli(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "surefoot", *args], env=env, capture_output=True, text=True,
                          timeout=60, **kwargs)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_version(subprocess_env):
    out = run_cli(["--version"], subprocess_env)
    assert out.returncode == 0
    assert re.fullmatch(r"surefoot \S+\n", out.stdout)


@pytest.mark.parametrize("group", ["outbox", "webhooks", "idempotency"])
def test_unmigrated_database_says_which_migrate_to_run(tmp_path, subprocess_env, group):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    sa.create_engine(url).connect().close()  # an existing, empty database
    command = {"outbox": ["outbox", "status"], "webhooks": ["webhooks", "purge", "--yes"],
               "idempotency": ["idempotency", "purge", "--yes"]}[group]
    line = _one_line(run_cli([*command, "--url", url], subprocess_env))
    assert f"run `surefoot {group} migrate --url {url}`" in line


@pytest.mark.parametrize("group", ["outbox", "webhooks", "idempotency"])
def test_migrate_then_the_command_works(tmp_path, subprocess_env, group):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert run_cli([group, "migrate", "--url", url], subprocess_env).returncode == 0
    command = {"outbox": ["outbox", "status"], "webhooks": ["webhooks", "purge", "--yes"],
               "idempotency": ["idempotency", "purge", "--yes"]}[group]
    out = run_cli([*command, "--url", url], subprocess_env)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "command",
    [["outbox", "status"], ["outbox", "tail"], ["outbox", "requeue", "1"], ["outbox", "purge", "-y"],
     ["outbox", "pause", "x"], ["webhooks", "purge", "-y"], ["idempotency", "purge", "-y"]],
)
def test_commands_never_create_a_database_file(tmp_path, subprocess_env, command):
    path = tmp_path / "missing.db"
    line = _one_line(run_cli([*command, "--url", f"sqlite:///{path}"], subprocess_env))
    assert "no database at" in line and "migrate --url" in line
    assert not path.exists()


def test_default_url_from_settings_is_not_created_either(tmp_path, subprocess_env):
    env = dict(subprocess_env)
    env.pop("SUREFOOT_DATABASE_URL", None)
    out = run_cli(["outbox", "status"], env, cwd=tmp_path)
    assert out.returncode == 1 and "no database at surefoot.db" in out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url, expected",
    [
        ("not a url", "not a database URL"),
        ("mysqlx://h/db", "unknown database driver"),
        ("postgresql://nobody:secret@127.0.0.1:1/db", "cannot use the database"),
    ],
)
def test_bad_urls_are_one_line(subprocess_env, url, expected):
    line = _one_line(run_cli(["outbox", "status", "--url", url], subprocess_env))
    assert expected in line
    assert "secret" not in line


@pytest.mark.parametrize("module, extra", [("psycopg", "postgres"), ("sqlalchemy", "sql")])
def test_a_missing_driver_names_the_extra(subprocess_env, module, extra):
    code = (f"import sys; sys.modules[{module!r}] = None; from surefoot.cli import main; "
            "sys.argv = ['surefoot', 'outbox', 'status', '--url', 'postgresql://u@127.0.0.1/db']; main()")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         timeout=60)
    line = _one_line(out)
    assert f"pip install 'surefoot[{extra}]'" in line and module in line


def test_shared_options_have_one_spelling():
    for group in ("outbox", "webhooks", "idempotency"):
        names = [c.name for c in app.registered_groups if c.name == group]
        assert names, group
    for args, destructive in ((["outbox", "purge"], True), (["webhooks", "purge"], True),
                              (["idempotency", "purge"], True), (["outbox", "status"], False),
                              (["outbox", "requeue"], False), (["webhooks", "migrate"], False)):
        help_text = cli(*args, "--help", env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"}).stdout
        assert "--url" in help_text and "--database-url" not in help_text
        assert ("--yes" in help_text) is destructive, args
        assert "--older-than-days" not in help_text and "--days" not in help_text
    for args in (["outbox", "purge"], ["webhooks", "purge"]):
        assert "--older-than" in cli(*args, "--help", env={"COLUMNS": "200"}).stdout


def test_purge_asks_for_confirmation(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert cli("webhooks", "migrate", "--url", url).exit_code == 0
    refused = runner.invoke(app, ["webhooks", "purge", "--url", url], input="n\n")
    assert refused.exit_code == 1 and "delete webhook deliveries" in refused.stdout
    assert cli("webhooks", "purge", "--url", url, "--older-than", "12h", "--yes").exit_code == 0


@pytest.mark.parametrize("age, ok", [("30d", True), ("12h", True), ("2w", True), ("90s", True),
                                      ("30", False), ("thirty days", False), ("-1d", False)])
def test_older_than_takes_units(tmp_path, age, ok):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    assert cli("outbox", "migrate", "--url", url).exit_code == 0
    result = runner.invoke(app, ["outbox", "purge", "--url", url, "--older-than", age, "-y"])
    assert (result.exit_code == 0) is ok, result.output
    if not ok:
        assert result.exit_code == 2 and "12h" in result.output


def _dead_letter(engine, registry, name: str = "Poison"):
    with engine.begin() as conn:
        conn.execute(events_table.delete())
        conn.execute(dead_letters_table.delete())
        event = outbox.add(conn, name, {"n": 1})

    def poison(event):
        raise RuntimeError("cannot parse")

    async def run() -> None:
        await Dispatcher(engine, handlers={name: poison}, max_attempts=1, listen=False, registry=registry).drain()

    asyncio.run(run())
    return event


def test_requeue_counts_each_event_once_and_refuses_unknown_ids(db_url, registry):
    assert cli("outbox", "migrate", "--url", db_url).exit_code == 0
    engine = sa.create_engine(db_url)
    try:
        event = _dead_letter(engine, registry)
        result = cli("outbox", "requeue", event.event_id, "--url", db_url)
        assert result.exit_code == 0 and result.stdout.strip() == "requeued 1 events"
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(events_table)).scalar_one() == 1
            assert conn.execute(sa.select(sa.func.count()).select_from(dead_letters_table)).scalar_one() == 0

        # the same id twice is one event
        event = _dead_letter(engine, registry)
        result = cli("outbox", "requeue", event.event_id, event.event_id, "--url", db_url)
        assert result.stdout.strip() == "requeued 1 events"

        # an unknown id: failure, naming it, and nothing changes
        event = _dead_letter(engine, registry)
        unknown = "00000000-0000-4000-8000-000000000000"
        result = runner.invoke(app, ["outbox", "requeue", event.event_id, unknown, "--url", db_url])
        assert result.exit_code == 1 and unknown in result.output and "nothing was requeued" in result.output
        result = runner.invoke(app, ["outbox", "requeue", "999999", "--url", db_url])
        assert result.exit_code == 1 and "999999" in result.output
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(dead_letters_table)).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_unmigrated_postgres_database_says_to_migrate(pg_url, subprocess_env):
    import uuid

    schema = f"cli_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        url = f"{pg_url}?options=-csearch_path%3D{schema}"
        for group, command in (("outbox", ["outbox", "status"]), ("webhooks", ["webhooks", "purge", "-y"]),
                               ("idempotency", ["idempotency", "purge", "-y"])):
            line = _one_line(run_cli([*command, "--url", url], subprocess_env))
            assert f"run `surefoot {group} migrate --url" in line, line
        assert run_cli(["outbox", "migrate", "--url", url], subprocess_env).returncode == 0
        assert run_cli(["outbox", "status", "--url", url], subprocess_env).returncode == 0
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


@pytest.mark.parametrize("command", [["flags", "list"], ["flags", "history"], ["flags", "history", "pause_outbound_sms"]])
def test_flag_reading_commands_never_create_a_database_file(tmp_path, subprocess_env, command):
    path = tmp_path / "missing.db"
    line = _one_line(run_cli([*command, "--url", f"sqlite:///{path}"], subprocess_env))
    assert f"no database at {path}" in line and "--url" in line
    assert not path.exists()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("not a url", "not a database URL"),
        ("mysqlx://h/db", "unknown database driver"),
        ("postgresql://nobody:secret@127.0.0.1:1/db", "cannot use the database"),
    ],
)
@pytest.mark.parametrize("command", [["flags", "list"], ["flags", "set", "pause_outbound_sms", "on"],
                                     ["slo", "migrate"]])
def test_flags_and_slo_commands_explain_bad_urls_in_one_line(subprocess_env, url, expected, command):
    line = _one_line(run_cli([*command, "--url", url], subprocess_env))
    assert expected in line
    assert "secret" not in line


def test_an_invalid_flag_name_is_a_usage_error_that_touches_nothing(tmp_path):
    path = tmp_path / "app.db"
    result = runner.invoke(app, ["flags", "set", "Pause-SMS", "on", "--url", f"sqlite:///{path}"])
    assert result.exit_code == 2
    assert "'Pause-SMS' is not a flag name" in result.output and "pause_outbound_sms" in result.output
    assert not path.exists()


def test_slo_migrate_creates_the_tables_and_can_run_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    for _ in range(2):
        result = cli("slo", "migrate", "--url", url)
        assert result.exit_code == 0 and "surefoot_slo_pairs and surefoot_slo_counts are ready" in result.output
    assert {"surefoot_slo_pairs", "surefoot_slo_counts"} <= set(sa.inspect(sa.create_engine(url)).get_table_names())


def _documented_command_lines() -> list[tuple[str, str]]:
    """Every ``surefoot ...`` command line of the README and the guides (code blocks and spans)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found: list[tuple[str, str]] = []
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        in_block, pending = False, ""
        for line in path.read_text().splitlines():
            if line.strip().startswith("```"):
                in_block = not in_block
                continue
            if not in_block:
                found += [(path.name, span) for span in re.findall(r"`(surefoot [^`]+)`", line)]
                continue
            pending += line.strip().rstrip("\\").strip() + " "
            if not line.rstrip().endswith("\\"):
                if pending.startswith("surefoot "):
                    found.append((path.name, pending.strip()))
                pending = ""
    return found


def test_every_documented_command_line_parses():
    """Options and commands in the guides exist: a command line copied from them is accepted."""
    import shlex

    import typer

    root = typer.main.get_command(app)
    checked = []
    for doc, line in _documented_command_lines():
        command = line.split(" #")[0].strip()
        if " | " in command or "COMMAND" in command or "<" in command:
            continue  # a synopsis of several commands, not one command line
        args = shlex.split(re.sub(r"\[([^\]]*)\]", r"\1", command))[1:]
        group, rest = root, list(args)
        try:
            while hasattr(group, "get_command") and rest and not rest[0].startswith("-"):
                name = rest.pop(0)
                found = group.get_command(None, name)
                assert found is not None, f"{doc}: `{command}`: no command {name!r}"
                group = found
            if not hasattr(group, "get_command"):
                group.make_context(group.name, rest)
        except typer.Exit:
            pass
        except Exception as exc:  # the parser's errors: unknown option, bad value, ...
            if type(exc).__name__ != "MissingParameter":  # `surefoot flags clear` named in prose
                raise AssertionError(f"{doc}: `{command}`: {exc}") from None
        checked.append(command)
    assert any(c.startswith("surefoot flags set pause_outbound_sms on") for c in checked)
    assert any(c.startswith("surefoot observability generate --out deploy/") for c in checked)


@pytest.mark.parametrize("command", [["flags", "list"], ["slo", "migrate"]])
def test_a_missing_driver_names_the_extra_for_flags_and_slo(subprocess_env, command):
    code = ("import sys; sys.modules['psycopg'] = None; from surefoot.cli import main; "
            f"sys.argv = ['surefoot', *{command!r}, '--url', 'postgresql://u@127.0.0.1/db']; main()")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                         timeout=60)
    line = _one_line(out)
    assert "pip install 'surefoot[postgres]'" in line and "psycopg" in line
