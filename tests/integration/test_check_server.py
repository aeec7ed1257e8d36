"""check-server against the real servers: plain HAPI and Medplum's router (servers/medplum).

Each test first writes one Questionnaire and one QuestionnaireResponse of its own (the probes
need data to tell an honoured parameter from an ignored one); check-server itself writes
nothing, which the counts before and after show.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from rejection_fhir.commands.check_server import check_server, report_json
from rejection_fhir.settings import load_settings

pytestmark = pytest.mark.integration

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def seed_one(base: str) -> None:
    url = f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/Questionnaire/check"
    questionnaire = {
        "resourceType": "Questionnaire",
        "url": url,
        "status": "active",
        "item": [{"linkId": "a", "type": "string", "text": "A"}],
    }
    r = requests.post(f"{base}/Questionnaire", json=questionnaire, headers=FHIR_JSON, timeout=30)
    assert r.status_code == 201, r.text
    response = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": url,
        "status": "completed",
        "authored": "2026-12-01T10:00:00Z",
        "item": [{"linkId": "a", "answer": [{"valueString": "x"}]}],
    }
    r = requests.post(f"{base}/QuestionnaireResponse", json=response, headers=FHIR_JSON, timeout=30)
    assert r.status_code == 201, r.text


def counts(base: str) -> dict[str, int]:
    found = {}
    for kind in ("Questionnaire", "QuestionnaireResponse", "DocumentReference"):
        r = requests.get(f"{base}/{kind}", params={"_summary": "count"}, timeout=30)
        found[kind] = r.json()["total"]
    return found


def check(base: str):
    return check_server(load_settings({"server": base}, env={}))


def test_plain_hapi(fhir_server):
    seed_one(fhir_server)
    before = counts(fhir_server)
    report = check(fhir_server)
    assert counts(fhir_server) == before  # nothing written
    strategy = report.strategy
    assert (strategy.publish.value, strategy.read.value, strategy.write.value) == (
        "transaction",
        "_lastUpdated",
        "transaction",
    )
    assert strategy.version_check.value == "If-Match" and strategy.max_conditional_entries is None
    assert strategy.writable == (
        "DocumentReference",
        "Observation",
        "Flag",
        "Provenance",
        "Device",
        "Task",
    )
    assert strategy.degradations == () and report.ok
    # With data, HAPI shows it honours the parameters and refuses unknown ones.
    assert report.evidence.searches["QuestionnaireResponse:_lastUpdated"].value == "works"
    assert report.evidence.searches["QuestionnaireResponse:authored"].value == "works"
    assert report.unknown_params == "refused"
    assert report.evidence.etag_on_read is True
    assert report_json(report)["capabilities"]["findResponses"]["export"]


def test_medplum_router(medplum_server):
    seed_one(medplum_server)
    before = counts(medplum_server)
    report = check(medplum_server)
    assert counts(medplum_server) == before
    strategy = report.strategy
    assert strategy.write.value == "transaction" and strategy.max_conditional_entries == 8
    assert strategy.publish.value == "transaction" and strategy.read.value == "_lastUpdated"
    assert strategy.version_check.value == "If-Match" and report.ok
    # Medplum's in-memory repository answers an unknown parameter with no results (it does
    # not refuse it): so "fewer results" proves nothing there, and check-server says so.
    assert report.unknown_params == "match-nothing"
    assert report.evidence.searches["QuestionnaireResponse:_lastUpdated"].value == "accepted"
    assert report.evidence.etag_on_read is True


def conditional_transaction(entries: int) -> dict:
    tag = uuid.uuid4().hex[:10]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Basic",
                    "code": {"text": "check-server"},
                    "identifier": [{"system": "urn:rfhir-test", "value": f"{tag}-{i}"}],
                },
                "request": {
                    "method": "POST",
                    "url": "Basic",
                    "ifNoneExist": f"identifier=urn:rfhir-test|{tag}-{i}",
                },
            }
            for i in range(entries)
        ],
    }


def test_medplum_limit_that_check_server_reports_is_real(medplum_server):
    ok = requests.post(
        medplum_server, json=conditional_transaction(8), headers=FHIR_JSON, timeout=30
    )
    assert ok.status_code == 200, ok.text
    refused = requests.post(
        medplum_server, json=conditional_transaction(9), headers=FHIR_JSON, timeout=30
    )
    assert refused.status_code == 400
    assert "too many entries" in refused.text


def test_medplum_wrapper_does_not_roll_back_a_failed_transaction(medplum_server):
    """What servers/medplum/README.md says it is not: a failed transaction keeps earlier entries."""
    patient = requests.post(
        f"{medplum_server}/Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON, timeout=30
    ).json()
    bundle = conditional_transaction(1)
    key = bundle["entry"][0]["resource"]["identifier"][0]["value"]
    bundle["entry"].append(
        {
            "resource": {"resourceType": "Patient", "id": patient["id"]},
            "request": {
                "method": "PUT",
                "url": f"Patient/{patient['id']}",
                "ifMatch": 'W/"not-the-current-version"',
            },
        }
    )
    failed = requests.post(medplum_server, json=bundle, headers=FHIR_JSON, timeout=30)
    assert failed.status_code == 412
    left = requests.get(
        f"{medplum_server}/Basic",
        params={"identifier": f"urn:rfhir-test|{key}", "_summary": "count"},
        timeout=30,
    ).json()
    assert left["total"] == 1
