"""The ``surefoot`` command line: ``demo``, ``outbox ...`` and friends."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="surefoot: production-grade ASGI services.")


def _version() -> str:
    from .. import __version__

    return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"surefoot {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """surefoot: production-grade ASGI services."""
    # A callback keeps `surefoot demo` a subcommand even while it is the only command.


def _register() -> None:
    from . import _demo  # noqa: F401  (registers `surefoot demo`)

    for module_name in ("_outbox", "_webhooks", "_observability", "_flags"):
        try:
            module = __import__(f"surefoot.cli.{module_name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"surefoot.cli.{module_name}":
                raise
            continue
        module.register(app)


def main() -> None:
    """Entry point of the ``surefoot`` console script."""
    _register()
    app()
