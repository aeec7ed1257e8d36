"""A form made elsewhere (questionnaires/weekly-check-in.json, LHC-Forms' shape) goes the
way of our worksheets against HAPI: validate → version guard → publish → sync, where a
response to it gets a note written by the generic engine."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime

import pytest

from rejection_fhir.commands.build import build_all
from rejection_fhir.commands.publish import publish
from rejection_fhir.commands.validate import validate
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.worksheet.catalog import catalog_from_build
from rejection_fhir.worksheet.synthetic import patient

pytestmark = pytest.mark.integration

FORM = "weekly-check-in"


def _note_text(note):
    return "\n".join(
        base64.b64decode(c["attachment"]["data"]).decode("utf-8")
        for c in note["content"]
        if "data" in c["attachment"]
    )


def test_form_made_elsewhere_goes_through_validate_guard_publish_and_sync(
    repo, settings, client, fhir_server, canonical_base, tmp_path, monkeypatch
):
    monkeypatch.delenv("RFHIR_AGAINST", raising=False)
    source = tmp_path / "questionnaires"
    shutil.copytree(repo / "questionnaires", source)
    form_path = source / f"{FORM}.json"

    # validate: the same rules as ours, nothing to report.
    assert [
        f for f in validate([source], base_url=canonical_base) if f.severity != "information"
    ] == []

    # publish: in the same transaction as ours, under the chosen canonical base.
    report = publish(source, settings, base_url=canonical_base)
    built, _ = build_all(source, base_url=canonical_base)
    form = next(q for q in built.questionnaires if q["id"] == FORM)
    assert form["url"] == f"{canonical_base}/Questionnaire/{FORM}"
    assert report.counts() == {"create": len(built.resources)}
    (held,) = client.search("Questionnaire", {"url": form["url"], "version": "1.0.0"})
    assert held["item"] == form["item"]

    # version guard against the server: a reworded question needs a new version.
    text = form_path.read_text(encoding="utf-8")
    form_path.write_text(
        text.replace("how many hours did you sleep?", "how many hours did you sleep, roughly?"),
        encoding="utf-8",
    )
    found = [
        f
        for f in validate([source], base_url=canonical_base, against=fhir_server)
        if f.severity == "error"
    ]
    assert [(f.rule, f.file.endswith(f"{FORM}.json")) for f in found] == [
        ("version-unchanged", True)
    ]
    assert "set version: 1.1.0" in found[0].message
    form_path.write_text(text, encoding="utf-8")  # as published

    # sync: a response to the form gets a note, summarised by the generic engine.
    subject = client.create(patient(f"{canonical_base}-forms", given="Robin"))
    response = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{form['url']}|{form['version']}",
        "status": "completed",
        "subject": {"reference": f"Patient/{subject.id}"},
        "authored": "2026-11-27T18:00:00Z",
        "item": [
            {
                "linkId": "mood",
                "answer": [{"valueCoding": form["item"][0]["answerOption"][3]["valueCoding"]}],
            },
            {"linkId": "sleep-hours", "answer": [{"valueDecimal": 7.5}]},
            {"linkId": "went-well", "answer": [{"valueString": "Called my sister"}]},
            {"linkId": "tried-strategy", "answer": [{"valueBoolean": True}]},
            {
                "linkId": "strategy-notes",
                "answer": [{"valueString": "Self-compassion, helped"}],
            },
        ],
    }
    created = client.create(response, sensitive=True)
    recorded = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    options = SyncOptions(source=fhir_server, state_path=tmp_path / "state.sqlite3")
    result = sync(settings, options, catalog_from_build(built), recorded=recorded)
    assert result.ok, (result.rejected[:3], result.failed[:3])
    assert result.tally.written == 1
    (note,) = client.search("DocumentReference", {"related": f"QuestionnaireResponse/{created.id}"})
    text = _note_text(note)
    assert "Weekly check-in" in text
    for answer in ("Good", "7.5", "Called my sister", "Self-compassion, helped"):
        assert answer in text, answer
    assert sync(settings, options, catalog_from_build(built), recorded=recorded).tally.written == 0
    assert json.loads(form_path.read_text(encoding="utf-8"))["version"] == "1.0.0"
