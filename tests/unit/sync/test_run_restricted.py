"""The sync on an Epic-like statement: notes as text/plain, no Flag, no Observations.

What the server leaves out is carried in the note (the alert first and in its title, the
scores with their bands) and said once per run, however many responses."""

from __future__ import annotations

import base64

import pytest

from rejection_fhir.ehr.note import SAFETY_TITLE_PREFIX
from tests.conftest import LOINC, phq9_response
from tests.unit.sync.test_run import _run


def _at(qr: dict, rid: str, updated: str) -> dict:
    """``qr`` as the server holds it (id, version, lastUpdated)."""
    return {**qr, "id": rid, "meta": {"versionId": "1", "lastUpdated": updated}}


def _statement() -> dict:
    def resource(kind: str, documentation: str | None = None) -> dict:
        out = {
            "type": kind,
            "interaction": [{"code": "create"}, {"code": "search-type"}],
            "conditionalCreate": True,
            "searchParam": [{"name": "_lastUpdated", "type": "date"}],
        }
        if documentation:
            out["documentation"] = documentation
        return out

    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "software": {"name": "Some EHR"},
        "rest": [
            {
                "mode": "server",
                "interaction": [{"code": "transaction"}],
                "resource": [
                    resource("QuestionnaireResponse"),
                    # As the epic-like profile's interceptor states it (servers/profiles).
                    resource("DocumentReference", "Content types accepted: text/plain."),
                    resource("Provenance"),
                ],
            }
        ],
    }


@pytest.fixture
def phq9(built):
    q = next(q for q in built.questionnaires if q["id"] == "phq-9")
    return lambda values: phq9_response(values, canonical=f"{q['url']}|{q['version']}")


def _notes(server):
    return {
        e["resource"]["context"]["related"][0]["reference"].rsplit("/", 1)[1]: e["resource"]
        for t in server.committed
        for e in t["entry"]
        if e["resource"]["resourceType"] == "DocumentReference"
    }


def test_an_epic_like_server_gets_plain_text_notes_carrying_what_was_left_out(
    tmp_path, built, phq9, fake_fhir
) -> None:
    server = fake_fhir
    server.add(
        _at(phq9([1, 1, 2, 1, 0, 1, 0, 1, 1]), "alert", "2026-11-20T10:00:00Z"),
        _at(phq9([2, 2, 1, 1, 1, 1, 1, 1, 0]), "quiet", "2026-11-20T11:00:00Z"),
    )
    server.statement = _statement()
    report = _run(tmp_path, built)
    assert report.ok and report.tally.written == 2

    kinds = {e["resource"]["resourceType"] for t in server.committed for e in t["entry"]}
    assert kinds == {"DocumentReference", "Provenance"}
    notes = _notes(server)
    for note in notes.values():
        (content,) = note["content"]
        assert content["attachment"]["contentType"] == "text/plain; charset=utf-8"
    alert_text = base64.b64decode(notes["alert"]["content"][0]["attachment"]["data"]).decode()
    assert alert_text.startswith("!! ALERT: SAFETY")
    assert "PHQ-9 score: 8 (Mild depression (5-9))" in alert_text
    assert notes["alert"]["description"].startswith(SAFETY_TITLE_PREFIX)
    assert notes["alert"]["docStatus"] == "final"
    quiet_text = base64.b64decode(notes["quiet"]["content"][0]["attachment"]["data"]).decode()
    assert "PHQ-9 score: 10 (Moderate depression (10-14))" in quiet_text
    assert not notes["quiet"]["description"].startswith(SAFETY_TITLE_PREFIX)

    # Said once per run, not per response; the tally counts what was left out.
    for said in ("notes as text/plain", "left out: no Flag", "left out: no Observation"):
        assert sum(n.startswith(said) for n in report.notes) == 1, (said, report.notes)
    assert report.tally.left_out["Flag"] == 1
    assert report.tally.left_out["Observation"] == 2


def test_a_rejected_response_alert_reaches_an_epic_like_server_as_a_note(
    tmp_path, built, phq9, fake_fhir
) -> None:
    rejected = phq9([1, 1, 2, 1, 0, 1, 0, 1, 1])
    rejected["item"][0]["answer"] = [{"valueCoding": {"system": LOINC, "code": "LA0000-0"}}]
    server = fake_fhir
    server.add(_at(rejected, "bad", "2026-11-20T10:00:00Z"))
    server.statement = _statement()
    report = _run(tmp_path, built)
    assert report.tally.rejected == 1 and report.tally.failed == 0
    kinds = [e["resource"]["resourceType"] for t in server.committed for e in t["entry"]]
    assert kinds == ["DocumentReference", "Provenance"]  # no Flag, no Device sent
    note = _notes(server)["bad"]
    assert note["description"].startswith(SAFETY_TITLE_PREFIX)
    text = base64.b64decode(note["content"][0]["attachment"]["data"]).decode()
    assert text.startswith("!! ALERT: SAFETY") and "PHQ-9 score" not in text
    assert report.tally.left_out["Flag"] == 1
