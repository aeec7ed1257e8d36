"""On epic-like (ledger-only: plain creates, no way to search for our identifier), a note
whose answer was lost is *uncertain*, and every later ``sync`` run reports it (exit 13), not
only the run that lost it, until ``sync --reconcile`` settles it; then the runs are quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from rejection_fhir.commands.sync import exit_code
from rejection_fhir.errors import ExitCode
from rejection_fhir.sync.reconcile import reconcile
from rejection_fhir.sync.run import SyncOptions, SyncReport, sync
from rejection_fhir.worksheet.catalog import catalog_from_build
from tests.faults.proxy import FaultPlan, FaultProxy, Rule
from tests.faults.scenario import proxied
from tests.integration.test_profiles_e2e import World, make_world, notes

pytestmark = pytest.mark.integration


def _run(world: World, proxy: FaultProxy, state: Path, *, since: str | None) -> SyncReport:
    options = SyncOptions(source=proxy.base_url, state_path=state, batch_size=2, since=since)
    return sync(proxied(proxy, timeout=5.0), options, catalog_from_build(world.built))


def test_epic_like_uncertain_write_is_reported_by_every_run_until_reconciled(
    fhir_server: str, tmp_path: Path
) -> None:
    world = make_world(f"{fhir_server}/epic-like", tmp_path, test_access=True)
    state = tmp_path / "state.sqlite3"
    try:
        lost = FaultPlan([Rule("drop", "POST", "DocumentReference", nth=(1,))])
        with FaultProxy(world.base, lost) as proxy:
            first = _run(world, proxy, state, since=world.since)
            assert first.tally.uncertain == 1 and exit_code(first) is ExitCode.UNCERTAIN
            (problem,) = first.uncertain
            proxy.rearm()
            # Incremental runs from the cursor: the lost one is not read again (or is, at
            # the cursor's boundary); it is said every time, once, and never sent again.
            for _ in range(2):
                later = _run(world, proxy, state, since=None)
                assert later.tally.written == 0 and later.tally.uncertain == 1
                assert [p.response for p in later.uncertain] == [problem.response]
                assert "settle with sync --reconcile" in later.uncertain[0].message
                assert exit_code(later) is ExitCode.UNCERTAIN
            settled = reconcile(proxied(proxy, timeout=5.0), proxy.base_url, state_path=str(state))
            # epic-like has no identifier search: the note is found by the patient's notes.
            assert not settled.still_uncertain and len(settled.found) + len(settled.absent) == 1
            quiet = _run(world, proxy, state, since=world.since)
            assert quiet.ok and quiet.tally.uncertain == 0 and exit_code(quiet) is None
            assert quiet.tally.written == len(settled.absent)
        found = notes(world)
        assert all(n == 1 for n in found.values()) and len(found) == len(world.qrs), found
    finally:
        world.close()
