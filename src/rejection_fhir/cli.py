"""The ``rejection-fhir`` command line: thin click shims over ``rejection_fhir.commands``.

Start-up time matters (authors run ``validate`` in pre-commit hooks), so command modules,
jsonschema, fhir.resources and requests are imported inside the commands, never here.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from rejection_fhir import __version__
from rejection_fhir.errors import ExitCode, RejectionFhirError

SOURCE_OPTION = click.option(
    "--source",
    "source_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RFHIR_SOURCE",
    default=None,
    help="Folder of worksheet sources (default: ./questionnaires, else the bundled worksheets). Env: RFHIR_SOURCE.",
)
BASE_URL_OPTION = click.option(
    "--base-url",
    envvar="RFHIR_BASE_URL",
    default=None,
    help="Canonical base for url of built resources (default: canonicalBase in _project.yaml). Env: RFHIR_BASE_URL.",
)


def server_options(f: Any) -> Any:
    """Connection flags shared by every command that talks to a FHIR server.

    Secrets are deliberately absent: they come from RFHIR_TOKEN(_FILE) and friends, or
    from --token-file, never from a flag's value (shell history, ``ps``).
    """
    options = [
        click.option("--server", default=None, help="FHIR base URL. Env: RFHIR_SERVER."),
        click.option(
            "--config",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Config file (default: rejection-fhir.toml). Env: RFHIR_CONFIG.",
        ),
        click.option(
            "--token-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="File holding a bearer token. Env: RFHIR_TOKEN_FILE.",
        ),
        click.option(
            "--ca-bundle",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="PEM bundle of private CAs. Env: RFHIR_CA_BUNDLE.",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            default=None,
            help="Allow plain http:// to a host that is not loopback.",
        ),
        click.option(
            "--timeout",
            type=float,
            default=None,
            help="Read timeout in seconds. Env: RFHIR_TIMEOUT.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _settings(**flags: Any) -> Any:
    from rejection_fhir.settings import load_settings

    overrides = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items() if v is not None
    }
    return load_settings(overrides)


def _source(source_dir: Path | None) -> Path:
    from rejection_fhir.worksheet.project import default_source_dir

    return source_dir if source_dir is not None else default_source_dir()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rejection-fhir")
@click.option(
    "-v", "--verbose", count=True, help="More detail on stderr (never tokens or clients' answers)."
)
def cli(verbose: int) -> None:
    """Coping-with-rejection worksheets as FHIR R4 Questionnaires: author, build, validate, publish, sync."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@cli.command("build")
@SOURCE_OPTION
@BASE_URL_OPTION
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Folder for the built JSON.",
)
def build_cmd(source_dir: Path | None, base_url: str | None, out_dir: Path) -> None:
    """Build every worksheet into FHIR R4 JSON and one transaction Bundle.

    Writes nothing unless every source is valid; the output is byte-identical on a rerun.
    """
    from rejection_fhir.commands.build import build
    from rejection_fhir.findings import format_text

    output = build(_source(source_dir), out_dir, base_url=base_url)
    if output.findings:
        click.echo(format_text(output.findings), err=True)
    r = output.result
    click.echo(
        f"built {len(r.questionnaires)} Questionnaires, 1 CodeSystem, {len(r.valuesets)} ValueSets "
        f"and bundle.json into {out_dir}"
    )


@cli.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@BASE_URL_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github prints workflow annotations.",
)
@click.option("--strict", is_flag=True, help="Warnings fail too.")
def validate_cmd(paths: tuple[Path, ...], base_url: str | None, fmt: str, strict: bool) -> None:
    """Check worksheet folders, YAML sources or built Questionnaire JSON.

    Exit 0 when clean, 1 when there are findings, 2 for a usage error.
    """
    from rejection_fhir.commands.validate import validate
    from rejection_fhir.findings import FORMATTERS

    findings = validate(list(paths), base_url=base_url)
    failing = [f for f in findings if f.severity == "error" or (strict and f.severity == "warning")]
    if findings or fmt == "json":
        click.echo(FORMATTERS[fmt](findings))
    if fmt == "text":
        errors = sum(f.severity == "error" for f in findings)
        click.echo(
            f"{errors} error(s), {len(findings) - errors} other finding(s)"
            if findings
            else "all worksheets valid",
            err=True,
        )
    if failing:
        sys.exit(ExitCode.FINDINGS)


@cli.command("list")
@SOURCE_OPTION
@BASE_URL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(source_dir: Path | None, base_url: str | None, as_json: bool) -> None:
    """List the worksheets: name, version, status, questions and title."""
    from dataclasses import asdict

    from rejection_fhir.commands.catalog import list_worksheets

    infos = list_worksheets(_source(source_dir), base_url=base_url)
    if as_json:
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    width = max(len(i.name) for i in infos)
    for i in infos:
        click.echo(
            f"{i.name:<{width}}  {i.version:<7} {i.status:<7} {i.questions:>2} questions  {i.title}"
        )


@cli.command("show")
@click.argument("name")
@SOURCE_OPTION
@BASE_URL_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the built Questionnaire JSON.")
def show_cmd(name: str, source_dir: Path | None, base_url: str | None, as_json: bool) -> None:
    """Show one worksheet as an outline (or as its Questionnaire JSON)."""
    from rejection_fhir import jsonio
    from rejection_fhir.commands.catalog import outline, show_worksheet

    q = show_worksheet(_source(source_dir), name, base_url=base_url)
    click.echo(jsonio.dumps(q).rstrip("\n") if as_json else outline(q))


@cli.command("publish")
@SOURCE_OPTION
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
    """
    from rejection_fhir.commands.publish import publish

    report = publish(
        _source(source_dir),
        _settings(**server),
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


def _fail(error: RejectionFhirError) -> NoReturn:
    click.echo(f"error: {error}", err=True)
    sys.exit(int(error.exit_code))


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="rejection-fhir", standalone_mode=False)
    except RejectionFhirError as error:
        _fail(error)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(ExitCode.USAGE if error.exit_code == 2 else error.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
