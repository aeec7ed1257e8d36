"""``rejection-fhir show``."""

from __future__ import annotations

from pathlib import Path

import click

from rejection_fhir.cli.options import (
    BASE_URL_OPTION,
    format_option,
    source_or_default,
    worksheets_option,
)


@click.command("show")
@click.argument("name")
@worksheets_option
@BASE_URL_OPTION
@format_option(["outline", "json"], "json: the built Questionnaire.")
@click.option("--json", "as_json", is_flag=True, help="Deprecated: use --format json.")
def show_cmd(
    name: str, source_dir: Path | None, base_url: str | None, fmt: str, as_json: bool
) -> None:
    """Show one worksheet as an outline (or as its Questionnaire JSON).

    NAME is a worksheet name (rejection-log) or its FHIR name (RejectionLog).

    \b
    Example:
      rejection-fhir show rejection-log --format json > RejectionLog.json
    """
    from rejection_fhir import jsonio
    from rejection_fhir.commands.show import outline, show_worksheet

    if as_json:
        click.echo("warning: --json is deprecated and will be removed; use --format json", err=True)
        fmt = "json"
    q = show_worksheet(source_or_default(source_dir), name, base_url=base_url)
    click.echo(jsonio.dumps(q).rstrip("\n") if fmt == "json" else outline(q))
