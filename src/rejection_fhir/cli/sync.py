"""``rejection-fhir sync``."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click

from rejection_fhir.cli.options import (
    BASE_URL_OPTION,
    built_catalog,
    deprecated_alias,
    server_options,
    settings_from,
    takes_deprecated_alias,
    worksheet_folder_option,
)

#: What ``_lastUpdated`` takes: a FHIR date, or an instant (seconds and a zone required).
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))?")


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A FHIR instant or date, else a usage error (exit 2) naming the option."""
    if value is None:
        return None
    from datetime import datetime

    text = value.strip()
    flag = param.opts[0] if param.opts else str(param.name)
    try:
        if not _INSTANT.fullmatch(text):
            raise ValueError(text)
        datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a FHIR instant or date; give e.g. {flag} 2026-11-01T00:00:00Z "
            f"or {flag} 2026-11-01",
            ctx=ctx,
            param=param,
        ) from None
    return text


def _after(since: str | None, until: str | None) -> None:
    from rejection_fhir.sync.run import instant

    if since and until and instant(until) <= instant(since):
        raise click.BadParameter(
            f"the window [{since}, {until}) is empty; --until must come after --since",
            param_hint="'--until'",
        )


@click.command("sync")
@click.option(
    "--source-server",
    "source_server",
    default=None,
    callback=takes_deprecated_alias,
    help="FHIR server holding the responses (default: --server / RFHIR_SERVER). "
    "(formerly --source, deprecated)",
)
@deprecated_alias("--source", "--source-server", "source_server")
@click.option(
    "--target",
    default=None,
    help="EHR FHIR server to write to (default: the source server). Env: RFHIR_TARGET.",
)
@click.option(
    "--since",
    default=None,
    callback=_instant,
    help="Start from this _lastUpdated instant (e.g. 2026-11-01T00:00:00Z) instead of the "
    "saved cursor; with --until, the window's start.",
)
@click.option(
    "--until",
    default=None,
    callback=_instant,
    help="End of a time window (exclusive): sync [--since, --until) with the window's own "
    "cursor over the source's shared ledger; the run ends when the window is done.",
)
@click.option(
    "--dry-run", is_flag=True, help="Validate and summarise; write nothing, move no cursor."
)
@click.option(
    "--state",
    "state_path",
    default=None,
    help="SQLite state file, or postgresql://user@host/db for shards on several hosts "
    "(password from PGPASSFILE) (default: .state/sync.sqlite3). Env: RFHIR_STATE.",
)
@click.option(
    "--lease-ttl",
    type=click.FloatRange(min=1.0),
    default=None,
    help="PostgreSQL state: seconds a run's lease lasts between recorded batches "
    "(default 300); a run that dies frees its shard after that.",
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
    help="Read the responses from a Bulk Data $export of the source (backfills): system "
    "level, Patient/$export, or Group/ID/$export with --patients-group, as it offers.",
)
@click.option(
    "--wait",
    type=float,
    default=0.0,
    help="Seconds to wait for another running sync before giving up.",
)
@click.option(
    "--write-mode",
    type=click.Choice(
        ["auto", "transaction", "batch", "conditional", "search-then-create", "put", "ledger-only"]
    ),
    default=None,
    help="How to write to the EHR (default auto: what its CapabilityStatement allows). "
    "Env: RFHIR_WRITE_MODE; config: write_mode.",
)
@click.option(
    "--read-mode",
    type=click.Choice(["auto", "_lastUpdated", "authored", "per-patient"]),
    default="auto",
    show_default=True,
    help="How to find responses (auto: what the source's statement allows; see "
    "docs/read-modes.md). --bulk reads a $export instead.",
)
@click.option(
    "--patients",
    "patients_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Per-patient polling: a file of Patient ids (one per line) whose responses to read.",
)
@click.option(
    "--patients-group",
    default=None,
    help="The id of a Group of the clinic's patients: their responses are read per patient, "
    "or exported with Group/ID/$export (--bulk, or auto where the server exports only per "
    "Group; docs/read-modes.md).",
)
@click.option(
    "--patients-from",
    type=click.Choice(["ledger"]),
    default=None,
    help="Per-patient polling: also the patients whose responses were synced before (the "
    "ledger's; see docs/ehr-modes.md).",
)
@click.option(
    "--reconcile",
    is_flag=True,
    help="Settle writes recorded as uncertain (ledger-only mode) by searching the EHR for "
    "their notes; write nothing else.",
)
@click.option("--show", "show_summaries", is_flag=True, help="Print each summary written (text).")
@click.option(
    "--safety-task",
    is_flag=True,
    help="With each safety Flag, also create an urgent Task for the clinician.",
)
@worksheet_folder_option("--worksheets")
@BASE_URL_OPTION
@server_options
def sync_cmd(
    source_server: str | None,
    target: str | None,
    since: str | None,
    until: str | None,
    dry_run: bool,
    state_path: str | None,
    lease_ttl: float | None,
    batch_size: int,
    concurrency: int,
    bulk: bool,
    wait: float,
    write_mode: str | None,
    read_mode: str,
    patients_file: Path | None,
    patients_group: str | None,
    patients_from: str | None,
    reconcile: bool,
    show_summaries: bool,
    safety_task: bool,
    source_dir: Path | None,
    base_url: str | None,
    **server: Any,
) -> None:
    """Fetch new QuestionnaireResponses, validate and summarise them, write notes,
    Observations and Provenance to the EHR, exactly once.

    Exits 1 if any response was rejected, 5 if the server refused a write, 4 if no
    server is configured or responses cannot be read as asked (e.g. a server that exports
    only per Group and no --patients-group; docs/read-modes.md).

    \b
    Example:
      rejection-fhir sync --server https://forms.example/fhir --target https://ehr.example/fhir --dry-run
    """
    from rejection_fhir.commands import sync as command
    from rejection_fhir.response.render import render_text
    from rejection_fhir.sync.run import SyncOptions

    _after(since, until)
    settings = settings_from(
        server=source_server or server.pop("server"),
        target=target,
        state_path=state_path,
        write_mode=write_mode,
        **{k: v for k, v in server.items() if k != "server"},
    )
    command.require_server(settings)
    if reconcile:
        _reconcile(settings, state_path, wait)
        return
    options = SyncOptions(
        source=settings.server,
        target=settings.target,
        since=since,
        until=until,
        lease_ttl=lease_ttl,
        dry_run=dry_run,
        batch_size=batch_size,
        concurrency=concurrency,
        bulk=bulk,
        wait=wait,
        keep_summaries=show_summaries,
        safety_task=safety_task,
        read_mode=read_mode,
        patients_file=patients_file,
        patients_group=patients_group,
        patients_from=patients_from,
    )
    catalog = built_catalog(source_dir, base_url)
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
        report = command.sync(settings, options, catalog, progress=progress, on_total=on_total)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    for ref, summary in report.summaries:
        click.echo(f"--- {ref}")
        click.echo(render_text(summary))
    for problem in report.rejected:
        click.echo(f"rejected {problem.response}: {problem.message}", err=True)
    for problem in report.failed:
        click.echo(f"failed   {problem.response}: {problem.message}", err=True)
    for problem in report.uncertain:
        click.echo(f"uncertain {problem.response}: {problem.message}", err=True)
    click.echo(command.tally_line(report))
    code = command.exit_code(report)
    if code is not None:
        sys.exit(code)


def _reconcile(settings: Any, state_path: str | None, wait: float) -> None:
    from rejection_fhir.commands.sync import reconcile
    from rejection_fhir.errors import ExitCode

    report = reconcile(settings, state_path=state_path, wait=wait)
    for where in report.found:
        click.echo(f"found    {where}: its note is on the server; recorded as written")
    for where in report.absent:
        click.echo(f"absent   {where}: no note on the server; the next sync writes it")
    for where, why in report.still_uncertain:
        click.echo(f"uncertain {where}: cannot tell yet ({why})", err=True)
    click.echo(
        f"reconciled: found {len(report.found)}, absent {len(report.absent)}, "
        f"still uncertain {len(report.still_uncertain)}"
    )
    if report.still_uncertain:
        sys.exit(ExitCode.UNCERTAIN)
