"""``surefoot outbox migrate | run | status | tail | requeue | purge``."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import signal
import time
from typing import Any

import typer

from ._common import (
    describe_age,
    fail,
    friendly_errors,
    open_engine,
    parse_age,
    resolve_url,
    url_option,
    yes_option,
)

__all__ = ["register"]

outbox_app = typer.Typer(no_args_is_help=True, help="Operate the transactional outbox.")

MIGRATE = "surefoot outbox migrate"


def _url(url: str | None) -> str:
    return resolve_url(url)


def _engine(url: str | None, *, creates: bool = False) -> Any:
    return open_engine(url, creates=creates, migrate_hint=MIGRATE)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _console() -> Any:
    from rich.console import Console

    return Console()


def _progress(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


@outbox_app.command()
@friendly_errors(MIGRATE)
def migrate(
    url: str = url_option(),
    notify_trigger: bool = typer.Option(
        False, "--notify-trigger/--no-notify-trigger",
        help="PostgreSQL: NOTIFY on every insert, for writers that bypass outbox.add().",
    ),
) -> None:
    """Create the outbox tables, indexes and wake-up trigger (idempotent)."""
    from ..outbox._schema import create_tables

    engine = _engine(url, creates=True)
    try:
        create_tables(engine, notify_trigger=notify_trigger)
    finally:
        engine.dispose()
    typer.echo(f"outbox tables ready on {engine.url.render_as_string(hide_password=True)}")


@outbox_app.command()
@friendly_errors(MIGRATE)
def run(
    url: str = url_option(),
    imports: list[str] = typer.Option(  # noqa: B008
        [], "--import", "-i",
        help="Module that registers handlers (@outbox.handler) or defines `router`; repeatable.",
    ),
    batch_size: int = typer.Option(None, help="Events per claim (SUREFOOT_OUTBOX_BATCH_SIZE)."),
    concurrency: int = typer.Option(None, help="Batches in flight (SUREFOOT_OUTBOX_CONCURRENCY)."),
    pause: list[str] = typer.Option([], "--pause", help="Event name pattern not to dispatch; repeatable."),  # noqa: B008
) -> None:
    """Run a dispatcher until SIGTERM or Ctrl-C (in-flight batches finish or are released)."""
    _engine(url).dispose()  # a missing database is an error here, not a new empty file
    from ..outbox._dispatcher import Dispatcher
    from ..outbox._routing import Router, default_router

    router: Router = default_router
    for name in imports:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if getattr(exc, "name", None) and name.startswith(str(exc.name)):
                raise fail(f"cannot import {name!r} (--import): {exc}; check the module path and "
                           "that the current directory or PYTHONPATH contains it") from None
            raise
        candidate = getattr(module, "router", None)
        if isinstance(candidate, Router):
            router = candidate
    if not router.patterns:
        typer.echo(
            "no handlers or sinks are registered: pass --import your.module that registers them",
            err=True,
        )
        raise typer.Exit(2)
    dispatcher = Dispatcher(
        _url(url), router=router, batch_size=batch_size, concurrency=concurrency,
        paused=list(pause) or None,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, dispatcher.request_stop)
        await dispatcher.run()

    asyncio.run(main())
    typer.echo(f"stopped; delivered {dispatcher.delivered} events")


@outbox_app.command()
@friendly_errors(MIGRATE)
def status(
    url: str = url_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Pending events, lag, in-flight claims and dead letters, per event name."""
    from rich.table import Table

    from ..outbox._store import paused_patterns, pending_by_name, stats

    engine = _engine(url)
    try:
        with engine.connect() as conn:
            s = stats(conn)
            per_name = pending_by_name(conn)
            paused = paused_patterns(conn)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({
            "pending": s.pending, "lag_seconds": round(s.lag_seconds, 3), "in_flight": s.in_flight,
            "dead_letters": s.dead_letters,
            "paused": [{"pattern": p, "reason": r} for p, r in paused],
            "by_event_name": [
                {"event_name": n, "pending": p, "max_attempts": a, "lag_seconds": round(lag, 3)}
                for n, p, a, lag in per_name
            ],
        }))
        return
    console = _console()
    console.print(
        f"pending [bold]{s.pending}[/]  lag [bold]{s.lag_seconds:.1f} s[/]  "
        f"in flight [bold]{s.in_flight}[/]  dead letters [bold]{s.dead_letters}[/]"
    )
    for pattern, reason in paused:
        console.print(f"[bold red]paused[/] {pattern}" + (f" ({reason})" if reason else ""))
    if per_name:
        table = Table("event_name", "pending", "max attempts", "lag (s)")
        for n, p, a, lag in per_name:
            table.add_row(n, str(p), str(a), f"{lag:.1f}")
        console.print(table)


