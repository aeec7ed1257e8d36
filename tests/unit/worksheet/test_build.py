"""The built resources, checked against golden files (compared as parsed JSON)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rejection_fhir.commands.build import BUNDLE_FILE, build
from rejection_fhir.worksheet import build as builder
from rejection_fhir.worksheet import rules

GOLDEN = Path(__file__).parent / "golden"
WORKSHEETS = [
    "core-beliefs",
    "future-focus",
    "reframe-redirection",
    "rejection-log",
    "self-compassion",
    "validate-emotions",
]
#: Standard outcome measures built beside the worksheets (docs/instruments.md).
INSTRUMENTS = ["gad-7", "phq-9"]
#: Questionnaire JSON authored elsewhere, kept beside the YAML (worksheet.foreign).
FORMS = ["weekly-check-in"]


def _golden(name: str, resource: dict) -> dict:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(resource, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_six_worksheets_are_built(built):
    built_ids = {q["id"] for q in built.questionnaires}
    assert set(WORKSHEETS) <= built_ids
    assert set(INSTRUMENTS) <= built_ids
    assert set(FORMS) <= built_ids


@pytest.mark.parametrize("resource_file", sorted(p.name for p in GOLDEN.glob("*.json")))
def test_built_resource_matches_golden_file(built, resource_file):
    by_file = {builder.file_name(r): r for r in built.resources}
    assert resource_file in by_file, (
        f"{resource_file} is no longer built; delete the golden file or restore the source"
    )
    assert by_file[resource_file] == _golden(resource_file, by_file[resource_file])


def test_every_built_resource_has_a_golden_file(built):
    missing = {builder.file_name(r) for r in built.resources} - {
        p.name for p in GOLDEN.glob("*.json")
    }
    assert not missing, (
        f"no golden file for {missing}; run UPDATE_GOLDEN=1 pytest tests/unit/worksheet"
    )


@pytest.mark.parametrize("name", WORKSHEETS + INSTRUMENTS + FORMS)
def test_worksheet_passes_r4b_model_and_every_rule(built, name):
    q = next(q for q in built.questionnaires if q["id"] == name)
    cs = built.codesystem
    assert rules.check_structure(q) == []
    assert rules.check_questionnaire(q, {cs["url"]: {c["code"] for c in cs["concept"]}}) == []


def test_every_worksheet_carries_the_required_metadata(built):
    for q in built.questionnaires:
        for field in (
            "url",
            "version",
            "status",
            "title",
            "description",
            "purpose",
            "publisher",
            "copyright",
        ):
            assert q.get(field), f"{q['id']} lacks {field}"
        assert q["url"].endswith(f"/Questionnaire/{q['id']}")
        # The instruments carry their own copyright and citations instead of the guide's.
        if q["id"] in WORKSHEETS:
            for citation in ("Kross", "Leary", "Weir", "Pingol"):
                assert citation in q["copyright"]
        elif q["id"] in FORMS:
            assert "CC BY 4.0" in q["copyright"]  # its own, as written where it was made
        else:
            assert "Pfizer" in q["copyright"] and "LOINC" in q["copyright"]


def test_other_specify_is_enabled_only_by_other(built):
    q = next(q for q in built.questionnaires if q["id"] == "rejection-log")
    other = next(i for i in q["item"] if i["linkId"] == "kind-other")
    assert other["enableWhen"] == [
        {
            "question": "kind",
            "operator": "=",
            "answerCoding": {"system": built.codesystem["url"], "code": "other"},
        }
    ]


def test_scales_carry_min_max_and_slider(built):
    q = next(q for q in built.questionnaires if q["id"] == "core-beliefs")
    before = next(i for i in q["item"] if i["linkId"] == "strength-before")
    urls = {e["url"]: e for e in before["extension"]}
    assert urls[builder.MIN_VALUE]["valueInteger"] == 0
    assert urls[builder.MAX_VALUE]["valueInteger"] == 100
    assert urls[builder.ITEM_CONTROL]["valueCodeableConcept"]["coding"][0]["code"] == "slider"
    assert urls[builder.UNIT]["valueCoding"]["code"] == "%"


def test_base_url_is_configurable(repo):
    from rejection_fhir.commands.build import build_all

    result, _ = build_all(repo / "questionnaires", base_url="https://clinic.example/fhir/")
    assert {q["url"] for q in result.questionnaires} == {
        f"https://clinic.example/fhir/Questionnaire/{n}" for n in WORKSHEETS + INSTRUMENTS + FORMS
    }
    coded = result.questionnaires[0]["item"]
    systems = {o["valueCoding"]["system"] for i in coded for o in i.get("answerOption", [])}
    assert systems == {"https://clinic.example/fhir/CodeSystem/coping-with-rejection"}


def test_transaction_bundle_is_conditional_on_url_and_version(built):
    bundle = built.bundle()
    assert bundle["type"] == "transaction"
    assert len(bundle["entry"]) == len(built.resources)
    for entry in bundle["entry"]:
        r = entry["resource"]
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["ifNoneExist"].startswith("url=")
        assert f"version={r['version']}" in entry["request"]["ifNoneExist"]


def test_build_output_is_byte_identical_when_run_again(repo, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    build(repo / "questionnaires", first)
    build(repo / "questionnaires", second)
    build(repo / "questionnaires", first)  # over an existing folder too
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert BUNDLE_FILE in names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_build_removes_resources_no_longer_built_but_keeps_foreign_files(repo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "Questionnaire-retired-worksheet.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    build(repo / "questionnaires", out)
    assert not (out / "Questionnaire-retired-worksheet.json").exists()
    assert (out / "notes.txt").read_text() == "mine"


def test_each_questionnaire_carries_a_generated_narrative_of_its_items(built):
    from xml.etree import ElementTree as ET

    for q in built.questionnaires:
        text = q["text"]
        assert text["status"] == "generated"
        div = ET.fromstring(text["div"])  # well-formed XHTML
        assert div.tag == "{http://www.w3.org/1999/xhtml}div"
        shown = "".join(div.itertext())
        assert q["title"] in shown

        def walk(items):
            for item in items:
                yield item
                yield from walk(item.get("item", []))

        for item in walk(q["item"]):
            assert item["text"] in shown, (q["id"], item["linkId"])
    assert list(built.questionnaires[0])[:3] == ["resourceType", "id", "text"]


def test_the_narrative_escapes_what_it_quotes():
    q = {
        "resourceType": "Questionnaire",
        "title": "<b>T</b> & co",
        "item": [{"linkId": "a", "type": "string", "text": "<script>alert(1)</script>"}],
    }
    div = builder.narrative(q)["div"]
    assert "<script>" not in div and "&lt;script&gt;" in div and "&amp; co" in div
