"""The ``rejection-fhir`` command line: thin click shims over ``rejection_fhir.commands``.

Start-up time matters (authors run ``validate`` in pre-commit hooks), so command modules,
jsonschema, fhir.resources and requests are imported inside the commands, never here.
"""

from __future__ import annotations

import json
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
    if not verbose:
        return  # warnings still reach stderr through logging's last-resort handler
    import logging  # only when asked for: start-up time matters (see the module docstring)

    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # urllib3 logs whole URLs, query values included, at DEBUG: they can name a client.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


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
    type=click.Choice(["text", "json", "github", "junit"]),
    default="text",
    show_default=True,
    help="github prints workflow annotations; junit a JUnit XML test report.",
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
    paths: tuple[Path, ...], base_url: str | None, fmt: str, strict: bool, against: str | None
) -> None:
    """Check worksheet folders, YAML sources or built Questionnaire JSON.

    Exit 0 when clean, 1 when there are findings, 11 when only the version guard failed,
    2 for a usage error.
    """
    from rejection_fhir import validate_cache
    from rejection_fhir.findings import FORMATTERS

    # The version guard depends on git or a server, not only on files: never cached.
    cache_key = (
        validate_cache.key(list(paths), base_url)
        if not against and validate_cache.enabled()
        else None
    )
    cached = validate_cache.load(cache_key) if cache_key else None
    if cached is not None:
        findings = cached
    else:
        from rejection_fhir.commands.validate import validate

        findings = validate(list(paths), base_url=base_url, against=against or None)
        if cache_key:
            validate_cache.store(cache_key, findings)
    failing = [f for f in findings if f.severity == "error" or (strict and f.severity == "warning")]
    if findings or fmt in {"json", "junit"}:
        click.echo(FORMATTERS[fmt](findings))
    if fmt == "text":
        errors = sum(f.severity == "error" for f in findings)
        click.echo(
            f"{errors} error(s), {len(findings) - errors} other finding(s)"
            if findings
            else "all worksheets valid",
            err=True,
        )
    if failing and against:
        from rejection_fhir.commands.guard import GUARD_RULES

        only_guard = all(f.rule in GUARD_RULES for f in failing)
        sys.exit(ExitCode.VERSION_GUARD if only_guard else ExitCode.FINDINGS)
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


def _worksheets(source_dir: Path | None, base_url: str | None) -> list[dict[str, Any]]:
    """The built Questionnaires, with their worksheet summarizers registered."""
    from rejection_fhir.commands.build import build_all
    from rejection_fhir.response.worksheets import register_worksheets

    result, _ = build_all(_source(source_dir), base_url=base_url)
    register_worksheets(result.questionnaires)
    return result.questionnaires


