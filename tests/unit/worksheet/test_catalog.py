"""The catalog: the worksheets' own knowledge, passed explicitly to the library functions.

Issue 14: the worksheet summarizers (and the scoring ValueSets) lived in module-level
registries that only the CLI filled, so ``sync()`` and ``summarize_files()`` called as a
library quietly fell back to generic summaries.  Here they are called without the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from rejection_fhir.commands.summarize import summarize_files
from rejection_fhir.settings import load_settings
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.worksheet.catalog import EMPTY, catalog_from_build
from tests.fakefhir import BASE
from tests.unit.sync.test_run import RECORDED

DATA = Path(__file__).parents[2] / "data"
HIGHLIGHTS = {"Kind of rejection", "Strongest emotions", "Feels it says about my worth"}


def _rejection_log() -> dict:
    return json.loads((DATA / "qr-rejection-log.json").read_text())


def test_sync_called_as_a_library_writes_worksheet_summaries(tmp_path, catalog, qr_at, fake_fhir):
    server = fake_fhir
    server.add(qr_at("a", "2026-11-20T10:00:00Z"))
    settings = load_settings({"server": BASE}, env={})
    options = SyncOptions(source=BASE, state_path=tmp_path / "state.sqlite3", keep_summaries=True)
    report = sync(settings, options, catalog, recorded=RECORDED)
    assert report.tally.written == 1
    ((_, summary),) = report.summaries
    assert {line.label for line in summary.highlights} >= HIGHLIGHTS
    (bundle,) = server.committed
    (note,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"]
    assert "Kind of rejection" in json.dumps(note)


def test_summarize_files_called_as_a_library_gives_worksheet_summaries(tmp_path, catalog):
    path = tmp_path / "responses.ndjson"
    path.write_bytes(orjson.dumps(_rejection_log()) + b"\n")
    written: list[str] = []
    report = summarize_files([path], catalog, written.append, fmt="json")
    assert report.summarised == 1 and not report.problems
    highlights = {h["label"] for h in orjson.loads(written[0])["highlights"]}
    assert highlights >= HIGHLIGHTS


def test_an_empty_catalog_gives_the_generic_summary(tmp_path, built):
    path = tmp_path / "responses.ndjson"
    path.write_bytes(orjson.dumps(_rejection_log()) + b"\n")
    written: list[str] = []
    summarize_files([path], EMPTY.with_resources(built.questionnaires), written.append, fmt="json")
    assert orjson.loads(written[0])["highlights"] == []


def test_summarizers_and_measures_follow_the_base_url_built_with(built):
    from rejection_fhir.commands.build import build_all
    from tests.conftest import QUESTIONNAIRES

    clinic, _ = build_all(QUESTIONNAIRES, base_url="https://clinic.example.org/fhir")
    catalog = catalog_from_build(clinic)
    url = "https://clinic.example.org/fhir/Questionnaire/core-beliefs"
    assert catalog.summarizer(f"{url}|9.9.9") is catalog.summarizers[url]
    assert catalog.summarizer("https://rejection-fhir.org/fhir/Questionnaire/core-beliefs") is None
    assert catalog.code_system == "https://clinic.example.org/fhir/CodeSystem/coping-with-rejection"
    assert {m.system for m in catalog.measures} == {catalog.code_system}
    assert len(catalog.summarizers) == 6
