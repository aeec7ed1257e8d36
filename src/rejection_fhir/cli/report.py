"""``rejection-fhir report``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rejection_fhir.cli.options import (
    BASE_URL_OPTION,
    built_catalog,
    file_option,
    server_options,
    settings_from,
    worksheets_option,
)


@click.command("report")
@click.option(
    "--patient", required=True, help="The client's Patient id in the EHR (or Patient/<id>)."
)
@file_option(
    "--out",
    default=Path("report.html"),
    show_default=True,
    help="The HTML report (one self-contained file).",
)
@file_option(
    "--pdf",
    help="Also print an A4 PDF (needs Chromium and pip install 'rejection-fhir[browser]').",
)
@file_option("--png", help="Also save a full-page PNG (needs Chromium).")
@worksheets_option
@BASE_URL_OPTION
@server_options
def report_cmd(
    patient: str,
    out: Path,
    pdf: Path | None,
    png: Path | None,
    source_dir: Path | None,
    base_url: str | None,
    **server: Any,
) -> None:
    """Write a clinician's progress report for one client: safety flags, PHQ-9/GAD-7 and
    worksheet trends as charts, and the worksheet summaries, newest first.

    Reads only what `sync` wrote to the EHR (--server); writes only the files named.
    --pdf/--png need Chromium and Playwright (pip install 'rejection-fhir[browser]').

    \b
    Example:
      rejection-fhir report --patient 123 --server https://ehr.example/fhir --out report.html
    """
    from rejection_fhir.commands.report import write_report

    # The worksheets as built (--base-url) title and scale their charts.
    catalog = built_catalog(source_dir, base_url)
    written = write_report(settings_from(**server), patient, catalog, out=out, pdf=pdf, png=png)
    r = written.report
    flags = len(r.safety_flags)
    click.echo(
        f"wrote {out}: {flags} active safety flag{'s' if flags != 1 else ''}, "
        f"{len(r.charts)} chart(s), {len(r.worksheets)} worksheet note(s)"
        + "".join(f", {path}" for path in (pdf, png) if path is not None)
    )
    # What this EHR would not let be read, said where the person who ran it looks too.
    for line in r.not_read:
        click.echo(f"not read from this EHR: {line}", err=True)
