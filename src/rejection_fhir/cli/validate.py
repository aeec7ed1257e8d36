"""``rejection-fhir validate``: what pre-commit hooks run on every commit.

An unchanged worksheet is answered from the result cache; on that path this module
imports only ``rejection_fhir.worksheet.validate_cache`` (and ``rejection_fhir.findings``
when there is something to print), not even pathlib: keep it so.
"""

from __future__ import annotations

import sys

import click

from rejection_fhir.cli.options import BASE_URL_OPTION, format_option


@click.command("validate")
# Strings, not Paths: a cached answer needs no pathlib.
@click.argument("paths", nargs=-1, type=click.Path())
@BASE_URL_OPTION
@format_option(
    ["text", "json", "github", "junit"],
    "github prints workflow annotations; junit a JUnit XML test report.",
)
@click.option("--strict", is_flag=True, help="Warnings fail too.")
@click.option(
    "--against",
    "against",
    metavar="REF",
    envvar="RFHIR_AGAINST",
    default=None,
    help="Version guard: compare with a git ref, a folder of built JSON or a server URL, and "
    "require the version bump each change needs. Env: RFHIR_AGAINST.",
)
def validate_cmd(
    paths: tuple[str, ...], base_url: str | None, fmt: str, strict: bool, against: str | None
) -> None:
    """Check worksheet folders, YAML sources or built Questionnaire JSON.

    Exit 0 when clean, 1 when there are findings, 11 when only the version guard failed,
    2 for a usage error (a path that does not exist, too).  Without PATH: ./questionnaires,
    else the bundled worksheets (said on stderr).

    \b
    Example:
      rejection-fhir validate questionnaires --against origin/main --format github
    """
    from rejection_fhir.cli.options import announce_default_source, detail, status
    from rejection_fhir.worksheet import validate_cache

    if paths:
        for path in paths:
            detail(f"validating {path}")
    else:
        announce_default_source()
    # The version guard depends on git or a server, not only on files: never cached.
    cache_key = (
        validate_cache.key(paths, base_url) if not against and validate_cache.enabled() else None
    )
    cached = validate_cache.load(cache_key) if cache_key else None
    if cached is not None:
        detail("unchanged since the last run: answered from the result cache")
        findings = cached
    else:
        from pathlib import Path

        from rejection_fhir.commands.validate import validate

        findings = validate([Path(p) for p in paths], base_url=base_url, against=against or None)
        if cache_key:
            validate_cache.store(cache_key, findings)
    failing = [f for f in findings if f.severity == "error" or (strict and f.severity == "warning")]
    if findings or fmt in {"json", "junit"}:
        from rejection_fhir.findings import FORMATTERS

        click.echo(FORMATTERS[fmt](findings))
    if fmt == "text":
        errors = sum(f.severity == "error" for f in findings)
        status(
            f"{errors} error(s), {len(findings) - errors} other finding(s)"
            if findings
            else "all worksheets valid"
        )
    if not failing:
        return
    from rejection_fhir.errors import ExitCode

    if against:
        from rejection_fhir.commands.validate import only_the_guard_failed

        only_guard = only_the_guard_failed(failing)
        sys.exit(ExitCode.VERSION_GUARD if only_guard else ExitCode.FINDINGS)
    sys.exit(ExitCode.FINDINGS)
