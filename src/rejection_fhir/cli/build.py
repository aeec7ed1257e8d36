"""``rejection-fhir build``."""

from __future__ import annotations

from pathlib import Path

import click

from rejection_fhir.cli.options import BASE_URL_OPTION, source_or_default, status, worksheets_option


@click.command("build")
@worksheets_option
@BASE_URL_OPTION
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Folder for the built JSON.",
)
@click.option(
    "--package",
    "with_package",
    is_flag=True,
    help="Also write a FHIR NPM package: OUT/NAME-VERSION.tgz and OUT/package/ "
    "(name and version from _project.yaml's package block).",
)
def build_cmd(
    source_dir: Path | None, base_url: str | None, out_dir: Path, with_package: bool
) -> None:
    """Build every worksheet into FHIR R4 JSON and one transaction Bundle.

    Writes nothing unless every source is valid; the output is byte-identical on a rerun.
    Status goes to stderr; exit 3 if a source is invalid, 14 if --out cannot be written.

    With --package, also the FHIR NPM package that HAPI, Firely and the IG Publisher load.

    \b
    Example:
      rejection-fhir build --worksheets questionnaires --out out
    """
    from rejection_fhir.commands.build import build
    from rejection_fhir.findings import format_text

    output = build(
        source_or_default(source_dir), out_dir, base_url=base_url, with_package=with_package
    )
    if output.findings:
        click.echo(format_text(output.findings), err=True)
    r = output.result
    status(  # stderr: stdout stays for data
        f"built {len(r.questionnaires)} Questionnaires, 1 CodeSystem, {len(r.valuesets)} ValueSets "
        f"and bundle.json into {out_dir}"
        + (
            f", and the FHIR package {output.package} (unpacked in package/)"
            if output.package
            else ""
        )
    )
