"""``surefoot observability generate | lint`` and ``surefoot slo migrate | openslo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._common import friendly_errors, open_engine, url_option

__all__ = ["register"]

SLO_MIGRATE = "surefoot slo migrate"

observability_app = typer.Typer(no_args_is_help=True, help="Generate Prometheus rules, alerts and Grafana dashboards.")
slo_app = typer.Typer(no_args_is_help=True, help="Service level objectives: tables and OpenSLO export.")

OBJECTIVES_HELP = (
    "Where the objectives are: a module (every objective it defines), module:NAME (an objective or "
    "a list), or an OpenSLO YAML file. Repeat for several."
)


def _objectives(specs: list[str]) -> list:  # type: ignore[type-arg]
    from ..errors import ConfigurationError
    from ..slo import collect_objectives

    if not specs:
        raise typer.BadParameter("give at least one --objectives module[:NAME] or OpenSLO file")
    found: dict[str, Any] = {}
    for spec in specs:
        try:
            for objective in collect_objectives(spec):
                seen = found.setdefault(objective.name, objective)
                if seen != objective:
                    raise ConfigurationError(
                        f"two different objectives are named {objective.name!r} ({spec!r} and an earlier -o)"
                    )
        except ConfigurationError as exc:
            raise typer.BadParameter(str(exc), param_hint="--objectives") from exc
    return list(found.values())


@observability_app.command()
@friendly_errors(SLO_MIGRATE)
def generate(
    out: Path = typer.Option(..., "--out", help="Directory to write into (e.g. deploy/)."),  # noqa: B008
    objectives: list[str] = typer.Option([], "--objectives", "-o", help=OBJECTIVES_HELP),  # noqa: B008
    target: list[str] = typer.Option(["localhost:8000"], "--target", help="host:port Prometheus scrapes (repeat)."),  # noqa: B008
    scrape_interval: float = typer.Option(15.0, "--scrape-interval", help="Scrape interval, seconds."),
    scale: float = typer.Option(1.0, "--scale", help="Multiply every window (tests: 0.0166 turns hours into minutes)."),
    runbook_url: str = typer.Option("docs/runbook.md", "--runbook-url", help="Base of runbook_url annotations."),
    metrics_username: str = typer.Option("metrics", "--metrics-username",
                                         help="Basic-auth user of /metrics; empty for none."),
    force: bool = typer.Option(False, "--force", help="Write even when the alert-physics lint reports errors."),
) -> None:
    """Write recording + burn-rate alert rules, operational alerts, promtool tests, a scrape config,
    an Alertmanager example, Grafana dashboards and provisioning, and the OpenSLO form."""
    from ..slo._generate import LintError
    from ..slo._generate import generate as run

    objs = _objectives(objectives)
    try:
        result = run(objs, out, targets=target, scrape_interval=scrape_interval, scale=scale,
                     runbook_url=runbook_url, metrics_username=metrics_username or None, force=force)
    except LintError as exc:
        for finding in exc.findings:
            typer.echo(str(finding), err=True)
        typer.echo("nothing written: fix the errors above or pass --force", err=True)
        raise typer.Exit(1) from None
    for finding in result.findings:
        typer.echo(str(finding), err=True)
    for name in sorted(result.files):
        typer.echo(str(out / name))


@observability_app.command()
@friendly_errors(SLO_MIGRATE)
def lint(
    objectives: list[str] = typer.Option([], "--objectives", "-o", help=OBJECTIVES_HELP),  # noqa: B008
    scrape_interval: float = typer.Option(15.0, "--scrape-interval", help="Scrape interval, seconds."),
) -> None:
    """Check alert physics: impossible tiers, windows shorter than four scrapes, too little traffic."""
    from ..slo import lint as run

    findings = run(_objectives(objectives), scrape_interval=scrape_interval)
    for finding in findings:
        typer.echo(str(finding))
    if not findings:
        typer.echo("no findings")
    if any(f.level == "error" for f in findings):
        raise typer.Exit(1)


@slo_app.command()
@friendly_errors(SLO_MIGRATE)
def migrate(url: str = url_option()) -> None:
    """Create surefoot_slo_pairs and surefoot_slo_counts (idempotent)."""
    from ..slo import migrate as run

    engine = open_engine(url, creates=True, migrate_hint=SLO_MIGRATE)
    try:
        run(engine)
    finally:
        engine.dispose()
    typer.echo("surefoot_slo_pairs and surefoot_slo_counts are ready")


@slo_app.command()
@friendly_errors(SLO_MIGRATE)
def openslo(objectives: list[str] = typer.Option([], "--objectives", "-o", help=OBJECTIVES_HELP)) -> None:  # noqa: B008
    """Print the objectives as OpenSLO v1 YAML."""
    from ..slo import to_openslo

    typer.echo(to_openslo(_objectives(objectives)), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(observability_app, name="observability")
    app.add_typer(slo_app, name="slo")
