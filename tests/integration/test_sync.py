"""sync against HAPI: notes, Observations, Provenance and Flags, exactly once."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from rejection_fhir.commands.build import build_all
from rejection_fhir.commands.publish import publish
from rejection_fhir.ehr.extract import observation_values
from rejection_fhir.response.answers import resolve_response
from rejection_fhir.scoring import safety_alerts, score_response
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.worksheet.catalog import catalog_from_build
from rejection_fhir.worksheet.synthetic import ResponseFactory, patient

pytestmark = pytest.mark.integration

N = 200


def _count(client, rtype, params):
    return sum(1 for _ in client.search(rtype, {**params, "_count": "200"}))


@pytest.fixture
def world(repo, settings, client, canonical_base, tmp_path):
    """Published worksheets, three patients and N synthetic responses on HAPI."""
    built, _ = build_all(repo / "questionnaires", base_url=canonical_base)
    publish(repo / "questionnaires", settings, base_url=canonical_base)
    patients = []
    for i in range(3):
        created = client.create(patient(f"{canonical_base}-{i}", given=f"Client{i}"))
        patients.append(f"Patient/{created.id}")
    factory = ResponseFactory(seed=11)
    qrs = list(factory.many(built.questionnaires, patients, N))
    entries = [
        {"resource": qr, "request": {"method": "POST", "url": "QuestionnaireResponse"}}
        for qr in qrs
    ]
    result = client.transaction(
        {"resourceType": "Bundle", "type": "transaction", "entry": entries}, sensitive=True
    )
    for qr, got in zip(qrs, result.entries, strict=True):
        qr["id"] = got.id
    # A Provenance.recorded instant of this test's own, so its Provenance can be counted.
    recorded = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    yield {
        "built": built,
        "patients": patients,
        "qrs": qrs,
        "state": tmp_path / "state.sqlite3",
        "recorded": recorded,
    }


def _sync(settings, fhir_server, world, **kw):
    options = SyncOptions(source=fhir_server, state_path=world["state"], batch_size=50, **kw)
    return sync(settings, options, catalog_from_build(world["built"]), recorded=world["recorded"])


def _expected(world):
    by_id = {q["url"]: q for q in world["built"].questionnaires}
    observations = flags = 0
    for qr in world["qrs"]:
        q = by_id[qr["questionnaire"].split("|")[0]]
        observations += len(observation_values(resolve_response(qr, q)))
        observations += sum(1 for s in score_response(qr, q) if s.scorable and s.value is not None)
        flags += len(safety_alerts(qr, q))
    return observations, flags


def _held(client, world, rtype):
    return sum(_count(client, rtype, {"subject": p}) for p in world["patients"])


def test_sync_writes_everything_once_and_a_rerun_writes_nothing(
    settings, client, fhir_server, world
):
    report = _sync(settings, fhir_server, world)
    assert report.ok, (report.rejected[:3], report.failed[:3])
    assert report.tally.written == N
    observations, flags = _expected(world)
    assert _held(client, world, "DocumentReference") == N
    assert _held(client, world, "Observation") == observations
    assert _held(client, world, "Flag") == flags
    assert _count(client, "Provenance", {"recorded": world["recorded"]}) == N
    sample = world["qrs"][0]
    (note,) = client.search(
        "DocumentReference",
        {
            "subject": sample["subject"]["reference"],
            "related": f"QuestionnaireResponse/{sample['id']}",
        },
    )
    (prov,) = client.search("Provenance", {"target": f"DocumentReference/{note['id']}"})
    assert prov["entity"][0]["what"]["reference"].startswith(
        f"QuestionnaireResponse/{sample['id']}/_history/"
    )
    assert note["context"]["related"][0]["reference"] == f"QuestionnaireResponse/{sample['id']}"

    again = _sync(settings, fhir_server, world)
    assert again.tally.written == 0 and again.ok
    assert _held(client, world, "DocumentReference") == N
    assert _held(client, world, "Observation") == observations
    assert _held(client, world, "Flag") == flags
    assert _count(client, "Provenance", {"recorded": world["recorded"]}) == N


def test_amended_response_gets_one_superseding_note(settings, client, fhir_server, world):
    _sync(settings, fhir_server, world)
    target = next(qr for qr in world["qrs"] if "core-beliefs" in qr["questionnaire"])
    held = client.read("QuestionnaireResponse", target["id"])
    amended = copy.deepcopy(held)
    amended["status"] = "amended"
    for item in amended["item"]:
        if item["linkId"] == "strength-after":
            item["answer"] = [{"valueInteger": 5}]
    client.update(amended, sensitive=True)
    report = _sync(settings, fhir_server, world)
    assert report.tally.written == 1 and report.ok
    notes = list(
        client.search("DocumentReference", {"related": f"QuestionnaireResponse/{target['id']}"})
    )
    assert sorted(n["status"] for n in notes) == ["current", "superseded"]
    current = next(n for n in notes if n["status"] == "current")
    old = next(n for n in notes if n["status"] == "superseded")
    assert current["relatesTo"] == [
        {"code": "replaces", "target": {"reference": f"DocumentReference/{old['id']}"}}
    ]
    strength = [
        o
        for o in client.search(
            "Observation", {"derived-from": f"QuestionnaireResponse/{target['id']}"}
        )
        if o["code"]["coding"][0]["code"] == "belief-strength-after"
    ]
    assert [o["valueQuantity"]["value"] for o in strength] == [5], (
        "one Observation, updated in place"
    )
    assert _sync(settings, fhir_server, world).tally.written == 0


def test_response_to_unknown_questionnaire_is_reported_not_written(
    settings, client, fhir_server, world, canonical_base
):
    stray = copy.deepcopy(world["qrs"][0])
    stray.pop("id")
    stray["questionnaire"] = f"{canonical_base}/Questionnaire/no-such-worksheet|1.0.0"
    created = client.create(stray, sensitive=True)
    report = _sync(settings, fhir_server, world)
    assert report.tally.rejected == 1 and not report.ok
    assert report.rejected[0].response.startswith(f"QuestionnaireResponse/{created.id}/")
    assert (
        _count(client, "DocumentReference", {"related": f"QuestionnaireResponse/{created.id}"}) == 0
    )
