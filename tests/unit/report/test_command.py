"""``rejection-fhir report`` against the in-memory server (tests/fakefhir.py): searches,
paging, files."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from rejection_fhir.cli import main
from rejection_fhir.commands.report import fetch_records, patient_id, write_report
from rejection_fhir.errors import AuthError, ConfigError, UsageError
from rejection_fhir.settings import make_client
from tests.fakefhir import BASE, FakeFhir, request_to
from tests.unit.report.records import Clinic, of_type

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
TYPES = ("Observation", "DocumentReference", "Flag")
#: Small pages, so every search has to follow next links.
PAGE = 10


@pytest.fixture
def server(fake_fhir: FakeFhir) -> FakeFhir:
    """The EHR, empty, answering searches in pages of ten through HAPI-style
    ``[base]?_getpages=`` next links."""
    fake_fhir.page_size = PAGE
    return fake_fhir


@pytest.fixture
def ehr(server: FakeFhir, clinic: Clinic) -> FakeFhir:
    """The EHR holding what the sync wrote for the ten-week course of care."""
    server.add(*clinic.resources)
    return server


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in (
        "RFHIR_SERVER",
        "RFHIR_CONFIG",
        "RFHIR_TOKEN",
        "RFHIR_TOKEN_FILE",
        "RFHIR_CHROMIUM",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_searches_by_subject_with_the_right_filters_and_follows_every_page(clinic, settings, ehr):
    client = make_client(settings)
    records = fetch_records(client, "Patient/p1")
    assert ehr.searched("Observation") == [
        {
            "subject": ["Patient/p1"],
            "category": ["http://terminology.hl7.org/CodeSystem/observation-category|survey"],
            "_count": ["100"],
        }
    ]
    assert ehr.searched("DocumentReference") == [
        {
            "subject": ["Patient/p1"],
            "type": ["http://loinc.org|74465-6"],
            "status": ["current"],
            "_count": ["100"],
        }
    ]
    assert ehr.searched("Flag") == [{"subject": ["Patient/p1"], "_count": ["100"]}]
    held = {t: of_type(clinic.resources, t) for t in TYPES}
    assert sorted(ehr.pages) == sorted(
        (t, n) for t in TYPES for n in range(1, max(1, math.ceil(len(held[t]) / PAGE)) + 1)
    )
    assert ("Observation", 3) in ehr.pages, "next links followed to the last page"
    assert len(records.observations) == len(held["Observation"]) == 29
    assert len(records.documents) == 21 and len(records.flags) == 1
    assert {r["id"] for r in records.observations} == {r["id"] for r in held["Observation"]}


def test_write_report_writes_one_self_contained_page(ehr, settings, tmp_path, catalog):
    out = tmp_path / "reports" / "p1.html"
    written = write_report(settings, "p1", catalog, out=out, now=lambda: NOW)
    html = out.read_text(encoding="utf-8")
    assert written.html_path == out and written.pdf_path is None
    report = written.report
    assert (len(report.charts), len(report.worksheets), len(report.safety_flags)) == (8, 21, 1)
    assert report.server == BASE and report.generated_at == NOW
    assert "2026-11-26 12:00 UTC" in html
    assert html.count('class="point"') == 29
    assert "<script" not in html and "http://" not in html.replace(BASE, "").replace(
        "http://www.w3.org/", ""
    )


def test_the_report_names_the_client_from_the_patient_resource(ehr, settings, tmp_path, catalog):
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": "Example", "given": ["Sam"]}],
        "birthDate": "1990-04-02",
    }
    ehr.add(patient)
    written = write_report(settings, "p1", catalog, out=tmp_path / "r.html", now=lambda: NOW)
    assert (written.report.patient_name, written.report.birth_date) == ("Sam Example", "1990-04-02")
    assert "Sam Example, born 1990-04-02 (Patient/p1)" in (tmp_path / "r.html").read_text()


def test_a_hidden_patient_resource_still_gives_a_report(ehr, settings, tmp_path, catalog):
    assert ehr.get("Patient", "p1") is None  # its read answers 404
    written = write_report(settings, "p1", catalog, out=tmp_path / "r.html", now=lambda: NOW)
    assert written.report.patient_name is None and len(written.report.safety_flags) == 1
    assert "name and birth date not available" in (tmp_path / "r.html").read_text()


def test_cli_writes_the_report_and_says_only_counts(ehr, capsys, tmp_path):
    main(["report", "--patient", "p1", "--server", BASE, "--out", str(tmp_path / "r.html")])
    out = capsys.readouterr().out
    assert out.strip() == (
        f"wrote {tmp_path / 'r.html'}: 1 active safety flag, 8 chart(s), 21 worksheet note(s)"
    )
    assert (tmp_path / "r.html").is_file()


def test_no_data_gives_the_empty_report(settings, tmp_path, server, catalog):
    written = write_report(settings, "p1", catalog, out=tmp_path / "r.html", now=lambda: NOW)
    assert written.report.empty
    assert "No responses synced yet" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("bad", ["", "p 1", "../Patient/1", "Patient/", "a" * 65, "p1?x=1"])
def test_patient_must_be_an_id(bad):
    with pytest.raises(UsageError, match="--patient must be a FHIR Patient id"):
        patient_id(bad)


def test_bad_patient_is_a_usage_error_before_any_request(capsys, tmp_path, server):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--patient", "../x", "--server", BASE, "--out", str(tmp_path / "r.html")])
    assert exit_info.value.code == 2
    assert server.requests == []


def test_pdf_without_chromium_fails_clearly_before_any_request(
    monkeypatch, capsys, tmp_path, server
):
    monkeypatch.setenv("RFHIR_CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--patient", "p1", "--server", BASE, "--pdf", str(tmp_path / "r.pdf")])
    assert exit_info.value.code == ConfigError.exit_code == 4
    err = capsys.readouterr().err
    assert "--pdf/--png need Chromium" in err and "apt-get install chromium" in err
    assert server.requests == []
    assert not (tmp_path / "report.html").exists()


def test_server_refusal_names_the_search_without_the_patient(settings, tmp_path, ehr, catalog):
    ehr.fail(403, when=request_to("GET", "Observation"))
    with pytest.raises(AuthError) as error:
        write_report(settings, "secret-patient-7", catalog, out=tmp_path / "r.html")
    assert "GET Observation" in str(error.value)
    assert "secret-patient-7" not in str(error.value)
    assert not (tmp_path / "r.html").exists()


def test_png_without_playwright_fails_before_writing_anything(
    monkeypatch, capsys, tmp_path, server
):
    import sys

    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    monkeypatch.setenv("RFHIR_CHROMIUM", str(chromium))
    monkeypatch.setitem(sys.modules, "playwright", None)
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--patient", "p1", "--server", BASE, "--png", str(tmp_path / "r.png")])
    assert exit_info.value.code == ConfigError.exit_code == 4
    err = capsys.readouterr().err
    assert "playwright" in err and "rejection-fhir[browser]" in err
    assert server.requests == []
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "r.png").exists()


def test_an_unwritable_report_path_is_an_output_error(ehr, capsys, tmp_path):
    blocker = tmp_path / "FILE"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--patient", "p1", "--server", BASE, "--out", str(blocker / "r.html")])
    assert exit_info.value.code == 14
    assert f"{blocker} is a file, not a directory" in capsys.readouterr().err


CLINIC_BASE = "https://clinic.example.org/fhir"


def test_a_clinic_base_url_keeps_the_worksheet_charts_titled_and_scaled(tmp_path, server):
    """Issue 14: the worksheets' measures were keyed on the default base's CodeSystem, so
    a clinic that built with --base-url got its worksheet charts untitled and unscaled."""
    from rejection_fhir.commands.build import build_all
    from rejection_fhir.worksheet.catalog import catalog_from_build
    from tests.conftest import QUESTIONNAIRES
    from tests.unit.report.records import course_of_care

    built, _ = build_all(QUESTIONNAIRES, base_url=CLINIC_BASE)
    clinic = course_of_care(catalog_from_build(built))
    systems = {
        c["system"]
        for o in clinic.resources
        if o["resourceType"] == "Observation"
        for c in o["code"]["coding"]
    }
    assert f"{CLINIC_BASE}/CodeSystem/coping-with-rejection" in systems
    server.add(*clinic.resources)
    out = tmp_path / "r.html"
    main(
        [
            "report",
            "--patient",
            "p1",
            "--server",
            BASE,
            "--worksheets",
            str(QUESTIONNAIRES),
            "--base-url",
            CLINIC_BASE,
            "--out",
            str(out),
        ]
    )
    html = out.read_text(encoding="utf-8")
    for heading in ("Hopefulness", "Self-kindness", "Core belief strength, before the worksheet"):
        assert f">{heading}</h3>" in html
    assert "Rating (0–10)" in html and "Belief strength (%)" in html
