"""``rejection-fhir show``."""

from __future__ import annotations

from pathlib import Path

import click

from rejection_fhir.cli.options import BASE_URL_OPTION, source_option, source_or_default


@click.command("show")
@click.argument("name")
@source_option
@BASE_URL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the built Questionnaire JSON.")
def show_cmd(name: str, source_dir: Path | None, base_url: str | None, as_json: bool) -> None:
    """Show one worksheet as an outline (or as its Questionnaire JSON)."""
    from rejection_fhir import jsonio
    from rejection_fhir.commands.catalog import outline, show_worksheet

    q = show_worksheet(source_or_default(source_dir), name, base_url=base_url)
    click.echo(jsonio.dumps(q).rstrip("\n") if as_json else outline(q))
