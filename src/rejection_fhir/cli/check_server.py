"""``rejection-fhir check-server``."""

from __future__ import annotations

import sys
from typing import Any

import click

from rejection_fhir.cli.options import format_option, server_options, settings_from


@click.command("check-server")
@format_option(
    ["text", "json"], help="text for a ticket, json for tools (schemas/check-server.schema.json)."
)
@server_options
def check_server_cmd(fmt: str, **server: Any) -> None:
    """Say what a FHIR server can do for this tool, and how publish and sync will work with it.

    Reads the CapabilityStatement and SMART configuration and probes the searches and
    headers the tool relies on, with requests that write nothing.  Exits 0 when sync can do
    its job on this server, 12 when it cannot (no way to find responses or write the note).

    \b
    Example:
      rejection-fhir check-server --server https://ehr.example/fhir/r4 --format json
    """
    from rejection_fhir.commands.check_server import check_server, report_json, report_text
    from rejection_fhir.errors import ExitCode

    report = check_server(settings_from(**server))
    if fmt == "json":
        import json

        click.echo(json.dumps(report_json(report), indent=2))
    else:
        click.echo(report_text(report), nl=False)
    if not report.ok:
        sys.exit(int(ExitCode.SERVER_CANNOT))
