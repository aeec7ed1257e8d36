"""The report on EHRs that take less (servers/profiles/): searches only what the server's
CapabilityStatement allows, says what it could not read, and shows the safety alerts the
sync put in notes (no Flag there) as loudly as Flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rejection_fhir.commands.report import fetch_records, plan_searches, write_report
from rejection_fhir.ehr.note import PLAIN, SAFETY_TITLE_PREFIX
from rejection_fhir.report import render_html
from rejection_fhir.report.notes import blocks_from_text
from rejection_fhir.settings import make_client
from tests.fakefhir import BASE, FakeFhir
from tests.unit.report.conftest import report_of
from tests.unit.report.records import Clinic, of_type

PROFILES = Path(__file__).resolve().parents[3] / "servers" / "profiles"
PATIENT = "Patient/p1"


def _statement(profile: str) -> dict:
    """A CapabilityStatement listing what a profile (servers/profiles/NAME.json) allows, as
    the profile's HAPI serves it: interactions and search parameters per type."""
    rules = json.loads((PROFILES / f"{profile}.json").read_text(encoding="utf-8"))["resources"]
    resources = [
        {
            "type": kind,
            "interaction": [{"code": i} for i in rule.get("interactions", [])],
            "searchParam": [{"name": p, "type": "token"} for p in rule.get("searchParams", [])],
        }
        for kind, rule in rules.items()
    ]
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "resource": resources}],
    }


def _plans(profile: str) -> dict[str, dict[str, str] | None]:
    return {p.resource_type: p.params for p in plan_searches(_statement(profile), PATIENT)}


# --------------------------------------------------------------------------- searches


def test_epic_like_gets_no_status_search_and_no_flag_search() -> None:
    plans = _plans("epic-like")
    assert plans["DocumentReference"] == {
        "subject": PATIENT,
        "type": "http://loinc.org|74465-6",
        "_count": "100",
    }
    assert plans["Observation"] is not None and plans["Observation"]["subject"] == PATIENT
    assert plans["Flag"] is None


def test_athena_like_is_searched_by_patient_not_subject() -> None:
    plans = _plans("athena-like")
    assert plans["Observation"] == {
        "patient": PATIENT,
        "category": "http://terminology.hl7.org/CodeSystem/observation-category|survey",
        "_count": "100",
    }
    assert plans["DocumentReference"] == {
        "patient": PATIENT,
        "type": "http://loinc.org|74465-6",
        "_count": "100",
    }
    assert plans["Flag"] is None


@pytest.mark.parametrize("profile", ["oracle-like", "canvas-like"])
def test_profiles_without_flags_get_no_flag_search(profile: str) -> None:
    plans = _plans(profile)
    assert plans["Flag"] is None
    assert plans["DocumentReference"] is not None and plans["Observation"] is not None


def test_canvas_like_keeps_the_status_filter_it_lists() -> None:
    assert _plans("canvas-like")["DocumentReference"]["status"] == "current"  # type: ignore[index]


def test_a_type_that_cannot_be_searched_by_patient_is_said() -> None:
    statement = _statement("epic-like")
    for resource in statement["rest"][0]["resource"]:
        if resource["type"] == "Observation":
            resource["searchParam"] = [{"name": "code", "type": "token"}]
    (plan,) = [p for p in plan_searches(statement, PATIENT) if p.resource_type == "Observation"]
    assert plan.params is None and "searched by patient" in plan.reason


def test_a_statement_that_lists_nothing_keeps_the_full_searches() -> None:
    plans = plan_searches({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}, PATIENT)
    assert [p.params and p.params["subject"] for p in plans] == [PATIENT] * 3


def test_fetch_on_an_epic_like_server_sends_only_allowed_searches(
    settings, fake_fhir: FakeFhir, catalog
) -> None:
    fake_fhir.statement = _statement("epic-like")
    # Refuse what Epic refuses: a status search, any Flag search.
    fake_fhir.refused_params = {"DocumentReference:status", "Flag:subject"}
    clinic = Clinic(catalog, writable=("DocumentReference",), note_types=(PLAIN,))
    clinic.phq9("2026-11-20T10:00:00Z", 14, item9=2)
    fake_fhir.add(*clinic.resources)
    records = fetch_records(make_client(settings), "p1")
    assert [s for s in fake_fhir.searched("DocumentReference")] == [
        {"subject": ["Patient/p1"], "type": ["http://loinc.org|74465-6"], "_count": ["100"]}
    ]
    assert fake_fhir.searched("Flag") == []
    assert len(records.documents) == 1 and records.flags == []
    assert set(records.not_read) == {"Flag"}


