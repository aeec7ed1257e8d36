"""The report model: what it keeps from the server, what it leaves out, how it groups."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from rejection_fhir.report import parse_when
from rejection_fhir.report.measures import band_for, measure_for
from rejection_fhir.worksheet.measures import worksheet_measures
from tests.unit.report.conftest import GENERATED, report_of
from tests.unit.report.records import CODES, LOINC, of_type, survey_observation


def _chart(report, code):
    return next(c for c in report.charts if c.measure.code == code)


def test_one_chart_per_code_in_the_clinicians_order(report):
    assert [(c.measure.code, len(c.points)) for c in report.charts] == [
        ("44261-6", 6),
        ("70274-6", 6),
        ("worth-impact", 3),
        ("belief-strength-before", 2),
        ("belief-strength-after", 2),
        ("emotion-intensity", 6),
        ("hopefulness", 2),
        ("self-kindness", 2),
    ]


def test_scores_keep_their_values_dates_and_bands_in_time_order(report):
    phq9 = _chart(report, "44261-6")
    assert [p.value for p in phq9.points] == [18, 16, 14, 13, 11, 9]
    assert [p.when.date for p in phq9.points] == [
        "2026-09-07",
        "2026-09-21",
        "2026-10-05",
        "2026-10-19",
        "2026-11-02",
        "2026-11-16",
    ]
    assert [p.band.label for p in phq9.points] == [
        "Moderately severe",
        "Moderately severe",
        "Moderate",
        "Moderate",
        "Moderate",
        "Mild",
    ]
    assert phq9.points[-1].interpretation == "Mild depression (5-9)"
    gad7 = _chart(report, "70274-6")
    assert [p.band.code for p in gad7.points] == [
        "severe",
        "moderate",
        "moderate",
        "moderate",
        "mild",
        "mild",
    ]


def test_instance_of_a_repeating_answer_becomes_its_own_series(report):
    emotions = _chart(report, "emotion-intensity")
    assert {s.name: [p.value for p in s.points] for s in emotions.series} == {
        "Hurt": [9, 7, 5],
        "Sadness": [6],
        "Shame": [7, 3],
    }
    assert [s.name for s in _chart(report, "worth-impact").series] == [""]


def test_bands_follow_the_published_cut_points():
    phq9 = measure_for(LOINC, "44261-6")
    gad7 = measure_for(LOINC, "70274-6")
    assert [(b.low, b.high, b.code) for b in phq9.bands] == [
        (0, 5, "minimal"),
        (5, 10, "mild"),
        (10, 15, "moderate"),
        (15, 20, "moderately-severe"),
        (20, 27, "severe"),
    ]
    assert (phq9.y_min, phq9.y_max) == (0, 27)
    assert [(b.low, b.high) for b in gad7.bands] == [(0, 5), (5, 10), (10, 15), (15, 21)]
    assert (gad7.y_min, gad7.y_max) == (0, 21)
    for value, band in [(0, "minimal"), (4, "minimal"), (5, "mild"), (19, "moderately-severe")]:
        assert band_for(phq9, value).code == band
    assert band_for(gad7, 21).code == "severe"
    assert {m.code for m in worksheet_measures(CODES) if m.unit == "%"} == {
        "belief-strength-before",
        "belief-strength-after",
    }


def test_safety_flag_first_and_marks_the_score_of_its_response(report):
    assert len(report.safety_flags) == 1
    flag = report.safety_flags[0]
    assert flag.text.startswith("SAFETY: PHQ-9 item 9")
    assert flag.text.endswith("(1 on a 0-3 scale).")  # what was answered, not the advice
    assert report.safety_advice[0].startswith("A clinician must review this response")
    assert flag.detail == "Answer: Several days"
    assert flag.since.date == "2026-10-05"
    flagged = [p for p in _chart(report, "44261-6").points if p.flagged]
    assert [(p.when.date, p.value) for p in flagged] == [("2026-10-05", 14)]
    assert not any(p.flagged for p in _chart(report, "70274-6").points)


def test_notes_newest_first_without_front_matter(report):
    notes = report.worksheets
    assert len(notes) == 21
    instants = [n.when.instant for n in notes]
    assert instants == sorted(instants, reverse=True)
    newest = notes[0]
    assert newest.title == "Self-compassion after rejection (2026-11-16)"
    assert newest.source == "markdown" and newest.ours
    texts = [b.text for b in newest.blocks]
    assert texts[0] == "Highlights"
    assert not any(t.startswith(("Questionnaire:", "Subject:", "Authored:")) for t in texts)
    alert = next(n for n in notes if any(b.kind == "alert" for b in n.blocks))
    assert alert.when.date == "2026-10-05"


def test_period_spans_all_data(report):
    first, last = report.period
    assert (first.date, last.date) == ("2026-09-07", "2026-11-16")
    assert report.generated_at == GENERATED
    assert report.left_out == {}


def test_what_the_server_should_not_have_sent_is_left_out_and_counted(clinic):
    resources = clinic.resources
    observation = of_type(resources, "Observation")[0]
    other_patient = copy.deepcopy(observation) | {
        "id": "x1",
        "subject": {"reference": "Patient/p2"},
    }
    not_ours = copy.deepcopy(observation) | {"id": "x2", "identifier": [{"value": "1"}]}
    in_error = copy.deepcopy(observation) | {"id": "x3", "status": "entered-in-error"}
    no_value = {k: v for k, v in observation.items() if k != "valueQuantity"} | {"id": "x4"}
    repeated = copy.deepcopy(observation)
    document = of_type(resources, "DocumentReference")[0]
    superseded = copy.deepcopy(document) | {"id": "d1", "status": "superseded"}
    flag = of_type(resources, "Flag")[0]
    closed = copy.deepcopy(flag) | {"id": "f1", "status": "inactive"}
    report = report_of(
        [*resources, other_patient, not_ours, in_error, no_value, repeated, superseded, closed]
    )
    assert report.left_out == {
        "flag not active": 1,
        "for another patient": 1,
        "no number or no date": 1,
        "not final (e.g. entered in error)": 1,
        "not written by rejection-fhir": 1,
        "note superseded or entered in error": 1,
    }
    assert len(_chart(report, "44261-6").points) == 6, "the repeated page entry counts once"
    assert len(report.worksheets) == 21 and len(report.safety_flags) == 1


def test_absolute_subject_reference_and_patient_prefix_are_the_same_patient(clinic):
    resources = copy.deepcopy(clinic.resources)
    for resource in resources:
        resource["subject"] = {"reference": "https://ehr.example.org/fhir/Patient/p1"}
    report = report_of(resources, patient="Patient/p1")
    assert report.patient == "Patient/p1"
    assert len(report.charts) == 8 and len(report.worksheets) == 21
    assert report_of(resources, patient="p11").empty


def test_someone_elses_flag_is_not_called_a_safety_flag():
    flag = {
        "resourceType": "Flag",
        "id": "f9",
        "status": "active",
        "code": {"text": "Uses a wheelchair"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2025-01-02"},
    }
    report = report_of([flag])
    assert report.safety_flags == ()
    assert [(f.text, f.since.date, f.ours) for f in report.other_flags] == [
        ("Uses a wheelchair", "2025-01-02", False)
    ]
    assert not report.empty


def test_a_value_off_the_published_scale_widens_the_axis_instead_of_being_clipped():
    code = {"system": CODES, "code": "hopefulness", "display": "Hopefulness"}
    report = report_of(
        [survey_observation(code, 14), survey_observation(code, 3, "2026-11-02T10:00:00Z")]
    )
    chart = report.charts[0]
    assert (chart.measure.y_min, chart.measure.y_max) == (0, 14)
    assert chart.measure.title == "Hopefulness"


def test_an_unknown_code_gets_a_scale_that_fits_its_values():
    code = {"system": "http://example.org/codes", "code": "steps", "display": "Steps walked"}
    report = report_of(
        [survey_observation(code, 4200), survey_observation(code, 7800, "2026-11-03T10:00:00Z")]
    )
    measure = report.charts[0].measure
    assert measure.title == "Steps walked"
    assert measure.y_min == 0 and 7800 <= measure.y_max <= 10000
    assert measure.ticks[0] == 0 and measure.ticks[-1] == measure.y_max
    assert measure.bands == ()


def test_empty_report():
    report = report_of([])
    assert report.empty and report.period is None and report.charts == ()


@pytest.mark.parametrize(
    ("text", "utc", "display"),
    [
        ("2026-11-20T10:14:03+01:00", "2026-11-20T09:14:03+00:00", "2026-11-20 10:14"),
        ("2026-11-20T10:14:03.120Z", "2026-11-20T10:14:03+00:00", "2026-11-20 10:14"),
        ("2026-11-20T23:30:00-05:00", "2026-11-21T04:30:00+00:00", "2026-11-20 23:30"),
        ("2026-11-20T10:14:03", "2026-11-20T10:14:03+00:00", "2026-11-20 10:14"),
        ("2026-11-20", "2026-11-20T00:00:00+00:00", "2026-11-20"),
        ("2026-11", "2026-11-01T00:00:00+00:00", "2026-11"),
        ("2026", "2026-01-01T00:00:00+00:00", "2026"),
    ],
)
def test_fhir_dates(text, utc, display):
    when = parse_when(text)
    assert when.instant == dt.datetime.fromisoformat(utc)
    assert when.display == display


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-02-30", 20261120, None])
def test_unreadable_dates(text):
    assert parse_when(text) is None


def test_an_unreadable_item_9_flag_shows_in_the_safety_section():
    from rejection_fhir.ehr.entries import ResponseVersion
    from rejection_fhir.ehr.flag import safety_entries
    from rejection_fhir.scoring.model import SafetyAlert

    alert = SafetyAlert(
        rule="phq-9-item-9-unreadable",
        instrument="PHQ-9",
        link_id="phq9-9",
        answer={},
        weight=None,
        message="SAFETY: could not check the self-harm item (PHQ-9 item 9): not answered.",
        kind="phq9-item9-unreadable",
    )
    qr = {"subject": {"reference": "Patient/p1"}, "authored": "2026-11-20T10:00:00Z"}
    flags = [
        {**e["resource"], "id": "f1"}
        for e in safety_entries(qr, ResponseVersion("http://s", "r1", "1"), [alert])
    ]
    report = report_of(flags)
    (item,) = report.safety_flags
    assert item.text.startswith("SAFETY: could not check the self-harm item")
    assert item.detail == ""  # no answer to show, and not the code's display either
