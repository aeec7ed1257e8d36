"""sync --bulk against HAPI: the notes a search sync would write, from a Bulk Data export."""

from __future__ import annotations

import base64

import pytest

from rejection_fhir.commands.build import build_all
from rejection_fhir.ehr.entries import DERIVED_SYSTEM
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.worksheet.catalog import catalog_from_build
from rejection_fhir.worksheet.synthetic import ResponseFactory, patient

pytestmark = pytest.mark.integration

N = 60


@pytest.fixture
def world(repo, client, canonical_base, tmp_path):
    """N synthetic responses from two fresh patients, and the server time before them."""
    built, _ = build_all(repo / "questionnaires", base_url=canonical_base)
    patients = []
    for i in range(2):
        created = client.create(patient(f"{canonical_base}-bulk-{i}", given=f"Bulk{i}"))
        patients.append(f"Patient/{created.id}")
    since = client.read("Patient", patients[0].split("/")[1])["meta"]["lastUpdated"]
    qrs = list(ResponseFactory(seed=23).many(built.questionnaires, patients, N))
    client.transaction(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": qr, "request": {"method": "POST", "url": "QuestionnaireResponse"}}
                for qr in qrs
            ],
        },
        sensitive=True,
    )
    yield {"built": built, "patients": patients, "since": since, "tmp": tmp_path}


def _options(fhir_server, world, name, **kw):
    return SyncOptions(
        source=fhir_server,
        state_path=world["tmp"] / f"{name}.sqlite3",
        since=world["since"],
        batch_size=20,
        **kw,
    )


def _notes_on_server(client, world):
    found = {}
    for subject in world["patients"]:
        for note in client.search("DocumentReference", {"subject": subject, "_count": "200"}):
            key = next(i["value"] for i in note["identifier"] if i["system"] == DERIVED_SYSTEM)
            found[key] = base64.b64decode(note["content"][0]["attachment"]["data"]).decode()
    return found


def _planned_notes(bundles):
    found = {}
    for bundle in bundles:
        for entry in bundle["entry"]:
            note = entry["resource"]
            if note["resourceType"] == "DocumentReference" and entry["request"]["method"] == "POST":
                key = note["identifier"][0]["value"]
                found[key] = base64.b64decode(note["content"][0]["attachment"]["data"]).decode()
    return found


def test_bulk_sync_writes_what_a_search_sync_would_and_a_rerun_writes_nothing(
    settings, client, fhir_server, world
):
    catalog = catalog_from_build(world["built"])
    by_search: list[dict] = []
    planned = sync(
        settings,
        _options(fhir_server, world, "search", dry_run=True),
        catalog,
        recorded="2026-11-26T12:00:00Z",
        on_transaction=by_search.append,
    )
    assert planned.tally.written == N

    report = sync(
        settings,
        _options(fhir_server, world, "bulk", bulk=True, concurrency=2),
        catalog,
        recorded="2026-11-26T12:00:00Z",
    )
    assert report.ok, (report.rejected[:3], report.failed[:3])
    assert report.tally.written == N
    assert report.cursor_after is not None and report.cursor_after > world["since"]

    notes = _notes_on_server(client, world)
    assert len(notes) == N
    assert notes == _planned_notes(by_search), "the same notes, word for word"

    again = sync(
        settings,
        _options(fhir_server, world, "bulk", bulk=True, concurrency=2),
        catalog,
        recorded="2026-11-26T12:00:00Z",
    )
    assert again.ok and again.tally.written == 0
    assert len(_notes_on_server(client, world)) == N

    # The search path finds nothing new either: the bulk run's notes are the ones it would
    # have written (same identifiers), so its conditional creates all match.
    searched = sync(
        settings,
        _options(fhir_server, world, "search-after"),
        catalog,
        recorded="2026-11-26T12:00:00Z",
    )
    assert searched.ok and searched.tally.written == N
    assert len(_notes_on_server(client, world)) == N
