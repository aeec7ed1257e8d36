"""``rejection-fhir publish``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rejection_fhir.cli.options import (
    BASE_URL_OPTION,
    server_options,
    settings_from,
    source_or_default,
    worksheets_option,
)


@click.command("publish")
@worksheets_option
@BASE_URL_OPTION
@server_options
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite different content at the same url|version.")
@click.option("--retire-old", is_flag=True, help="Mark older versions of each resource as retired.")
def publish_cmd(
    source_dir: Path | None,
    base_url: str | None,
    dry_run: bool,
    force: bool,
    retire_old: bool,
    **server: Any,
) -> None:
    """Publish the built Questionnaires, CodeSystem and ValueSets in one transaction.

    Each entry is conditional on url+version, so a rerun changes nothing.  Different
    content at a published url|version is refused: bump the version (or --force).

    \b
    Example:
      rejection-fhir publish --server https://ehr.example/fhir --dry-run
    """
    from rejection_fhir.commands.publish import publish

    report = publish(
        source_or_default(source_dir),
        settings_from(**server),
        base_url=base_url,
        dry_run=dry_run,
        force=force,
        retire_old=retire_old,
    )
    verbs = {
        "create": "would create" if dry_run else "created",
        "update": "would update" if dry_run else "updated",
        "retire": "would retire" if dry_run else "retired",
        "unchanged": "unchanged",
        "conflict": "conflict",
    }
    for published in report.results:
        step = published.step
        where = f"  {published.location}" if published.location else ""
        click.echo(f"{verbs[step.action]:<13} {step.resource_type:<13} {step.canonical}{where}")
    counts = ", ".join(f"{n} {verbs[a]}" for a, n in sorted(report.counts().items()))
    click.echo(f"{'dry run against' if dry_run else 'published to'} {report.server}: {counts}")
