"""``rejection-fhir summarize``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from rejection_fhir.cli.options import (
    BASE_URL_OPTION,
    built_catalog,
    file_option,
    format_option,
    server_options,
    settings_from,
    status,
    worksheets_option,
)


@click.command("summarize")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@format_option(["text", "markdown", "json", "xhtml"])
@file_option(
    "--questionnaire",
    "questionnaire_files",
    multiple=True,
    default=(),
    help="Questionnaire JSON (or a Bundle) for responses to other forms. Repeatable.",
)
@click.option(
    "--fetch-questionnaires", is_flag=True, help="Fetch unknown Questionnaires from --server."
)
@worksheets_option
@BASE_URL_OPTION
@server_options
def summarize_cmd(
    files: tuple[Path, ...],
    fmt: str,
    questionnaire_files: tuple[Path, ...],
    fetch_questionnaires: bool,
    source_dir: Path | None,
    base_url: str | None,
    **server: Any,
) -> None:
    """Summarise QuestionnaireResponses from JSON, NDJSON or Bundle files ('-' reads NDJSON from stdin).

    Works offline with the built worksheets and any --questionnaire files; summaries are
    written one by one as the file streams.  JSON output is one summary per line.
    '-' reads NDJSON from stdin, or one JSON document (a pretty-printed response or Bundle).

    \b
    Example:
      rejection-fhir summarize responses.ndjson --format markdown
    """
    from rejection_fhir.commands.summarize import (
        read_questionnaire_files,
        summarize_files,
        unused_files,
    )
    from rejection_fhir.errors import InputError

    given = read_questionnaire_files(list(questionnaire_files))
    catalog = built_catalog(source_dir, base_url).with_resources(given.resources)
    fetch = None
    if fetch_questionnaires:
        from rejection_fhir import settings as settings_module
        from rejection_fhir.response.questionnaire import split_canonical

        client = settings_module.make_client(settings_from(**server))

        def fetch(canonical: str) -> list[dict[str, Any]]:
            url, version = split_canonical(canonical)
            return list(
                client.search(
                    "Questionnaire", {"url": url, **({"version": version} if version else {})}
                )
            )

    out = sys.stdout
    separator = "" if fmt == "json" else "\n"
    report = summarize_files(
        list(files),
        catalog,
        lambda text: out.write(text.rstrip("\n") + "\n" + separator),
        fmt=fmt,
        fetch=fetch,
    )
    for problem in [*report.problems, *unused_files(given.by_file, report.used)]:
        click.echo(f"warning: {problem}", err=True)
    status(f"summarised {report.summarised} response(s)")
    if report.unreadable:
        raise InputError(
            f"{report.unreadable} part(s) of the input could not be read; see the warnings above"
        )
