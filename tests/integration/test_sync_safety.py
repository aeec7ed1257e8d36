"""sync against HAPI: the item 9 rule on PHQ-9s not shaped like ours still writes its Flag."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rejection_fhir.commands.build import build_all
from rejection_fhir.commands.publish import publish
from rejection_fhir.ehr.entries import DERIVED_SYSTEM
from rejection_fhir.scoring import PHQ9
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.worksheet.catalog import catalog_from_build
from rejection_fhir.worksheet.synthetic import patient

pytestmark = pytest.mark.integration


def _flags(client, subject):
    return list(client.search("Flag", {"subject": subject, "_count": "50"}))


def test_a_foreign_phq9_with_item9_positive_gets_its_flag(
    repo, settings, client, fhir_server, canonical_base, tmp_path
):
    built, _ = build_all(repo / "questionnaires", base_url=canonical_base)
    publish(repo / "questionnaires", settings, base_url=canonical_base)
    subject = f"Patient/{client.create(patient(canonical_base, given='Safety')).id}"
    url = f"{canonical_base}/Questionnaire/phq-9"
    # Another system's PHQ-9: a version of ours nobody published, linkIds as LOINC paths,
    # answer Codings without their system, item 9 "More than half the days".
    foreign = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{url}|2024.2",
        "status": "completed",
        "subject": {"reference": subject},
        "authored": "2026-11-20T10:14:03+00:00",
        "item": [
            {
                "linkId": "/44249-1",
                "item": [
                    {"linkId": f"/44249-1/{code}", "answer": [{"valueCoding": {"code": answer}}]}
                    for code, answer in zip(
                        PHQ9.items, ["LA6569-3"] * 8 + ["LA6570-1"], strict=True
                    )
                ],
            }
        ],
    }
    # Ours, item 9 left unanswered: the Flag says it could not be checked.
    version = next(q for q in built.questionnaires if q["id"] == "phq-9")["version"]
    unanswered = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{url}|{version}",
        "status": "completed",
        "subject": {"reference": subject},
        "authored": "2026-11-21T10:14:03+00:00",
        "item": [
            {
                "linkId": f"phq9-{i}",
                "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5"}}],
            }
            for i in range(1, 9)
        ],
    }
    created = [client.create(qr, sensitive=True).id for qr in (foreign, unanswered)]
    recorded = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    options = SyncOptions(source=fhir_server, state_path=tmp_path / "state.sqlite3")

    report = sync(settings, options, catalog_from_build(built), recorded=recorded)

    # The foreign response is rejected (its Questionnaire version is unknown) and says so,
    # yet its Flag is written; ours is written in full.
    assert report.tally.rejected == 1 and report.tally.written == 1, report.rejected
    assert report.rejected[0].response.startswith(f"QuestionnaireResponse/{created[0]}/")
    flags = _flags(client, subject)
    by_response = {
        next(
            e["valueReference"]["reference"]
            for e in f["extension"]
            if e["url"] == "http://hl7.org/fhir/StructureDefinition/flag-detail"
        ): f
        for f in flags
    }
    assert set(by_response) == {f"QuestionnaireResponse/{rid}" for rid in created}
    positive = by_response[f"QuestionnaireResponse/{created[0]}"]
    assert positive["status"] == "active"
    assert positive["code"]["coding"][0]["code"] == "6471006"
    assert positive["code"]["text"].startswith("SAFETY: PHQ-9 item 9")
    assert "More than half the days" in positive["code"]["text"]
    assert positive["identifier"][0]["system"] == DERIVED_SYSTEM
    unreadable = by_response[f"QuestionnaireResponse/{created[1]}"]
    assert unreadable["code"]["coding"][0]["code"] == "phq9-item9-unreadable"
    assert unreadable["code"]["text"].startswith("SAFETY: could not check the self-harm item")
    # The rejected response got no note; ours did.
    notes = list(client.search("DocumentReference", {"subject": subject}))
    assert [n["context"]["related"][0]["reference"] for n in notes] == [
        f"QuestionnaireResponse/{created[1]}"
    ]

    again = sync(settings, options, catalog_from_build(built), recorded=recorded)
    assert again.tally.written == 0 and again.tally.rejected == 0
    assert len(_flags(client, subject)) == 2, "a rerun writes nothing twice"
