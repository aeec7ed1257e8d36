"""``rejection-fhir list`` (not ``list.py``: that would shadow the builtin in the package)."""

from __future__ import annotations

from pathlib import Path

import click

from rejection_fhir.cli.options import (
    BASE_URL_OPTION,
    format_option,
    source_or_default,
    worksheets_option,
)


@click.command("list")
@worksheets_option
@BASE_URL_OPTION
@format_option(["text", "json"], "json: machine-readable, one object per worksheet.")
@click.option("--json", "as_json", is_flag=True, help="Deprecated: use --format json.")
def list_cmd(source_dir: Path | None, base_url: str | None, fmt: str, as_json: bool) -> None:
    """List the worksheets: name, version, status, questions and title.

    \b
    Example:
      rejection-fhir list --format json
    """
    import json
    from dataclasses import asdict

    from rejection_fhir.commands.listing import list_worksheets

    if as_json:
        click.echo("warning: --json is deprecated and will be removed; use --format json", err=True)
        fmt = "json"
    infos = list_worksheets(source_or_default(source_dir), base_url=base_url)
    if fmt == "json":
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    width = max(len(i.name) for i in infos)
    for i in infos:
        click.echo(
            f"{i.name:<{width}}  {i.version:<7} {i.status:<7} {i.questions:>2} questions  {i.title}"
        )
