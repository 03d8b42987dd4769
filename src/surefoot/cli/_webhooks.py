"""``surefoot webhooks migrate | purge`` and ``surefoot idempotency migrate | purge``."""

from __future__ import annotations

import typer

from ._common import describe_age, friendly_errors, open_engine, parse_age, shown, url_option, yes_option

WEBHOOKS_MIGRATE = "surefoot webhooks migrate"
IDEMPOTENCY_MIGRATE = "surefoot idempotency migrate"


def register(app: typer.Typer) -> None:
    """Add the ``webhooks`` and ``idempotency`` command groups to ``app``."""
    webhooks = typer.Typer(no_args_is_help=True, help="Webhook inbox maintenance.")
    idempotency = typer.Typer(no_args_is_help=True, help="Idempotency-Key store maintenance.")

    @webhooks.command("migrate")
    @friendly_errors(WEBHOOKS_MIGRATE)
    def migrate_webhooks(url: str = url_option()) -> None:
        """Create the webhook inbox table (webhook_events); idempotent."""
        from ..webhooks import create_tables

        engine = open_engine(url, creates=True, migrate_hint=WEBHOOKS_MIGRATE)
        try:
            create_tables(engine)
        finally:
            engine.dispose()
        typer.echo(f"webhook tables ready on {shown(str(engine.url))}")

    @webhooks.command("purge")
    @friendly_errors(WEBHOOKS_MIGRATE)
    def purge_webhooks(
        url: str = url_option(),
        older_than: str = typer.Option("90d", "--older-than", help="Age with a unit: 12h, 30d, 2w."),
        batch_size: int = typer.Option(1000, min=1, help="Rows deleted per transaction."),
        yes: bool = yes_option(),
    ) -> None:
        """Delete inbox rows (webhook_events) older than the retention period, in batches."""
        from ..webhooks import purge_webhook_events

        age = parse_age(older_than)
        engine = open_engine(url, migrate_hint=WEBHOOKS_MIGRATE)
        try:
            if not yes:
                typer.confirm(
                    f"delete webhook deliveries received more than {describe_age(age)} ago "
                    f"from {shown(str(engine.url))}?", abort=True,
                )
            deleted = purge_webhook_events(engine, older_than=age, batch_size=batch_size)
        finally:
            engine.dispose()
        typer.echo(f"deleted {deleted} webhook event(s) older than {describe_age(age)}")

    @idempotency.command("migrate")
    @friendly_errors(IDEMPOTENCY_MIGRATE)
    def migrate_keys(url: str = url_option()) -> None:
        """Create the Idempotency-Key table (idempotency_keys); idempotent."""
        from ..idempotency import create_tables

        engine = open_engine(url, creates=True, migrate_hint=IDEMPOTENCY_MIGRATE)
        try:
            create_tables(engine)
        finally:
            engine.dispose()
        typer.echo(f"idempotency tables ready on {shown(str(engine.url))}")

    @idempotency.command("purge")
    @friendly_errors(IDEMPOTENCY_MIGRATE)
    def purge_keys(
        url: str = url_option(),
        batch_size: int = typer.Option(1000, min=1, help="Rows deleted per transaction."),
        yes: bool = yes_option(),
    ) -> None:
        """Delete expired Idempotency-Key records, in batches."""
        from ..idempotency import purge_expired_keys

        engine = open_engine(url, migrate_hint=IDEMPOTENCY_MIGRATE)
        try:
            if not yes:
                typer.confirm(f"delete expired idempotency keys from {shown(str(engine.url))}?", abort=True)
            deleted = purge_expired_keys(engine, batch_size=batch_size)
        finally:
            engine.dispose()
        typer.echo(f"deleted {deleted} expired idempotency key(s)")

    app.add_typer(webhooks, name="webhooks")
    app.add_typer(idempotency, name="idempotency")
