"""The sync against a recorded server (responses): exactly once, nothing dropped."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from rejection_fhir.settings import DEFAULT_STATE_PATH, load_settings
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.sync.state import SyncState, window_shard
from rejection_fhir.worksheet.catalog import catalog_from_build

BASE = "http://127.0.0.1:9999/fhir"
DATA = Path(__file__).parents[2] / "data"
RECORDED = "2026-11-26T12:00:00Z"


class FakeServer:
    """Just enough FHIR: metadata, a QuestionnaireResponse search, transactions, reads."""

    def __init__(self, rsps: responses.RequestsMock, responses_on_server: list[dict]) -> None:
        self.qrs = responses_on_server
        self.transactions: list[dict] = []
        self.refuse: set[str] = set()  # response ids whose writes the server refuses
        self.next_id = 100
        self.searches: list[list[str]] = []  # each search's _lastUpdated bounds
        rsps.get(
            f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
        )
        rsps.add_callback(responses.GET, f"{BASE}/QuestionnaireResponse", callback=self.search)
        rsps.add_callback(responses.GET, f"{BASE}/Questionnaire", callback=self.no_questionnaires)
        rsps.add_callback(responses.POST, BASE, callback=self.transaction)

    def search(self, request):
        bounds = parse_qs(urlsplit(request.url).query).get("_lastUpdated", [])
        self.searches.append(bounds)
        since = next((b[2:] for b in bounds if b.startswith("ge")), "")
        until = next((b[2:] for b in bounds if b.startswith("lt")), "9999")
        found = sorted(
            (q for q in self.qrs if since <= q["meta"]["lastUpdated"] < until),
            key=lambda q: q["meta"]["lastUpdated"],
        )
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [{"resource": q, "search": {"mode": "match"}} for q in found],
        }
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)

    def no_questionnaires(self, request):
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset"})

    def transaction(self, request):
        bundle = json.loads(request.body)
        text = json.dumps(bundle)
        if any(f"QuestionnaireResponse/{rid}" in text for rid in self.refuse):
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "processing", "diagnostics": "HAPI-0000: refused"}
                ],
            }
            return 422, {"Content-Type": "application/fhir+json"}, json.dumps(outcome)
        self.transactions.append(bundle)
        out = []
        for entry in bundle["entry"]:
            self.next_id += 1
            rtype = entry["resource"]["resourceType"]
            out.append(
                {
                    "response": {
                        "status": "201 Created",
                        "location": f"{rtype}/{self.next_id}/_history/1",
                    }
                }
            )
        return (
            200,
            {"Content-Type": "application/fhir+json"},
            json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": out}),
        )


@pytest.fixture
def qr():
    return json.loads((DATA / "qr-rejection-log.json").read_text())


def _copy(qr, rid, updated, **changes):
    out = copy.deepcopy(qr)
    out["id"] = rid
    out["meta"] = {"versionId": "1", "lastUpdated": updated}
    out.update(changes)
    return out


def _run(tmp_path, built, **kw):
    kw.setdefault("state_path", tmp_path / "state.sqlite3")
    settings = load_settings({"server": BASE}, env={})
    options = SyncOptions(source=BASE, **kw)
    return sync(settings, options, catalog_from_build(built), recorded=RECORDED)


@responses.activate
def test_first_sync_writes_then_rerun_writes_nothing(tmp_path, built, qr):
    server = FakeServer(
        responses.mock,
        [_copy(qr, "a", "2026-11-20T10:00:00Z"), _copy(qr, "b", "2026-11-20T11:00:00Z")],
    )
    report = _run(tmp_path, built)
    assert (report.tally.fetched, report.tally.written, report.tally.rejected) == (2, 2, 0)
    assert report.cursor_after == "2026-11-20T11:00:00Z"
    assert len(server.transactions) == 1, "one transaction per batch"
    devices = [
        e for e in server.transactions[0]["entry"] if e["resource"]["resourceType"] == "Device"
    ]
    assert len(devices) == 1, "the tool's Device appears once per transaction"
    again = _run(tmp_path, built)
    assert (again.tally.fetched, again.tally.written, again.tally.unchanged) == (
        1,
        0,
        1,
    )  # ge cursor refetches the newest
    assert len(server.transactions) == 1
    with SyncState(tmp_path / "state.sqlite3") as state:
        entry = state.seen(BASE, "a", "1")
        assert entry.outcome == "written" and entry.resources[0].startswith("DocumentReference/")


@responses.activate
def test_invalid_response_is_recorded_and_reported_not_written(tmp_path, built, qr):
    bad = _copy(qr, "bad", "2026-11-20T10:00:00Z")
    bad["item"] = [i for i in bad["item"] if i["linkId"] != "kind"]  # required answer missing
    unknown = _copy(
        qr,
        "unknown",
        "2026-11-20T10:30:00Z",
        questionnaire="https://rejection-fhir.org/fhir/Questionnaire/no-such-worksheet",
    )
    server = FakeServer(responses.mock, [bad, unknown, _copy(qr, "good", "2026-11-20T11:00:00Z")])
    report = _run(tmp_path, built)
    assert (report.tally.written, report.tally.rejected) == (1, 2)
    assert {p.response.split("/")[1] for p in report.rejected} == {"bad", "unknown"}
    assert not report.ok
    written = json.dumps(server.transactions)
    assert (
        "QuestionnaireResponse/bad" not in written
        and "QuestionnaireResponse/unknown" not in written
    )
    with SyncState(tmp_path / "state.sqlite3") as state:
        rejected = {e.response_id: e for e in state.entries(outcome="rejected")}
        assert set(rejected) == {"bad", "unknown"}
        assert any(f["path"] == "kind" for f in rejected["bad"].findings)


@responses.activate
def test_refused_write_is_isolated_and_holds_the_cursor(tmp_path, built, qr):
    server = FakeServer(
        responses.mock,
        [
            _copy(qr, "a", "2026-11-20T10:00:00Z"),
            _copy(qr, "b", "2026-11-20T11:00:00Z"),
            _copy(qr, "c", "2026-11-20T12:00:00Z"),
        ],
    )
    server.refuse = {"b"}
    report = _run(tmp_path, built)
    assert (report.tally.written, report.tally.failed) == (2, 1)
    assert report.failed[0].response.startswith("QuestionnaireResponse/b/")
    assert report.cursor_after == "2026-11-20T11:00:00Z", "the cursor stops at the refused response"
    server.refuse = set()
    again = _run(tmp_path, built)
    assert (again.tally.written, again.tally.unchanged, again.tally.failed) == (1, 1, 0)
    assert again.cursor_after == "2026-11-20T12:00:00Z"


@responses.activate
def test_dry_run_writes_nothing_and_keeps_no_state(tmp_path, built, qr):
    server = FakeServer(responses.mock, [_copy(qr, "a", "2026-11-20T10:00:00Z")])
    report = _run(tmp_path, built, dry_run=True)
    assert report.tally.written == 1 and server.transactions == []
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.cursor(BASE) is None and state.entries() == []


@responses.activate
def test_responses_to_other_forms_are_not_ours(tmp_path, built, qr):
    other = _copy(
        qr, "x", "2026-11-20T10:00:00Z", questionnaire="http://other.example/Questionnaire/intake"
    )
    FakeServer(responses.mock, [other])
    report = _run(tmp_path, built)
    assert (report.tally.skipped, report.tally.written, report.tally.rejected) == (1, 0, 0)


def _serve_written_note(tmp_path: Path, **extra: Any) -> str:
    """The reference of the note the ledger holds for version 1 of response "a", which the
    server now answers a read of (current, with ``extra`` elements such as ``meta``)."""
    with SyncState(tmp_path / "state.sqlite3") as state:
        entry = state.seen(BASE, "a", "1")
        assert entry is not None
        note_ref = next(r for r in entry.resources if r.startswith("DocumentReference/"))
    responses.get(
        f"{BASE}/{note_ref}",
        json={
            "resourceType": "DocumentReference",
            "id": note_ref.split("/")[1],
            **extra,
            "status": "current",
        },
    )
    return note_ref


@responses.activate
def test_amended_version_supersedes_the_earlier_note(tmp_path, built, qr):
    server = FakeServer(responses.mock, [_copy(qr, "a", "2026-11-20T10:00:00Z")])
    _run(tmp_path, built)
    note_ref = _serve_written_note(tmp_path, meta={"versionId": "1"})
    amended = _copy(qr, "a", "2026-11-21T10:00:00Z", status="amended")
    amended["meta"]["versionId"] = "2"
    server.qrs[:] = [amended]
    report = _run(tmp_path, built)
    assert report.tally.written == 1
    entries = server.transactions[-1]["entry"]
    puts = [
        e
        for e in entries
        if e["request"]["method"] == "PUT" and e["resource"]["resourceType"] == "DocumentReference"
    ]
    assert puts and puts[0]["resource"]["status"] == "superseded"
    new_note = next(
        e
        for e in entries
        if e["request"]["method"] == "POST" and e["resource"]["resourceType"] == "DocumentReference"
    )
    assert new_note["resource"]["relatesTo"][0]["target"]["reference"] == note_ref


@responses.activate
def test_a_time_window_reads_its_slice_and_ends_at_its_end(tmp_path, built, qr):
    server = FakeServer(
        responses.mock,
        [_copy(qr, r, f"2026-11-2{d}T10:00:00Z") for r, d in (("a", 0), ("b", 1), ("c", 2))],
    )
    window = {"since": "2026-11-21T00:00:00Z", "until": "2026-11-22T00:00:00Z"}
    report = _run(tmp_path, built, **window)
    assert server.searches[-1] == ["ge2026-11-21T00:00:00Z", "lt2026-11-22T00:00:00Z"]
    assert (report.tally.fetched, report.tally.written) == (1, 1)
    assert report.cursor_after == "2026-11-22T00:00:00Z"  # done: capped at its end
    with SyncState(tmp_path / "state.sqlite3", shard=window_shard(**window)) as state:
        assert state.cursor(BASE) == "2026-11-22T00:00:00Z"
    with SyncState(tmp_path / "state.sqlite3") as incremental:
        assert incremental.cursor(BASE) is None  # the incremental shard's cursor is its own
    again = _run(tmp_path, built, **window)  # a rerun of a finished window: nothing to do
    assert server.searches[-1] == ["ge2026-11-22T00:00:00Z", "lt2026-11-22T00:00:00Z"]
    assert again.tally.fetched == 0


@responses.activate
def test_an_amendment_synced_incrementally_supersedes_the_windows_note(tmp_path, built, qr):
    server = FakeServer(responses.mock, [_copy(qr, "a", "2026-11-20T10:00:00Z")])
    _run(tmp_path, built, since="2026-11-01", until="2026-11-21")
    note_ref = _serve_written_note(tmp_path)
    amended = _copy(qr, "a", "2026-11-22T10:00:00Z", status="amended")
    amended["meta"]["versionId"] = "2"
    server.qrs[:] = [amended]
    report = _run(tmp_path, built, since="2026-11-21")  # the incremental shard takes over
    assert report.tally.written == 1
    new_note = next(
        e["resource"]
        for e in server.transactions[-1]["entry"]
        if e["request"]["method"] == "POST" and e["resource"]["resourceType"] == "DocumentReference"
    )
    assert new_note["relatesTo"][0]["target"]["reference"] == note_ref


@responses.activate
def test_a_window_resumes_from_its_own_cursor_not_its_start(tmp_path, built, qr):
    server = FakeServer(responses.mock, [_copy(qr, "a", "2026-11-20T10:00:00Z")])
    window = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-30T00:00:00Z"}
    with SyncState(tmp_path / "state.sqlite3", shard=window_shard(**window)) as state:
        state.record([], cursor=(BASE, "2026-11-15T00:00:00Z"))  # a run that stopped midway
    _run(tmp_path, built, **window)
    assert server.searches[0][0] == "ge2026-11-15T00:00:00Z"


@responses.activate
def test_the_state_defaults_to_the_settings_state(tmp_path, built, qr, monkeypatch):
    FakeServer(responses.mock, [_copy(qr, "a", "2026-11-20T10:00:00Z")])
    monkeypatch.chdir(tmp_path)
    _run(tmp_path, built, state_path=None)
    assert (tmp_path / DEFAULT_STATE_PATH).is_file()
