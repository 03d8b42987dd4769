"""``surefoot demo``: run the missed-call reference service (or ``--tour``: the tour app)."""

from __future__ import annotations

import typer

from . import app


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port to listen on."),
    rate: float = typer.Option(0.5, help="Simulated missed calls per second.", min=0.01, max=100),
    tour: bool = typer.Option(False, "--tour", help="Run the small tour of surefoot's request path instead."),
    drain_seconds: float | None = typer.Option(
        None,
        help="--tour only: after SIGTERM, report not-ready for this long before shutting down "
        "(default: SUREFOOT_HEALTH_DRAIN_SECONDS, else 0).",
    ),
) -> None:
    """Start the demo: the missed-call service, its worker, a Twilio fake and simulated calls
    (embedded SQLite, nothing else needed). Ctrl-C stops everything."""
    if tour:
        from ..demo import run

        run(host=host, port=port, drain_seconds=drain_seconds)
        return
    from ..demo import run_missed_call
    from ..errors import ConfigurationError

    try:
        run_missed_call(host=host, port=port, rate=rate)
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except RuntimeError as exc:  # a process of the stack stopped: its own output says why
        typer.echo(f"error: the demo stopped: {exc}", err=True)
        raise typer.Exit(1) from None
