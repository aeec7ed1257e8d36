"""The sync on a server that takes less: the strategy from its statement drives the writes."""

from __future__ import annotations

import pytest

from rejection_fhir.errors import ConfigError
from rejection_fhir.sync.state import SyncState
from tests.fakefhir import BASE
from tests.unit.sync.test_run import (
    _run,
)


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


def test_what_the_server_does_not_take_is_left_out_and_said_once(
    tmp_path, built, qr_at, fake_fhir
) -> None:
    fake_fhir.add(qr_at("a", "2026-11-01T00:00:00Z"))
    fake_fhir.statement = _statement("DocumentReference", "Provenance")
    report = _run(tmp_path, built)
    assert report.ok and report.tally.written == 1
    kinds = {e["resource"]["resourceType"] for t in fake_fhir.committed for e in t["entry"]}
    assert kinds == {"DocumentReference", "Provenance"}
    assert report.tally.left_out["Observation"] >= 1 and report.tally.left_out["Device"] == 1
    left = [n for n in report.notes if n.startswith("left out")]
    assert any("Observation" in n for n in left) and any("Device" in n for n in left)
    provenance = next(
        e["resource"]
        for t in fake_fhir.committed
        for e in t["entry"]
        if e["resource"]["resourceType"] == "Provenance"
    )
    assert all("reference" not in a["who"] for a in provenance["agent"])
    with SyncState(tmp_path / "state.sqlite3") as state:
        (entry,) = state.entries(BASE)
    assert [r.split("/")[0] for r in entry.resources] == ["DocumentReference", "Provenance"]


def test_a_forced_write_mode_is_used_and_said(tmp_path, built, qr_at, fake_fhir) -> None:
    fake_fhir.add(qr_at("a", "2026-11-01T00:00:00Z"))
    report = _run(tmp_path, built, write_mode="conditional")
    assert report.ok and report.tally.written == 1
    assert fake_fhir.posted == [], "no transaction"
    posts = fake_fhir.writes("POST")
    assert all("If-None-Exist" in p.headers for p in posts)
    posted = [p.resource_type for p in posts]
    puts = fake_fhir.writes("PUT")
    assert puts and all(p.path == "Observation" and "identifier" in p.params for p in puts)
    assert posted[0] == "Device" and posted[1] == "DocumentReference" and posted[-1] == "Provenance"
    assert any("write mode conditional (set" in n for n in report.notes)


def _reading_statement(*params: str) -> dict:
    statement = _statement("DocumentReference", "Provenance", "Device", "Observation", "Flag")
    rest = statement["rest"][0]
    rest["resource"][0]["searchParam"] = [{"name": p, "type": "token"} for p in params]
    return statement


def test_authored_reading_moves_the_cursor_to_the_newest_authored(
    tmp_path, built, qr_at, fake_fhir
) -> None:
    qrs = [
        qr_at("a", "2026-11-05T00:00:00Z", authored="2026-11-01T10:00:00Z"),
        qr_at("b", "2026-11-04T00:00:00Z", authored="2026-11-03T10:00:00Z"),
    ]
    fake_fhir.add(*qrs)
    fake_fhir.statement = _reading_statement("authored")
    report = _run(tmp_path, built, since="2026-10-01T00:00:00Z")
    assert report.ok and report.tally.written == 2
    seen = fake_fhir.searched("QuestionnaireResponse")
    assert seen[0]["authored"] == ["ge2026-10-01T00:00:00Z"] and "_lastUpdated" not in seen[0]
    assert report.cursor_after == "2026-11-03T10:00:00Z"
    assert any("authored" in n for n in report.notes)


def test_per_patient_reading_polls_each_listed_patient(tmp_path, built, qr_at, fake_fhir) -> None:
    qrs = [
        qr_at("a", "2026-11-05T00:00:00Z", subject={"reference": "Patient/p1"}),
        qr_at("b", "2026-11-04T00:00:00Z", subject={"reference": "Patient/p2"}),
        qr_at("c", "2026-11-04T00:00:00Z", subject={"reference": "Patient/p3"}),
    ]
    fake_fhir.add(*qrs)
    fake_fhir.statement = _reading_statement("patient")
    with pytest.raises(ConfigError, match="per patient"):
        _run(tmp_path, built)
    listing = tmp_path / "patients.txt"
    listing.write_text("# the clinic's patients\nPatient/p1\np2\n")
    report = _run(tmp_path, built, patients_file=listing)
    assert report.ok and report.tally.written == 2
    seen = fake_fhir.searched("QuestionnaireResponse")
    assert [q["patient"] for q in seen] == [["p1"], ["p2"]]
    again = _run(tmp_path, built, patients_file=listing)
    assert again.tally.written == 0 and again.tally.unchanged == 2
