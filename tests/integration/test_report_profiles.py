"""``report`` on every EHR profile (servers/profiles/, served by the local HAPI): seed, sync,
report.  The report searches only what each profile allows, says what it could not read,
and a positive PHQ-9 item 9 is in its safety box on every profile the sync writes to: as a
Flag where the EHR takes Flags (medplum-like), from the note titled "SAFETY ALERT:" where it
does not (oracle-, canvas-, epic-like).  athena-like takes no notes: the report still runs
there and says what it could not read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from rejection_fhir.commands.build import build_all
from rejection_fhir.commands.report import write_report
from rejection_fhir.settings import load_settings
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.worksheet.catalog import catalog_from_build
from rejection_fhir.worksheet.synthetic import ResponseFactory, encounter, patient

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ACCESS = "X-Rfhir-Test-Access"
LOINC = "http://loinc.org"
#: PHQ-9 answers: "Several days" for items 1-8, "More than half the days" for item 9.
SEVERAL_DAYS, MORE_THAN_HALF = "LA6569-3", "LA6570-1"

#: Profile -> (the report reads Flags there, responses are found per patient).
WRITABLE = {
    "medplum-like": (True, False),
    "oracle-like": (False, True),
    "canvas-like": (False, False),
    "epic-like": (False, False),
}


def _post(http: requests.Session, base: str, resource: dict[str, Any]) -> dict[str, Any]:
    answer = http.post(f"{base}/{resource['resourceType']}", json=resource, timeout=60)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def _world(base: str, tmp: Path) -> tuple[Any, str, str, list[str]]:
    """A patient with a visit, a PHQ-9 with item 9 positive and a worksheet, posted as a
    patient portal would (the test access stands in for the EHR's own Patient record)."""
    http = requests.Session()
    http.headers.update(
        {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", ACCESS: "all"}
    )
    canonical = f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"
    built, _ = build_all(REPO / "questionnaires", base_url=canonical)
    try:
        subject = f"Patient/{_post(http, base, patient(canonical, given='Report'))['id']}"
        start = datetime.now(UTC).replace(microsecond=0)
        visit = _post(http, base, encounter(subject, start - timedelta(hours=1)))
        since = visit["meta"]["lastUpdated"]
        start = max(start, datetime.fromisoformat(since.replace("Z", "+00:00"))).replace(
            microsecond=0
        )
        by_id = {q["id"]: q for q in built.questionnaires}
        phq9 = by_id["phq-9"]
        item9 = {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": f"{phq9['url']}|{phq9['version']}",
            "status": "completed",
            "subject": {"reference": subject},
            "author": {"reference": subject},
            "authored": (start + timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
            "encounter": {"reference": f"Encounter/{visit['id']}"},
            "item": [
                {
                    "linkId": f"phq9-{i}",
                    "answer": [
                        {
                            "valueCoding": {
                                "system": LOINC,
                                "code": MORE_THAN_HALF if i == 9 else SEVERAL_DAYS,
                            }
                        }
                    ],
                }
                for i in range(1, 10)
            ],
        }
        worksheet = ResponseFactory(seed=16).response(
            by_id["core-beliefs"], subject=subject, authored=start + timedelta(seconds=2)
        )
        worksheet["authored"] = worksheet["authored"].replace("+00:00", "Z")
        worksheet["encounter"] = {"reference": f"Encounter/{visit['id']}"}
        ids = [_post(http, base, qr)["id"] for qr in (item9, worksheet)]
    finally:
        http.close()
    patients = tmp / "patients.txt"
    patients.write_text(subject.split("/")[1] + "\n", encoding="utf-8")
    return built, subject, since, ids


@pytest.mark.parametrize("profile", list(WRITABLE))
def test_report_after_sync_shows_the_item9_alert_and_the_notes(
    profile: str, fhir_server: str, tmp_path: Path
) -> None:
    reads_flags, per_patient = WRITABLE[profile]
    base = f"{fhir_server}/{profile}"
    built, subject, since, _ids = _world(base, tmp_path)
    catalog = catalog_from_build(built)
    settings = load_settings({"server": base}, env={})
    synced = sync(
        settings,
        SyncOptions(
            source=base,
            state_path=tmp_path / "state.sqlite3",
            since=since,
            patients_file=tmp_path / "patients.txt" if per_patient else None,
        ),
        catalog,
    )
    assert synced.ok and synced.tally.written == 2, (synced.failed[:2], synced.rejected[:2])

    out = write_report(settings, subject, catalog, out=tmp_path / "report.html")
    report = out.report
    html = out.html_path.read_text(encoding="utf-8")
    # The notes: both responses' notes, read whatever their form on this EHR.
    titles = sorted(n.title for n in report.worksheets)
    assert len(titles) == 2, titles
    assert any("PHQ-9" in t for t in titles) and all(n.blocks for n in report.worksheets)
    # The safety alert for item 9, in the red box, Flag or note.
    assert len(report.safety_flags) == 1, report.safety_flags
    (alert,) = report.safety_flags
    assert "item 9" in alert.text and "More than half the days" in (alert.text + alert.detail)
    assert alert.kind == ("flag" if reads_flags else "note")
    assert 'class="safety"' in html and "active " in html and "to review" in html
    if reads_flags:
        assert report.not_read == () and report.flags_read
    else:
        assert not report.flags_read and report.notes_read
        assert any(
            line.startswith("Flags: this EHR does not let Flag be searched")
            for line in report.not_read
        )
        assert "This EHR keeps no Flags; safety alerts are in the notes" in html


def test_report_runs_on_athena_like_and_says_what_it_could_not_read(
    fhir_server: str, tmp_path: Path
) -> None:
    """athenahealth takes no note over FHIR (sync refuses there): the report still reads
    what the EHR allows, by patient, and says that Flags cannot be read."""
    base = f"{fhir_server}/athena-like"
    built, subject, _since, _ids = _world(base, tmp_path)
    settings = load_settings({"server": base}, env={})
    out = write_report(settings, subject, catalog_from_build(built), out=tmp_path / "r.html")
    report = out.report
    assert report.worksheets == () and report.safety_flags == ()
    assert not report.flags_read and report.notes_read
    assert [line.split(":")[0] for line in report.not_read] == ["Flags"]
    html = out.html_path.read_text(encoding="utf-8")
    assert "Not read from this EHR" in html
    assert "This EHR keeps no Flags; safety alerts are in the notes, and no current note" in html
