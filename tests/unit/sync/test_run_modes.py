"""The sync on a server that takes less: the strategy from its statement drives the writes."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from rejection_fhir.errors import ConfigError
from rejection_fhir.sync.state import SyncState
from tests.unit.sync.test_run import (
    BASE,
    DATA,
    FakeServer,
    _copy,
    _run,
)


@pytest.fixture
def qr():
    return json.loads((DATA / "qr-rejection-log.json").read_text())


def _statement(*writable: str) -> dict:
    def resource(kind: str) -> dict:
        return {
            "type": kind,
            "interaction": [{"code": "create"}, {"code": "update"}, {"code": "search-type"}],
            "conditionalCreate": True,
            "searchParam": [{"name": "_lastUpdated", "type": "date"}],
        }

    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "software": {"name": "Some EHR"},
        "rest": [
            {
                "mode": "server",
                "interaction": [{"code": "transaction"}],
                "resource": [resource(k) for k in ("QuestionnaireResponse", *writable)],
            }
        ],
    }


@responses.activate
def test_what_the_server_does_not_take_is_left_out_and_said_once(tmp_path, built, qr) -> None:
    server = FakeServer(responses.mock, [_copy(qr, "a", "2026-11-01T00:00:00Z")])
    responses.replace(
        responses.GET, f"{BASE}/metadata", json=_statement("DocumentReference", "Provenance")
    )
    report = _run(tmp_path, built)
    assert report.ok and report.tally.written == 1
    kinds = {e["resource"]["resourceType"] for t in server.transactions for e in t["entry"]}
    assert kinds == {"DocumentReference", "Provenance"}
    assert report.tally.left_out["Observation"] >= 1 and report.tally.left_out["Device"] == 1
    left = [n for n in report.notes if n.startswith("left out")]
    assert any("Observation" in n for n in left) and any("Device" in n for n in left)
    provenance = next(
        e["resource"]
        for t in server.transactions
        for e in t["entry"]
        if e["resource"]["resourceType"] == "Provenance"
    )
    assert all("reference" not in a["who"] for a in provenance["agent"])
    with SyncState(tmp_path / "state.sqlite3") as state:
        (entry,) = state.entries(BASE)
    assert [r.split("/")[0] for r in entry.resources] == ["DocumentReference", "Provenance"]


@responses.activate
def test_a_forced_write_mode_is_used_and_said(tmp_path, built, qr) -> None:
    FakeServer(responses.mock, [_copy(qr, "a", "2026-11-01T00:00:00Z")])
    posted: list[str] = []

    def create(request):
        kind = request.url.rsplit("/", 1)[1]
        posted.append(kind)
        assert "If-None-Exist" in request.headers
        return 201, {"Location": f"{BASE}/{kind}/{len(posted)}/_history/1"}, "{}"

    import re

    responses.add_callback(responses.POST, re.compile(rf"{BASE}/\w+$"), callback=create)
    responses.add_callback(
        responses.PUT,
        re.compile(rf"{BASE}/Observation\?.*"),
        callback=lambda r: (201, {"Location": f"{BASE}/Observation/9/_history/1"}, "{}"),
    )
    report = _run(tmp_path, built, write_mode="conditional")
    assert report.ok and report.tally.written == 1
    assert posted[0] == "Device" and posted[1] == "DocumentReference" and posted[-1] == "Provenance"
    assert any("write mode conditional (set" in n for n in report.notes)


def _reading_statement(*params: str) -> dict:
    statement = _statement("DocumentReference", "Provenance", "Device", "Observation", "Flag")
    rest = statement["rest"][0]
    rest["resource"][0]["searchParam"] = [{"name": p, "type": "token"} for p in params]
    return statement


def _searches(rsps, qrs, seen: list[dict]):
    def search(request):
        query = parse_qs(urlsplit(request.url).query)
        seen.append(query)
        found = qrs
        if "patient" in query:
            found = [
                q for q in qrs if q["subject"]["reference"] == f"Patient/{query['patient'][0]}"
            ]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": q, "search": {"mode": "match"}} for q in found],
        }
        return 200, {}, json.dumps(bundle)

    rsps.replace(responses.GET, f"{BASE}/QuestionnaireResponse", json={})
    rsps.remove(responses.GET, f"{BASE}/QuestionnaireResponse")
    rsps.add_callback(responses.GET, f"{BASE}/QuestionnaireResponse", callback=search)


@responses.activate
def test_authored_reading_moves_the_cursor_to_the_newest_authored(tmp_path, built, qr) -> None:
    qrs = [
        _copy(qr, "a", "2026-11-05T00:00:00Z", authored="2026-11-01T10:00:00Z"),
        _copy(qr, "b", "2026-11-04T00:00:00Z", authored="2026-11-03T10:00:00Z"),
    ]
    FakeServer(responses.mock, qrs)
    responses.replace(responses.GET, f"{BASE}/metadata", json=_reading_statement("authored"))
    seen: list[dict] = []
    _searches(responses.mock, qrs, seen)
    report = _run(tmp_path, built, since="2026-10-01T00:00:00Z")
    assert report.ok and report.tally.written == 2
    assert seen[0]["authored"] == ["ge2026-10-01T00:00:00Z"] and "_lastUpdated" not in seen[0]
    assert report.cursor_after == "2026-11-03T10:00:00Z"
    assert any("authored" in n for n in report.notes)


@responses.activate
def test_per_patient_reading_polls_each_listed_patient(tmp_path, built, qr) -> None:
    qrs = [
        _copy(qr, "a", "2026-11-05T00:00:00Z", subject={"reference": "Patient/p1"}),
        _copy(qr, "b", "2026-11-04T00:00:00Z", subject={"reference": "Patient/p2"}),
        _copy(qr, "c", "2026-11-04T00:00:00Z", subject={"reference": "Patient/p3"}),
    ]
    FakeServer(responses.mock, qrs)
    responses.replace(responses.GET, f"{BASE}/metadata", json=_reading_statement("patient"))
    seen: list[dict] = []
    _searches(responses.mock, qrs, seen)
    with pytest.raises(ConfigError, match="per patient"):
        _run(tmp_path, built)
    listing = tmp_path / "patients.txt"
    listing.write_text("# the clinic's patients\nPatient/p1\np2\n")
    report = _run(tmp_path, built, patients_file=listing)
    assert report.ok and report.tally.written == 2
    assert [q["patient"] for q in seen] == [["p1"], ["p2"]]
    again = _run(tmp_path, built, patients_file=listing)
    assert again.tally.written == 0 and again.tally.unchanged == 2
