"""The sync against the in-memory server (tests/fakefhir.py): exactly once, nothing dropped."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rejection_fhir.settings import DEFAULT_STATE_PATH, load_settings
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.sync.state import SyncState, window_shard
from rejection_fhir.worksheet.catalog import catalog_from_build
from tests.fakefhir import BASE, FakeFhir

RECORDED = "2026-11-26T12:00:00Z"


def _run(tmp_path, built, **kw):
    kw.setdefault("state_path", tmp_path / "state.sqlite3")
    settings = load_settings({"server": BASE}, env={})
    options = SyncOptions(source=BASE, **kw)
    return sync(settings, options, catalog_from_build(built), recorded=RECORDED)


def _bounds(fake: FakeFhir) -> list[list[str]]:
    """Each QuestionnaireResponse search's _lastUpdated bounds, in order."""
    return [p.get("_lastUpdated", []) for p in fake.searched("QuestionnaireResponse")]


def _written_note(tmp_path) -> str:
    """The reference of the note the ledger holds for version 1 of response "a"."""
    with SyncState(tmp_path / "state.sqlite3") as state:
        entry = state.seen(BASE, "a", "1")
        assert entry is not None
        return next(r for r in entry.resources if r.startswith("DocumentReference/"))


def _amend(fake: FakeFhir, qr_at: Callable[..., dict[str, Any]], updated: str) -> None:
    fake.add(qr_at("a", updated, version="2", status="amended"))


def test_first_sync_writes_then_rerun_writes_nothing(tmp_path, built, qr_at, fake_fhir):
    fake_fhir.add(qr_at("a", "2026-11-20T10:00:00Z"), qr_at("b", "2026-11-20T11:00:00Z"))
    report = _run(tmp_path, built)
    assert (report.tally.fetched, report.tally.written, report.tally.rejected) == (2, 2, 0)
    assert report.cursor_after == "2026-11-20T11:00:00Z"
    assert len(fake_fhir.committed) == 1, "one transaction per batch"
    devices = [
        e for e in fake_fhir.committed[0]["entry"] if e["resource"]["resourceType"] == "Device"
    ]
    assert len(devices) == 1, "the tool's Device appears once per transaction"
    assert len(fake_fhir.all("DocumentReference")) == 2 and len(fake_fhir.all("Device")) == 1
    again = _run(tmp_path, built)
    assert (again.tally.fetched, again.tally.written, again.tally.unchanged) == (
        1,
        0,
        1,
    )  # ge cursor refetches the newest
    assert len(fake_fhir.committed) == 1
    with SyncState(tmp_path / "state.sqlite3") as state:
        entry = state.seen(BASE, "a", "1")
        assert entry.outcome == "written" and entry.resources[0].startswith("DocumentReference/")


def test_invalid_response_is_recorded_and_reported_not_written(tmp_path, built, qr_at, fake_fhir):
    bad = qr_at("bad", "2026-11-20T10:00:00Z")
    bad["item"] = [i for i in bad["item"] if i["linkId"] != "kind"]  # required answer missing
    unknown = qr_at(
        "unknown",
        "2026-11-20T10:30:00Z",
        questionnaire="https://rejection-fhir.org/fhir/Questionnaire/no-such-worksheet",
    )
    fake_fhir.add(bad, unknown, qr_at("good", "2026-11-20T11:00:00Z"))
    report = _run(tmp_path, built)
    assert (report.tally.written, report.tally.rejected) == (1, 2)
    assert {p.response.split("/")[1] for p in report.rejected} == {"bad", "unknown"}
    assert not report.ok
    written = json.dumps(fake_fhir.committed)
    assert (
        "QuestionnaireResponse/bad" not in written
        and "QuestionnaireResponse/unknown" not in written
    )
    with SyncState(tmp_path / "state.sqlite3") as state:
        rejected = {e.response_id: e for e in state.entries(outcome="rejected")}
        assert set(rejected) == {"bad", "unknown"}
        assert any(f["path"] == "kind" for f in rejected["bad"].findings)


def test_refused_write_is_isolated_and_holds_the_cursor(tmp_path, built, qr_at, fake_fhir):
    fake_fhir.add(
        qr_at("a", "2026-11-20T10:00:00Z"),
        qr_at("b", "2026-11-20T11:00:00Z"),
        qr_at("c", "2026-11-20T12:00:00Z"),
    )
    fake_fhir.fail(
        422, when=lambda seen: seen.mentions("QuestionnaireResponse/b"), diagnostics="HAPI-0000"
    )
    report = _run(tmp_path, built)
    assert (report.tally.written, report.tally.failed) == (2, 1)
    assert report.failed[0].response.startswith("QuestionnaireResponse/b/")
    assert report.cursor_after == "2026-11-20T11:00:00Z", "the cursor stops at the refused response"
    fake_fhir.clear_faults()
    again = _run(tmp_path, built)
    assert (again.tally.written, again.tally.unchanged, again.tally.failed) == (1, 1, 0)
    assert again.cursor_after == "2026-11-20T12:00:00Z"
    assert len(fake_fhir.all("DocumentReference")) == 3, "each response's note once"


