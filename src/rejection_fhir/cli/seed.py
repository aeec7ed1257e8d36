"""``rejection-fhir seed``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rejection_fhir.cli.options import (
    BASE_URL_OPTION,
    built_worksheets,
    server_options,
    settings_from,
    worksheets_option,
)


@click.command("seed")
@click.option(
    "--rounds",
    type=click.IntRange(1, 52),
    default=2,
    show_default=True,
    help="Responses to each Questionnaire, a week apart.",
)
@click.option(
    "--seed",
    "seed_value",
    type=int,
    default=2026,
    show_default=True,
    help="Random seed: the same seed gives the same answers.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a server that is not on this machine (test servers only).",
)
@worksheets_option
@BASE_URL_OPTION
@server_options
def seed_cmd(
    rounds: int,
    seed_value: int,
    allow_remote: bool,
    source_dir: Path | None,
    base_url: str | None,
    **server: Any,
) -> None:
    """Create a synthetic client with realistic responses on a local test server.

    \b
    Example:
      rejection-fhir seed --server http://127.0.0.1:8080/fhir --rounds 4
    """
    from rejection_fhir.commands.seed import seed

    questionnaires = built_worksheets(source_dir, base_url)
    seeded = seed(
        settings_from(**server),
        questionnaires,
        seed_value=seed_value,
        rounds=rounds,
        allow_remote=allow_remote,
    )
    click.echo(f"created {seeded.patient} with {len(seeded.responses)} responses")