@outbox_app.command()
@friendly_errors(MIGRATE)
def tail(
    url: str = url_option(),
    lines: int = typer.Option(20, "-n", "--lines", help="How many recent rows to show."),
    dead: bool = typer.Option(False, "--dead", help="Show dead letters instead of events."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new rows."),
    interval: float = typer.Option(1.0, help="Seconds between polls with --follow."),
) -> None:
    """Show the most recent events (or dead letters); ``-f`` to follow."""
    from ..outbox._store import tail as tail_rows

    engine = _engine(url)
    console = _console()
    last = 0
    try:
        while True:
            with engine.connect() as conn:
                rows = tail_rows(conn, limit=lines if last == 0 else 1000, dead=dead, after_id=last)
            for row in rows:
                last = max(last, int(row["id"]))
                console.print(_format_row(row, dead), highlight=False)
            if not follow:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how `tail -f` ends
    finally:
        engine.dispose()


def _format_row(row: dict[str, Any], dead: bool) -> str:
    if dead:
        state = f"[red]dead[/] attempts={row['attempts']} error={(row['last_error'] or '')[:80]!r}"
    elif row["dispatched_at"] is not None:
        state = "[green]dispatched[/]"
    elif row["attempts"]:
        state = f"[yellow]retrying[/] attempts={row['attempts']} error={(row['last_error'] or '')[:80]!r}"
    else:
        state = "pending"
    key = f" key={row['key']}" if row.get("key") else ""
    return f"{row['id']:>8} {row['event_name']} {row['event_id']}{key} {state}"


@outbox_app.command()
@friendly_errors(MIGRATE)
def requeue(
    ids: list[str] = typer.Argument(None, help="Dead-letter ids or event ids (UUIDs)."),  # noqa: B008
    url: str = url_option(),
    dead: bool = typer.Option(False, "--dead", help="Requeue every dead letter (see --event-name)."),
    event_name: str = typer.Option(None, "--event-name", help="With --dead: only this name pattern."),
) -> None:
    """Send dead letters back to the outbox (or make retrying events due now).

    Every given id must be found (a dead letter, or an event not yet dispatched): otherwise
    nothing is changed and the command fails naming the unknown ids.
    """
    import sqlalchemy as sa

    from ..outbox import _store

    if not ids and not dead:
        raise fail("give dead-letter ids / event ids, or --dead for all dead letters", 2)
    wanted = list(dict.fromkeys(ids or []))  # each id once, in the order given
    numeric = [int(i) for i in wanted if i.isdigit()]
    uuids = [i for i in wanted if not i.isdigit()]
    engine = _engine(url)
    console = _console()
    total = 0
    try:
        if wanted:
            with engine.begin() as conn:
                found: set[str] = set()
                if numeric:
                    rows = conn.execute(
                        sa.text("SELECT id, event_id FROM outbox_dead_letters WHERE id IN :ids").bindparams(
                            sa.bindparam("ids", expanding=True)), {"ids": numeric},
                    ).all()
                    found |= {str(r[0]) for r in rows}
                    # An event named twice (its dead-letter id and its UUID) is requeued once.
                    covered = {r[1] for r in rows}
                    found |= {u for u in uuids if u in covered}
                    uuids = [u for u in uuids if u not in covered]
                    total += _store.requeue_dead(conn, ids=numeric, limit=len(numeric), now=_now())
                if uuids:
                    dead_events = set(conn.execute(
                        sa.text("SELECT event_id FROM outbox_dead_letters WHERE event_id IN :ids").bindparams(
                            sa.bindparam("ids", expanding=True)), {"ids": uuids},
                    ).scalars().all())
                    pending = set(conn.execute(
                        sa.text("SELECT event_id FROM outbox_events WHERE dispatched_at IS NULL "
                                "AND event_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
                        {"ids": [u for u in uuids if u not in dead_events]},
                    ).scalars().all()) if len(dead_events) < len(uuids) else set()
                    found |= {str(u) for u in dead_events | pending}
                    if dead_events:
                        total += _store.requeue_dead(conn, event_ids=sorted(dead_events),
                                                     limit=len(dead_events), now=_now())
                    if pending:
                        total += _store.retry_now(conn, event_ids=sorted(pending), now=_now())
                missing = [i for i in wanted if i not in found]
                if missing:  # raised inside the transaction: it rolls back
                    raise fail(
                        f"not found (neither a dead letter nor an event waiting for delivery): "
                        f"{', '.join(missing)}; nothing was requeued"
                    )
        if dead:  # after the ids: what they requeued is no dead letter any more, counted once
            with engine.connect() as conn:
                todo = _store.count_dead(conn)
            with _progress(console) as progress:
                task = progress.add_task("requeue dead letters", total=todo)
                while True:
                    with engine.begin() as conn:
                        n = _store.requeue_dead(conn, event_name=event_name, limit=500, now=_now())
                    total += n
                    progress.advance(task, n)
                    if n == 0:
                        break
    finally:
        engine.dispose()
    typer.echo(f"requeued {total} events")


@outbox_app.command()
@friendly_errors(MIGRATE)
def purge(
    url: str = url_option(),
    older_than: str = typer.Option(
        None, "--older-than", help="Age with a unit: 12h, 30d, 2w (default: SUREFOOT_OUTBOX_RETENTION_DAYS, 30d).",
    ),
    dead: bool = typer.Option(False, "--dead", help="Purge dead letters instead of dispatched events."),
    batch_size: int = typer.Option(1000, min=1, help="Rows per short transaction."),
    yes: bool = yes_option(),
) -> None:
    """Delete dispatched events (or dead letters) older than the retention, in small batches."""
    from .._core.settings import section
    from ..outbox import _store
    from ..outbox._retention import apply_retention
    from ..outbox._settings import OutboxSettings

    if older_than is not None:
        age = parse_age(older_than)
    else:
        age = dt.timedelta(days=section(OutboxSettings).retention_days)
    shown_age = describe_age(age)
    before = _now() - age
    engine = _engine(url)
    console = _console()
    total = 0
    try:
        with engine.connect() as conn:
            todo = _store.count_dead(conn, before) if dead else _store.count_dispatched_before(conn, before)
        what = "dead letters" if dead else "dispatched events"
        if todo == 0:
            typer.echo(f"no {what} older than {shown_age}")
            return
        if not yes:
            typer.confirm(f"delete {todo} {what} older than {shown_age}?", abort=True)
        delete_batch = _store.delete_dead_batch if dead else _store.delete_dispatched_batch
        with _progress(console) as progress:
            task = progress.add_task(f"purge {what}", total=todo)

            async def run(batch: Any, **options: Any) -> int:
                # one short transaction per batch, as the dispatcher's retention does
                with engine.begin() as conn:
                    n: int = batch(conn, **options)
                progress.advance(task, n)
                return n

            total = asyncio.run(apply_retention(run, delete_batch, before=before, batch_size=batch_size))
    finally:
        engine.dispose()
    typer.echo(f"deleted {total} {what}")


@outbox_app.command("pause")
@friendly_errors(MIGRATE)
def pause_cmd(
    pattern: str = typer.Argument(..., help="Event name or `*` pattern, e.g. SendSms or 'sms.*'."),
    url: str = url_option(),
    reason: str = typer.Option(None, "--reason", help="Why (shown by `status`)."),
) -> None:
    """Kill switch: stop every dispatcher delivering events matching PATTERN (within seconds)."""
    from ..outbox import _store

    engine = _engine(url)
    try:
        with engine.begin() as conn:
            added = _store.pause(conn, pattern, reason=reason)
    finally:
        engine.dispose()
    typer.echo(f"paused {pattern}" if added else f"{pattern} was already paused")


@outbox_app.command("resume")
@friendly_errors(MIGRATE)
def resume_cmd(
    pattern: str = typer.Argument(None, help="The paused pattern to resume."),
    url: str = url_option(),
    all_: bool = typer.Option(False, "--all", help="Resume every paused pattern."),
) -> None:
    """Undo `pause`: dispatchers deliver PATTERN again."""
    from ..outbox import _store

    if pattern is None and not all_:
        typer.echo("give a pattern, or --all", err=True)
        raise typer.Exit(2)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            n = _store.resume(conn, None if all_ else pattern)
    finally:
        engine.dispose()
    typer.echo(f"resumed {n} pattern(s)")
    if n == 0:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach ``surefoot outbox ...`` to the main command line."""
    app.add_typer(outbox_app, name="outbox")