def test_a_search_refused_despite_the_statement_is_said_not_fatal(
    settings, fake_fhir: FakeFhir, catalog, tmp_path
) -> None:
    fake_fhir.refused_params = {"Flag:subject"}
    out = write_report(settings, "p1", catalog, out=tmp_path / "r.html")
    (line,) = out.report.not_read
    assert line.startswith("Flags: this EHR refused the Flag search")
    assert not out.report.flags_read


# --------------------------------------------------------------------------- the page


@pytest.fixture
def epic_clinic(catalog) -> Clinic:
    """What the sync writes on Epic: plain-text notes only, the alert in the note."""
    clinic = Clinic(catalog, writable=("DocumentReference",), note_types=(PLAIN,))
    clinic.phq9("2026-11-06T10:00:00Z", 8)
    clinic.phq9("2026-11-20T10:00:00Z", 14, item9=2)
    for note in of_type(clinic.resources, "DocumentReference"):
        note.pop("text")  # an EHR that keeps only the attachment
    return clinic


def test_a_safety_alert_note_is_shown_in_the_safety_box(epic_clinic: Clinic) -> None:
    notes = of_type(epic_clinic.resources, "DocumentReference")
    assert [n["description"].startswith(SAFETY_TITLE_PREFIX) for n in notes] == [False, True]
    assert of_type(epic_clinic.resources, "Flag") == []
    report = report_of(
        epic_clinic.resources, not_read={"Flag": "this EHR does not let Flag be searched"}
    )
    (alert,) = report.safety_flags
    assert alert.kind == "note" and alert.since is not None and alert.since.date == "2026-11-20"
    assert "item 9" in alert.text.lower() or "self-harm" in alert.text.lower(), alert.text
    assert alert.detail.startswith("In the note: Patient Health Questionnaire (PHQ-9)")
    html = render_html(report)
    box = html[
        html.index('<section class="safety"') : html.index(
            "</section>", html.index('<section class="safety"')
        )
    ]
    assert "1 active alert to review" in box
    assert "This EHR keeps no Flags; safety alerts are in the notes" in box
    assert (
        "Not read from this EHR" in html and "Flags: this EHR does not let Flag be searched" in html
    )
    # The plain-text note is read and shown, alert first.
    (newest, older) = report.worksheets
    assert newest.source == "text" and newest.blocks[0].kind == "alert"
    assert older.blocks and not report.flags_read and report.notes_read


def test_no_flags_and_no_alert_in_the_notes_says_where_it_looked(epic_clinic: Clinic) -> None:
    calm = [
        r
        for r in epic_clinic.resources
        if not str(r.get("description", "")).startswith(SAFETY_TITLE_PREFIX)
    ]
    report = report_of(calm, not_read={"Flag": "this EHR does not let Flag be searched"})
    assert report.safety_flags == ()
    html = render_html(report)
    assert "This EHR keeps no Flags; safety alerts are in the notes, and no current note" in html
    assert "No active safety flag" not in html


def test_neither_flags_nor_notes_readable_is_a_loud_could_not_check() -> None:
    report = report_of(
        [],
        not_read={
            "Flag": "this EHR does not let Flag be searched",
            "DocumentReference": "this EHR does not let DocumentReference be searched",
        },
    )
    html = render_html(report)
    assert 'class="safety"' in html and "Safety: could not be checked" in html
    assert "No active safety flag" not in html


def test_plain_text_blocks_alert_heading_items() -> None:
    blocks = blocks_from_text(
        "!! ALERT: Item 9 answered\n          more than half the days\n\nPHQ-9\n=====\n"
        "Authored: 2026-11-20\n\nHighlights\n  Score: 14\n    - a\n"
    )
    assert [b.kind for b in blocks] == ["alert", "heading", "para", "para", "item", "item", "end"][
        : len(blocks)
    ]
    assert blocks[0].text == "ALERT: Item 9 answered\nmore than half the days"
    assert blocks[1].text == "PHQ-9" and blocks[1].level == 1
    assert [b.level for b in blocks if b.kind == "item"] == [0, 1]


def test_the_command_line_says_what_it_could_not_read(
    fake_fhir: FakeFhir, tmp_path, capsys
) -> None:
    from rejection_fhir.cli import main

    fake_fhir.statement = _statement("epic-like")
    main(["report", "--patient", "p1", "--server", BASE, "--out", str(tmp_path / "r.html")])
    assert "not read from this EHR: Flags:" in capsys.readouterr().err
