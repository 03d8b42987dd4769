"""``surefoot demo``: run the demo service."""

from __future__ import annotations

import typer

from . import app


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port to listen on."),
    drain_seconds: float | None = typer.Option(
        None,
        help="After SIGTERM, report not-ready for this long before shutting down "
        "(default: SUREFOOT_HEALTH_DRAIN_SECONDS, else 0).",
    ),
) -> None:
    """Start the demo service (embedded SQLite, nothing else needed)."""
    from ..demo import run

    run(host=host, port=port, drain_seconds=drain_seconds)
