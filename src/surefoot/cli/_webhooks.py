"""``surefoot webhooks purge`` and ``surefoot idempotency purge``: retention from the command line."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``webhooks`` and ``idempotency`` command groups to ``app``."""
    webhooks = typer.Typer(no_args_is_help=True, help="Webhook inbox maintenance.")
    idempotency = typer.Typer(no_args_is_help=True, help="Idempotency-Key store maintenance.")

    @webhooks.command("purge")
    def purge_webhooks(
        database_url: str = typer.Option(None, envvar="SUREFOOT_DATABASE_URL", help="SQLAlchemy URL (default: settings)."),
        days: float = typer.Option(90.0, min=0.001, help="Delete deliveries received more than this many days ago."),
        batch_size: int = typer.Option(1000, min=1, help="Rows deleted per transaction."),
    ) -> None:
        """Delete inbox rows (webhook_events) older than the retention period, in batches."""
        import datetime as dt

        import sqlalchemy as sa

        from .._config import get_settings
        from ..webhooks import purge_webhook_events

        engine = sa.create_engine(database_url or get_settings().database_url)
        try:
            deleted = purge_webhook_events(engine, older_than=dt.timedelta(days=days), batch_size=batch_size)
        finally:
            engine.dispose()
        typer.echo(f"deleted {deleted} webhook event(s) older than {days:g} day(s)")

    @idempotency.command("purge")
    def purge_keys(
        database_url: str = typer.Option(None, envvar="SUREFOOT_DATABASE_URL", help="SQLAlchemy URL (default: settings)."),
        batch_size: int = typer.Option(1000, min=1, help="Rows deleted per transaction."),
    ) -> None:
        """Delete expired Idempotency-Key records, in batches."""
        import sqlalchemy as sa

        from .._config import get_settings
        from ..idempotency import purge_expired_keys

        engine = sa.create_engine(database_url or get_settings().database_url)
        try:
            deleted = purge_expired_keys(engine, batch_size=batch_size)
        finally:
            engine.dispose()
        typer.echo(f"deleted {deleted} expired idempotency key(s)")

    app.add_typer(webhooks, name="webhooks")
    app.add_typer(idempotency, name="idempotency")
