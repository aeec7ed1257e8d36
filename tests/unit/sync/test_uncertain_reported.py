"""Uncertain writes (ledger-only: a plain create whose answer was lost) are reported by every
sync run of their source until ``sync --reconcile`` settles them, counted once per run
(the in-memory server, tests/fakefhir.py, loses the answers)."""

from __future__ import annotations

import random

from rejection_fhir.commands.sync import exit_code, tally_line
from rejection_fhir.errors import ExitCode
from rejection_fhir.fhir.client import FhirClient, RetryPolicy
from rejection_fhir.sync.reconcile import reconcile_state
from rejection_fhir.sync.state import LedgerEntry, SyncState
from tests.fakefhir import BASE, request_to
from tests.unit.sync.test_run import _run

NOTE_POST = request_to("POST", "DocumentReference")


def _ledger_only(tmp_path, built, **kw):
    return _run(tmp_path, built, write_mode="ledger-only", **kw)


def _lose_the_first_note(tmp_path, built, qr_at, fake_fhir):
    """A run that loses the answer to response a's note (b's is answered)."""
    fake_fhir.add(qr_at("a", "2026-11-01T00:00:00Z"), qr_at("b", "2026-11-01T01:00:00Z"))
    fake_fhir.lose_answers(1, when=NOTE_POST)
    report = _ledger_only(tmp_path, built)
    fake_fhir.clear_faults()
    return report


def test_the_run_that_lost_the_answer_reports_it_once(tmp_path, built, qr_at, fake_fhir) -> None:
    report = _lose_the_first_note(tmp_path, built, qr_at, fake_fhir)
    assert report.tally.uncertain == 1 and len(report.uncertain) == 1, report.uncertain
    (problem,) = report.uncertain
    assert problem.response == "QuestionnaireResponse/a/_history/1"
    assert "answer was lost" in problem.message
    assert problem.message.endswith("settle with sync --reconcile")
    assert exit_code(report) is ExitCode.UNCERTAIN


def test_a_later_run_that_does_not_read_the_response_still_reports_it(
    tmp_path, built, qr_at, fake_fhir
) -> None:
    _lose_the_first_note(tmp_path, built, qr_at, fake_fhir)
    # The cursor moved past a (to b, read again at the boundary): a is not read.
    fake_fhir.add(qr_at("c", "2026-11-02T00:00:00Z"))
    notes_before = len(fake_fhir.all("DocumentReference"))
    report = _ledger_only(tmp_path, built)
    assert (report.tally.fetched, report.tally.unchanged, report.tally.written) == (2, 1, 1)
    assert [p.response for p in report.uncertain] == ["QuestionnaireResponse/a/_history/1"]
    assert report.tally.uncertain == 1
    assert "settle with sync --reconcile" in report.uncertain[0].message
    assert "uncertain 1 (settle with sync --reconcile)" in tally_line(report)
    assert exit_code(report) is ExitCode.UNCERTAIN
    assert len(fake_fhir.all("DocumentReference")) == notes_before + 1, (
        "only c's note, a not resent"
    )


def test_a_run_that_reads_it_again_counts_it_once_and_does_not_resend(
    tmp_path, built, qr_at, fake_fhir
) -> None:
    _lose_the_first_note(tmp_path, built, qr_at, fake_fhir)
    posts = len(fake_fhir.writes("POST"))
    report = _ledger_only(tmp_path, built, since="2026-10-01T00:00:00Z")  # reads a and b again
    assert report.tally.fetched == 2
    assert report.tally.uncertain == 1 and len(report.uncertain) == 1
    assert report.tally.unchanged == 1  # b, written; a is uncertain, not "unchanged"
    assert len(fake_fhir.writes("POST")) == posts, "nothing sent again"


def test_after_reconcile_later_runs_report_none(tmp_path, built, qr_at, fake_fhir) -> None:
    _lose_the_first_note(tmp_path, built, qr_at, fake_fhir)
    client = FhirClient(
        BASE, sleep=lambda s: None, rng=random.Random(1), retry=RetryPolicy(retries=0)
    )
    with SyncState(tmp_path / "state.sqlite3") as state:
        settled = reconcile_state(state, client, client, BASE)
    assert len(settled.found) == 1 and not settled.still_uncertain  # the note had landed
    report = _ledger_only(tmp_path, built)
    assert report.ok and report.tally.uncertain == 0 and report.uncertain == []
    assert exit_code(report) is None


def test_absent_after_reconcile_is_written_by_the_next_run_and_then_quiet(
    tmp_path, built, qr_at, fake_fhir
) -> None:
    fake_fhir.add(qr_at("a", "2026-11-01T00:00:00Z"))
    with SyncState(tmp_path / "state.sqlite3") as state:
        # A run killed while a's creates were in flight, none of which landed.
        state.record(
            [
                LedgerEntry(
                    BASE, "a", "1", "uncertain", "q", [], [{"code": "in-flight", "message": "m"}]
                )
            ],
            cursor=(BASE, "2026-11-01T00:00:01Z"),
        )
    first = _ledger_only(tmp_path, built)
    assert first.tally.fetched == 0 and first.tally.uncertain == 1, "reported though not read"
    assert first.uncertain[0].message == "m; settle with sync --reconcile"
    client = FhirClient(
        BASE, sleep=lambda s: None, rng=random.Random(1), retry=RetryPolicy(retries=0)
    )
    with SyncState(tmp_path / "state.sqlite3") as state:
        settled = reconcile_state(state, client, client, BASE)
    assert len(settled.absent) == 1
    # The cursor is past a: --since reads it again, and the run writes what was absent.
    again = _ledger_only(tmp_path, built, since="2026-10-01T00:00:00Z")
    assert again.ok and again.tally.written == 1 and again.tally.uncertain == 0
    assert _ledger_only(tmp_path, built).tally.uncertain == 0


def test_only_the_runs_own_source_is_reported(tmp_path, built, qr_at, fake_fhir) -> None:
    with SyncState(tmp_path / "state.sqlite3") as state:
        state.record(
            [LedgerEntry("https://other.example/fhir", "z", "1", "uncertain", "q", [], [])]
        )
    fake_fhir.add(qr_at("a", "2026-11-01T00:00:00Z"))
    report = _ledger_only(tmp_path, built)
    assert report.ok and report.tally.uncertain == 0
