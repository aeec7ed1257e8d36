"""``rejection-fhir sync``: one run of the sync, or the settling of its uncertain writes.

The run itself is :func:`rejection_fhir.sync.run.sync`; this adds what the command needs
around it: a server is required, the one-line tally people read, and the exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rejection_fhir.errors import ExitCode
    from rejection_fhir.settings import Settings
    from rejection_fhir.sync.reconcile import ReconcileReport
    from rejection_fhir.sync.run import SyncOptions, SyncReport
    from rejection_fhir.worksheet.catalog import Catalog


def require_server(settings: Settings) -> str:
    """The source server's base URL; ConfigError (the same code as publish and report: no
    server is a configuration problem) when none is configured."""
    if settings.server:
        return str(settings.server)
    from rejection_fhir.errors import ConfigError
    from rejection_fhir.settings import CONFIG_FILENAME

    raise ConfigError(
        "no FHIR server configured",
        hint=f'pass --source-server (or --server), set RFHIR_SERVER, or put server = "https://..." '
        f"in {CONFIG_FILENAME}",
    )


def sync(
    settings: Settings,
    options: SyncOptions,
    catalog: Catalog,
    *,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int | None], None] | None = None,
) -> SyncReport:
    """Fetch new responses from ``options.source``, validate and summarise them against
    the ``catalog`` (the built worksheets), and write what they give to the EHR, exactly
    once."""
    from rejection_fhir.sync.run import sync as run_sync

    require_server(settings)
    return run_sync(settings, options, catalog, progress=progress, on_total=on_total)


def reconcile(settings: Settings, *, state_path: str | None, wait: float) -> ReconcileReport:
    """Settle the writes recorded as uncertain by searching the EHR for their notes."""
    from rejection_fhir.sync.reconcile import reconcile as run_reconcile

    source = require_server(settings)
    return run_reconcile(
        settings, source, target_base=settings.target, state_path=state_path, wait=wait
    )


def tally_line(report: SyncReport) -> str:
    """The run in one line: what was fetched, written, left alone or refused."""
    t = report.tally
    verb = "would write" if report.dry_run else "written"
    return (
        f"{'dry run: ' if report.dry_run else ''}fetched {t.fetched}, {verb} {t.written} "
        f"({t.resources} resources), unchanged {t.unchanged}, rejected {t.rejected}, "
        f"failed {t.failed}, not ours {t.skipped}"
        + (f", uncertain {t.uncertain} (settle with sync --reconcile)" if t.uncertain else "")
        + (
            ", left out (the server does not take them): "
            + ", ".join(f"{n} {kind}" for kind, n in sorted(t.left_out.items()))
            if t.left_out
            else ""
        )
    )


def exit_code(report: SyncReport) -> ExitCode | None:
    """A refused write wins over a rejected response, which wins over an uncertain write;
    None when the run was clean."""
    from rejection_fhir.errors import ExitCode

    if report.failed:
        return ExitCode.SERVER_REFUSED
    if report.rejected:
        return ExitCode.FINDINGS
    if report.uncertain:
        return ExitCode.UNCERTAIN
    return None