def test_dry_run_writes_nothing_and_keeps_no_state(tmp_path, built, qr_at, fake_fhir):
    fake_fhir.add(qr_at("a", "2026-11-20T10:00:00Z"))
    report = _run(tmp_path, built, dry_run=True)
    assert report.tally.written == 1 and fake_fhir.committed == []
    assert fake_fhir.writes() == []
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.cursor(BASE) is None and state.entries() == []


def test_responses_to_other_forms_are_not_ours(tmp_path, built, qr_at, fake_fhir):
    other = qr_at(
        "x", "2026-11-20T10:00:00Z", questionnaire="http://other.example/Questionnaire/intake"
    )
    fake_fhir.add(other)
    report = _run(tmp_path, built)
    assert (report.tally.skipped, report.tally.written, report.tally.rejected) == (1, 0, 0)


def test_amended_version_supersedes_the_earlier_note(tmp_path, built, qr_at, fake_fhir):
    fake_fhir.add(qr_at("a", "2026-11-20T10:00:00Z"))
    _run(tmp_path, built)
    note_ref = _written_note(tmp_path)
    _amend(fake_fhir, qr_at, "2026-11-21T10:00:00Z")
    report = _run(tmp_path, built)
    assert report.tally.written == 1
    entries = fake_fhir.committed[-1]["entry"]
    puts = [
        e
        for e in entries
        if e["request"]["method"] == "PUT" and e["resource"]["resourceType"] == "DocumentReference"
    ]
    assert puts and puts[0]["resource"]["status"] == "superseded"
    assert puts[0]["request"]["ifMatch"] == 'W/"1"', "the version the sync read"
    new_note = next(
        e
        for e in entries
        if e["request"]["method"] == "POST" and e["resource"]["resourceType"] == "DocumentReference"
    )
    assert new_note["resource"]["relatesTo"][0]["target"]["reference"] == note_ref
    held = {n["status"] for n in fake_fhir.all("DocumentReference")}
    assert held == {"current", "superseded"}


def test_a_time_window_reads_its_slice_and_ends_at_its_end(tmp_path, built, qr_at, fake_fhir):
    fake_fhir.add(*(qr_at(r, f"2026-11-2{d}T10:00:00Z") for r, d in (("a", 0), ("b", 1), ("c", 2))))
    window = {"since": "2026-11-21T00:00:00Z", "until": "2026-11-22T00:00:00Z"}
    report = _run(tmp_path, built, **window)
    assert _bounds(fake_fhir)[-1] == ["ge2026-11-21T00:00:00Z", "lt2026-11-22T00:00:00Z"]
    assert (report.tally.fetched, report.tally.written) == (1, 1)
    assert report.cursor_after == "2026-11-22T00:00:00Z"  # done: capped at its end
    with SyncState(tmp_path / "state.sqlite3", shard=window_shard(**window)) as state:
        assert state.cursor(BASE) == "2026-11-22T00:00:00Z"
    with SyncState(tmp_path / "state.sqlite3") as incremental:
        assert incremental.cursor(BASE) is None  # the incremental shard's cursor is its own
    again = _run(tmp_path, built, **window)  # a rerun of a finished window: nothing to do
    assert _bounds(fake_fhir)[-1] == ["ge2026-11-22T00:00:00Z", "lt2026-11-22T00:00:00Z"]
    assert again.tally.fetched == 0


def test_an_amendment_synced_incrementally_supersedes_the_windows_note(
    tmp_path, built, qr_at, fake_fhir
):
    fake_fhir.add(qr_at("a", "2026-11-20T10:00:00Z"))
    _run(tmp_path, built, since="2026-11-01", until="2026-11-21")
    note_ref = _written_note(tmp_path)
    _amend(fake_fhir, qr_at, "2026-11-22T10:00:00Z")
    report = _run(tmp_path, built, since="2026-11-21")  # the incremental shard takes over
    assert report.tally.written == 1
    new_note = next(
        e["resource"]
        for e in fake_fhir.committed[-1]["entry"]
        if e["request"]["method"] == "POST" and e["resource"]["resourceType"] == "DocumentReference"
    )
    assert new_note["relatesTo"][0]["target"]["reference"] == note_ref


def test_a_window_resumes_from_its_own_cursor_not_its_start(tmp_path, built, qr_at, fake_fhir):
    fake_fhir.add(qr_at("a", "2026-11-20T10:00:00Z"))
    window = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-30T00:00:00Z"}
    with SyncState(tmp_path / "state.sqlite3", shard=window_shard(**window)) as state:
        state.record([], cursor=(BASE, "2026-11-15T00:00:00Z"))  # a run that stopped midway
    _run(tmp_path, built, **window)
    assert _bounds(fake_fhir)[0][0] == "ge2026-11-15T00:00:00Z"


def test_the_state_defaults_to_the_settings_state(tmp_path, built, qr_at, monkeypatch, fake_fhir):
    fake_fhir.add(qr_at("a", "2026-11-20T10:00:00Z"))
    monkeypatch.chdir(tmp_path)
    _run(tmp_path, built, state_path=None)
    assert (tmp_path / DEFAULT_STATE_PATH).is_file()