@cli.command("summarize")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json", "xhtml"]),
    default="text",
    show_default=True,
)
@click.option(
    "--questionnaire",
    "questionnaire_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Questionnaire JSON (or a Bundle) for responses to other forms. Repeatable.",
)
@click.option(
    "--fetch-questionnaires", is_flag=True, help="Fetch unknown Questionnaires from --server."
)
@SOURCE_OPTION
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
    """
    from rejection_fhir.commands.summarize import load_questionnaire_files, summarize_files
    from rejection_fhir.errors import InputError
    from rejection_fhir.response.questionnaire import QuestionnaireIndex

    index = QuestionnaireIndex(
        [*_worksheets(source_dir, base_url), *load_questionnaire_files(list(questionnaire_files))]
    )
    fetch = None
    if fetch_questionnaires:
        from rejection_fhir import settings as settings_module
        from rejection_fhir.response.questionnaire import split_canonical

        client = settings_module.make_client(_settings(**server))

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
        index,
        lambda text: out.write(text.rstrip("\n") + "\n" + separator),
        fmt=fmt,
        fetch=fetch,
    )
    for problem in report.problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"summarised {report.summarised} response(s)", err=True)
    if any("not valid JSON" in p or "expected a FHIR resource" in p for p in report.problems):
        raise InputError("some input could not be read; see the warnings above")


@cli.command("sync")
@click.option(
    "--source",
    "source_server",
    default=None,
    help="FHIR server holding the responses (default: --server / RFHIR_SERVER).",
)
@click.option(
    "--target",
    default=None,
    help="EHR FHIR server to write to (default: the source). Env: RFHIR_TARGET.",
)
@click.option(
    "--since",
    default=None,
    help="Start from this _lastUpdated instant instead of the saved cursor.",
)
@click.option(
    "--dry-run", is_flag=True, help="Validate and summarise; write nothing, move no cursor."
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite state file (default: .state/sync.sqlite3). Env: RFHIR_STATE.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 500),
    default=50,
    show_default=True,
    help="Responses per page and per transaction.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 8),
    default=2,
    show_default=True,
    help="Transactions in flight at once; pages are still recorded in order.",
)
@click.option(
    "--bulk",
    is_flag=True,
    help="Read the responses from a Bulk Data $export of the source (backfills).",
)
@click.option(
    "--wait",
    type=float,
    default=0.0,
    help="Seconds to wait for another running sync before giving up.",
)
@click.option("--show", "show_summaries", is_flag=True, help="Print each summary written (text).")
@click.option(
    "--safety-task",
    is_flag=True,
    help="With each safety Flag, also create an urgent Task for the clinician.",
)
@click.option(
    "--worksheets",
    "source_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RFHIR_SOURCE",
    default=None,
    help="Folder of worksheet sources (default: ./questionnaires).",
)
@BASE_URL_OPTION
@server_options
def sync_cmd(
    source_server: str | None,
    target: str | None,
    since: str | None,
    dry_run: bool,
    state_path: Path | None,
    batch_size: int,
    concurrency: int,
    bulk: bool,
    wait: float,
    show_summaries: bool,
    safety_task: bool,
    source_dir: Path | None,
    base_url: str | None,
    **server: Any,
) -> None:
    """Fetch new QuestionnaireResponses, validate and summarise them, write notes,
    Observations and Provenance to the EHR, exactly once.

    Exits 1 if any response was rejected, 5 if the server refused a write.
    """
    from rejection_fhir.response.render import render_text
    from rejection_fhir.sync.run import SyncOptions, sync

    settings = _settings(
        server=source_server or server.pop("server"),
        target=target,
        state_path=str(state_path) if state_path else None,
        **{k: v for k, v in server.items() if k != "server"},
    )
    if not settings.server:
        raise click.UsageError("give --source (or --server, or RFHIR_SERVER)")
    options = SyncOptions(
        source=settings.server,
        target=settings.target,
        state_path=Path(settings.state_path)
        if settings.state_path
        else Path(".state/sync.sqlite3"),
        since=since,
        dry_run=dry_run,
        batch_size=batch_size,
        concurrency=concurrency,
        bulk=bulk,
        wait=wait,
        keep_summaries=show_summaries,
        safety_task=safety_task,
    )
    questionnaires = _worksheets(source_dir, base_url)
    bar: Any = None
    progress = None
    on_total = None
    if sys.stderr.isatty():

        def on_total(total: int | None) -> None:
            nonlocal bar
            bar = click.progressbar(length=total or 0, label="syncing", file=sys.stderr)
            bar.__enter__()

        def progress(n: int) -> None:
            if bar is not None:
                bar.update(n)

    try:
        report = sync(settings, options, questionnaires, progress=progress, on_total=on_total)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for ref, summary in report.summaries:
        click.echo(f"--- {ref}")
        click.echo(render_text(summary))
    for problem in report.rejected:
        click.echo(f"rejected {problem.response}: {problem.message}", err=True)
    for problem in report.failed:
        click.echo(f"failed   {problem.response}: {problem.message}", err=True)
    t = report.tally
    verb = "would write" if dry_run else "written"
    click.echo(
        f"{'dry run: ' if dry_run else ''}fetched {t.fetched}, {verb} {t.written} ({t.resources} resources), "
        f"unchanged {t.unchanged}, rejected {t.rejected}, failed {t.failed}, not ours {t.skipped}"
    )
    if report.failed:
        sys.exit(ExitCode.SERVER_REFUSED)
    if report.rejected:
        sys.exit(ExitCode.FINDINGS)


@cli.command("seed")
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
@SOURCE_OPTION
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
    """Create a synthetic client with realistic responses on a local test server."""
    from rejection_fhir.commands.seed import seed

    questionnaires = _worksheets(source_dir, base_url)
    seeded = seed(
        _settings(**server),
        questionnaires,
        seed_value=seed_value,
        rounds=rounds,
        allow_remote=allow_remote,
    )
    click.echo(f"created {seeded.patient} with {len(seeded.responses)} responses")


@cli.command("preview")
@click.argument("name", required=False)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@SOURCE_OPTION
@BASE_URL_OPTION
def preview_cmd(
    name: str | None, port: int, open_browser: bool, source_dir: Path | None, base_url: str | None
) -> None:
    """Serve the worksheets on 127.0.0.1, rendered by LHC-Forms from local files (offline)."""
    from rejection_fhir.commands.build import build_all
    from rejection_fhir.preview import run_preview

    result, _ = build_all(_source(source_dir), base_url=base_url)
    run_preview(result.questionnaires, name, port, open_browser=open_browser)


@cli.command("report")
@click.option(
    "--patient", required=True, help="The client's Patient id in the EHR (or Patient/<id>)."
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML report (one self-contained file).",
)
@click.option(
    "--pdf",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also print an A4 PDF (needs Chromium: scripts/install-browser).",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also save a full-page PNG (needs Chromium).",
)
@server_options
def report_cmd(patient: str, out: Path, pdf: Path | None, png: Path | None, **server: Any) -> None:
    """Write a clinician's progress report for one client: safety flags, PHQ-9/GAD-7 and
    worksheet trends as charts, and the worksheet summaries, newest first.

    Reads only what `sync` wrote to the EHR (--server); writes only the files named.
    """
    from rejection_fhir.commands.report import write_report

    written = write_report(_settings(**server), patient, out=out, pdf=pdf, png=png)
    r = written.report
    flags = len(r.safety_flags)
    click.echo(
        f"wrote {out}: {flags} active safety flag{'s' if flags != 1 else ''}, "
        f"{len(r.charts)} chart(s), {len(r.worksheets)} worksheet note(s)"
        + "".join(f", {path}" for path in (pdf, png) if path is not None)
    )


@cli.command("smart-keygen")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for smart-key.pem (mode 0600) and jwks.json.",
)
@click.option(
    "--alg",
    type=click.Choice(["RS384", "ES384"]),
    default="RS384",
    show_default=True,
    help="RS384 (RSA-3072) or ES384 (EC P-384).",
)
def smart_keygen_cmd(out_dir: Path, alg: str) -> None:
    """Make a key pair for SMART Backend Services: keep smart-key.pem, register jwks.json.

    Point RFHIR_SMART_PRIVATE_KEY_FILE at the PEM; give the authorization server the JWKS.
    """
    import os

    from rejection_fhir.errors import UsageError
    from rejection_fhir.fhir.smart import generate_key_pair

    pair = generate_key_pair(alg)
    key_path, jwks_path = out_dir / "smart-key.pem", out_dir / "jwks.json"
    if key_path.exists():
        raise UsageError(f"{key_path} exists; refusing to overwrite a private key")
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pair.private_pem)
    jwks_path.write_text(json.dumps(pair.jwks, indent=2) + "\n", encoding="utf-8")
    click.echo(f"wrote {key_path} (private, mode 0600) and {jwks_path} (public)")
    click.echo(f"key id (kid): {pair.kid}, algorithm {pair.algorithm}")


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
    except RecursionError:
        # json and YAML parsers recurse per nesting level; a hostile file can exhaust the stack.
        from rejection_fhir.errors import InputError

        _fail(
            InputError(
                "an input is nested too deeply to read (thousands of levels); no FHIR "
                "resource or worksheet nests like that",
                hint="check that the file is the one you meant; it may be damaged or hostile",
            )
        )
    except MemoryError:
        from rejection_fhir.errors import InputError

        _fail(InputError("ran out of memory reading the input; it is too large to process"))
    except Exception as error:
        _internal(error)


def _internal(error: Exception) -> NoReturn:
    """Our bug: say where, never what (exception text can quote a client's answers)."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "rejection_fhir" in f.filename] or frames
    where = ""
    if ours:
        last = ours[-1]
        where = f" at {Path(last.filename).name}:{last.lineno} in {last.name}"
    click.echo(
        f"error: internal error (please report): {type(error).__name__}{where}\n"
        "  hint: this is a bug in rejection-fhir, not in your input or server; report it "
        "with the command you ran (leave out clients' data)",
        err=True,
    )
    sys.exit(int(ExitCode.INTERNAL))
