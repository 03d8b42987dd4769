"""``surefoot flags list | set | clear | history``: runtime flags from the command line."""

from __future__ import annotations

import getpass
import json

import typer

from ._common import friendly_errors

# the flag tables are created by `flags set` / `flags clear` (and flags.configure)
_HINT = "surefoot flags set NAME on|off"
_URL_HELP = "SQLAlchemy URL of the service's database (default: SUREFOOT_DATABASE_URL, then settings)."


def _connect(url: str | None, *, writes: bool = False) -> None:
    """Connect the flag store to the service's database.

    Reading commands (``list``, ``history``) never create a database: a SQLite URL whose
    file does not exist is refused. ``set`` and ``clear`` create the flag tables (and a
    SQLite file) like :func:`surefoot.flags.configure`.
    """
    from ._common import _sqlite_file, fail, open_engine, resolve_url

    target = resolve_url(url)
    sqlite_file = _sqlite_file(target)
    if sqlite_file is not None and not writes and not sqlite_file.exists():
        raise fail(f"no database at {sqlite_file}: check --url (flags live in the service's own database)")
    engine = open_engine(target, creates=True)
    from ..flags import configure

    configure(engine, refresh_interval=0)


def _check_name(name: str) -> None:
    from ..flags._flag import _NAME

    if not _NAME.match(name or ""):
        typer.echo(f"error: {name!r} is not a flag name: use lower case, [a-z][a-z0-9_]*, "
                   "at most 63 characters (e.g. pause_outbound_sms)", err=True)
        raise typer.Exit(2)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in some containers
        return "cli"


def register(app: typer.Typer) -> None:
    """Add the ``flags`` command group to ``app``."""
    flags_app = typer.Typer(no_args_is_help=True, help="Runtime flags and kill switches shared by every process.")

    @flags_app.command("list")
    @friendly_errors(_HINT)
    def list_flags(
        url: str = typer.Option(None, "--url", "--database-url", envvar="SUREFOOT_DATABASE_URL", help=_URL_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Show every runtime override stored in the database."""
        _connect(url)
        from ..flags import _store

        rows = _store._require_store().load()
        if as_json:
            typer.echo(json.dumps(rows, indent=2, sort_keys=True))
            return
        if not rows:
            typer.echo("no runtime overrides: every flag has its default (environment or code)")
            return
        for name, row in sorted(rows.items()):
            state = "on" if row["enabled"] else "off"
            typer.echo(f"{name:32} {state:4} by {row['updated_by']} at {row['updated_at']}"
                       + (f"  ({row['reason']})" if row["reason"] else ""))

    @flags_app.command("set")
    @friendly_errors(_HINT)
    def set_flag(
        name: str = typer.Argument(..., help="The flag, e.g. pause_outbound_sms."),
        value: str = typer.Argument(..., help="on or off (also true/false, 1/0, yes/no)."),
        url: str = typer.Option(None, "--url", "--database-url", envvar="SUREFOOT_DATABASE_URL", help=_URL_HELP),
        reason: str = typer.Option("", "--reason", "-r", help="Why (logged and shown on status pages)."),
        actor: str = typer.Option(None, "--actor", help="Who flips it (default: cli:<user>)."),
    ) -> None:
        """Set a flag for every process of the service (seen within their refresh interval)."""
        from ..errors import ConfigurationError, NotFoundError
        from ..flags import parse_bool
        from ..flags import set as set_value

        try:
            enabled = parse_bool(value, what="value")
        except ConfigurationError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        _check_name(name)
        _connect(url, writes=True)
        try:
            result = set_value(name, enabled, actor=_actor(actor), reason=reason, source="cli")
        except (ConfigurationError, NotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        previous = {None: "default", True: "on", False: "off"}[result["previous"]]
        typer.echo(f"{name}: {previous} -> {'on' if enabled else 'off'}")

    @flags_app.command("clear")
    @friendly_errors(_HINT)
    def clear_flag(
        name: str = typer.Argument(..., help="The flag."),
        url: str = typer.Option(None, "--url", "--database-url", envvar="SUREFOOT_DATABASE_URL", help=_URL_HELP),
        reason: str = typer.Option("", "--reason", "-r", help="Why."),
        actor: str = typer.Option(None, "--actor", help="Who (default: cli:<user>)."),
    ) -> None:
        """Remove a runtime override: every process returns to its default."""
        from ..errors import ConfigurationError, NotFoundError
        from ..flags import clear

        _check_name(name)
        _connect(url, writes=True)
        try:
            result = clear(name, actor=_actor(actor), reason=reason, source="cli")
        except (ConfigurationError, NotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        previous = {None: "no override", True: "on", False: "off"}[result["previous"]]
        typer.echo(f"{name}: {previous} -> default")

    @flags_app.command("history")
    @friendly_errors(_HINT)
    def history(
        name: str = typer.Argument(None, help="Only this flag."),
        url: str = typer.Option(None, "--url", "--database-url", envvar="SUREFOOT_DATABASE_URL", help=_URL_HELP),
        limit: int = typer.Option(20, "-n", min=1, max=1000, help="How many flips."),
    ) -> None:
        """The latest flips, newest first (from feature_flag_changes)."""
        from ..flags import history as load_history

        _connect(url)
        for row in load_history(name, limit):
            state = {None: "cleared", True: "on", False: "off"}[row["enabled"]]
            typer.echo(f"{row['changed_at']}  {row['name']:32} {state:7} by {row['changed_by']}"
                       + (f"  ({row['reason']})" if row["reason"] else ""))

    app.add_typer(flags_app, name="flags")
