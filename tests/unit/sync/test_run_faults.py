"""The sync when answers get lost or the server keeps failing: exactly once, and it says so.

The fake EHR here commits a transaction before it loses the answer, as a real server
behind a failing network does, and checks If-Match like HAPI (409 on a stale version).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from rejection_fhir.errors import AuthError, ExitCode, ServerUnavailableError
from rejection_fhir.fhir.client import FhirClient, RetryPolicy
from rejection_fhir.settings import load_settings
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.sync.state import SyncState
from rejection_fhir.worksheet.catalog import catalog_from_build

BASE = "http://127.0.0.1:9999/fhir"
DATA = Path(__file__).parents[2] / "data"
FHIR = {"Content-Type": "application/fhir+json"}
RETRIES = 2


class LossyEhr:
    """QuestionnaireResponses to search, and a target that applies transactions entry by
    entry: conditional creates match on their criteria, If-Match is checked per note."""

    def __init__(self, rsps: responses.RequestsMock, qrs: list[dict[str, Any]]) -> None:
        self.qrs = qrs
        self.by_key: dict[str, str] = {}  # ifNoneExist / conditional url -> id
        self.notes: dict[str, dict[str, Any]] = {}
        self.posts = 0
        self.commits = 0
        self.lose_next = 0  # answers to lose after committing
        self.fail_with: int | Exception | None = None  # answer every transaction so
        self.next_id = 0
        rsps.get(
            f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
        )
        rsps.add_callback(responses.GET, f"{BASE}/QuestionnaireResponse", callback=self.search)
        rsps.add_callback(
            responses.GET, re.compile(f"{BASE}/DocumentReference/.+"), callback=self.read_note
        )
        rsps.add_callback(responses.POST, BASE, callback=self.transaction)

    def search(self, request: Any) -> tuple[int, dict[str, str], str]:
        since = request.params.get("_lastUpdated", "ge").removeprefix("ge")
        found = sorted(
            (q for q in self.qrs if q["meta"]["lastUpdated"] >= since),
            key=lambda q: q["meta"]["lastUpdated"],
        )
        entries = [{"resource": q, "search": {"mode": "match"}} for q in found]
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        return 200, FHIR, json.dumps(bundle)

    def read_note(self, request: Any) -> tuple[int, dict[str, str], str]:
        note = self.notes[request.path_url.rsplit("/", 1)[1]]
        return 200, FHIR, json.dumps(note)

    def transaction(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.posts += 1
        if isinstance(self.fail_with, Exception):
            raise self.fail_with
        if isinstance(self.fail_with, int):
            outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
            return self.fail_with, FHIR, json.dumps(outcome)
        bundle = json.loads(request.body)
        for entry in bundle["entry"]:
            match = entry["request"].get("ifMatch")
            if match:
                held = self.notes[entry["request"]["url"].split("/")[1]]
                if match != f'W/"{held["meta"]["versionId"]}"':
                    outcome = {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "conflict"}],
                    }
                    return 409, FHIR, json.dumps(outcome)
        answers = [self._apply(entry) for entry in bundle["entry"]]
        self.commits += 1
        if self.lose_next:
            self.lose_next -= 1
            raise requests.ConnectionError("connection reset after the commit")
        reply = {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}
        return 200, FHIR, json.dumps(reply)

    def _apply(self, entry: dict[str, Any]) -> dict[str, Any]:
        request, resource = entry["request"], entry["resource"]
        rtype = resource["resourceType"]
        if request.get("ifMatch"):
            rid = request["url"].split("/")[1]
            note = self.notes[rid]
            version = str(int(note["meta"]["versionId"]) + 1)
            self.notes[rid] = {**resource, "id": rid, "meta": {"versionId": version}}
            return {
                "response": {"status": "200 OK", "location": f"{rtype}/{rid}/_history/{version}"}
            }
        key = f"{rtype}?{request.get('ifNoneExist') or request['url']}"
        if key in self.by_key:
            rid, status = self.by_key[key], "200 OK"
        else:
            self.next_id += 1
            rid, status = str(self.next_id), "201 Created"
            self.by_key[key] = rid
            if rtype == "DocumentReference":
                self.notes[rid] = {**resource, "id": rid, "meta": {"versionId": "1"}}
        return {"response": {"status": status, "location": f"{rtype}/{rid}/_history/1"}}

    def note_statuses(self) -> list[str]:
        return sorted(n["status"] for n in self.notes.values())


@pytest.fixture(autouse=True)
def quick_clients(monkeypatch):
    """Clients as make_client builds them, with few retries and no real waiting."""

    def make(settings: Any, *, server: str | None = None) -> FhirClient:
        return FhirClient(
            server or settings.server, retry=RetryPolicy(retries=RETRIES), sleep=lambda _: None
        )

    monkeypatch.setattr("rejection_fhir.settings.make_client", make)


@pytest.fixture
def qr():
    return json.loads((DATA / "qr-rejection-log.json").read_text())


def _copy(qr: dict[str, Any], rid: str, updated: str, version: str = "1") -> dict[str, Any]:
    out = copy.deepcopy(qr)
    out["id"] = rid
    out["meta"] = {"versionId": version, "lastUpdated": updated}
    return out


def _run(tmp_path: Path, built: Any) -> Any:
    settings = load_settings({"server": BASE}, env={})
    options = SyncOptions(source=BASE, state_path=tmp_path / "state.sqlite3")
    return sync(settings, options, catalog_from_build(built))


@responses.activate
def test_answer_lost_after_an_amendment_commit_is_not_reported_as_a_refusal(tmp_path, built, qr):
    """The retry of a committed amendment meets its earlier note already superseded (409 on
    the stale If-Match); the sync rebases the plan and finishes, writing nothing twice."""
    ehr = LossyEhr(responses.mock, [_copy(qr, "a", "2026-11-20T10:00:00Z")])
    assert _run(tmp_path, built).ok
    amended = _copy(qr, "a", "2026-11-21T10:00:00Z", version="2")
    amended["status"] = "amended"
    ehr.qrs[:] = [amended]
    ehr.lose_next = 1
    report = _run(tmp_path, built)
    assert report.ok, report.failed
    assert (report.tally.written, report.tally.failed) == (1, 0)
    assert ehr.note_statuses() == ["current", "superseded"], "one new note, the old superseded"
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.seen(BASE, "a", "2") is not None
        assert state.cursor(BASE) == "2026-11-21T10:00:00Z"


@responses.activate
def test_a_server_that_keeps_dropping_the_connection_stops_the_run(tmp_path, built, qr):
    """Not one refusal per response: the run stops at the batch, says why, keeps the cursor."""
    ehr = LossyEhr(
        responses.mock,
        [_copy(qr, rid, f"2026-11-20T10:00:0{i}Z") for i, rid in enumerate("abc")],
    )
    ehr.fail_with = requests.ConnectionError("connection refused")
    with pytest.raises(ServerUnavailableError) as caught:
        _run(tmp_path, built)
    assert caught.value.exit_code == ExitCode.SERVER_UNAVAILABLE
    assert f"gave up after {RETRIES + 1} attempts" in str(caught.value)
    assert ehr.posts == RETRIES + 1, "the batch is not retried response by response"
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.entries() == [] and state.cursor(BASE) is None


@responses.activate
@pytest.mark.parametrize("status", [429, 503])
def test_an_overloaded_server_stops_the_run(tmp_path, built, qr, status):
    ehr = LossyEhr(
        responses.mock,
        [_copy(qr, rid, f"2026-11-20T10:00:0{i}Z") for i, rid in enumerate("ab")],
    )
    ehr.fail_with = status
    with pytest.raises(ServerUnavailableError):
        _run(tmp_path, built)
    assert ehr.posts == RETRIES + 1


@responses.activate
def test_refused_credentials_stop_the_run(tmp_path, built, qr):
    ehr = LossyEhr(
        responses.mock,
        [_copy(qr, rid, f"2026-11-20T10:00:0{i}Z") for i, rid in enumerate("ab")],
    )
    ehr.fail_with = 401
    with pytest.raises(AuthError):
        _run(tmp_path, built)
    assert ehr.posts == 1
