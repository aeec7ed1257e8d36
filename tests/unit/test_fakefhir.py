"""The unit tests' FHIR server (tests/fakefhir.py) behaves as FHIR says, through our client.

A fake that accepted anything would let the sync, report and publish tests pass on
behaviour no server has; these pin down the rules they rely on.
"""

from __future__ import annotations

import random

import pytest

from rejection_fhir.errors import FhirServerError, ServerUnavailableError
from rejection_fhir.fhir.client import FhirClient, RetryPolicy
from tests.fakefhir import BASE, FakeFhir, request_to

NOTE = {"resourceType": "DocumentReference", "status": "current"}
KEY = "identifier=urn:test|k1"


@pytest.fixture
def client() -> FhirClient:
    return FhirClient(
        BASE, sleep=lambda s: None, rng=random.Random(1), retry=RetryPolicy(retries=0)
    )


def _keyed(value: str = "k1") -> dict:
    return {**NOTE, "identifier": [{"system": "urn:test", "value": value}]}


def test_a_conditional_create_finds_what_an_earlier_one_made(fake_fhir, client):
    first = client.conditional_create(_keyed(), KEY)
    again = client.conditional_create(_keyed(), KEY)
    assert (first.status, again.status) == (201, 200)
    assert first.id == again.id and len(fake_fhir.all("DocumentReference")) == 1


def test_a_stale_if_match_is_refused_and_a_current_one_makes_a_version(fake_fhir, client):
    made = client.create(NOTE)
    updated = client.update({**NOTE, "id": made.id, "status": "superseded"}, if_match="1")
    assert updated.version_id == "2"
    with pytest.raises(FhirServerError) as caught:
        client.update({**NOTE, "id": made.id}, if_match="1")
    assert caught.value.status == 409
    assert [v["status"] for v in fake_fhir.history("DocumentReference", str(made.id))] == [
        "current",
        "superseded",
    ]
    assert client.vread("DocumentReference", str(made.id), "1")["status"] == "current"


def test_a_transaction_resolves_its_urns_and_rolls_back_whole(fake_fhir, client):
    entries = [
        {
            "fullUrl": "urn:uuid:n",
            "resource": _keyed(),
            "request": {"method": "POST", "url": "DocumentReference", "ifNoneExist": KEY},
        },
        {
            "fullUrl": "urn:uuid:p",
            "resource": {"resourceType": "Provenance", "target": [{"reference": "urn:uuid:n"}]},
            "request": {"method": "POST", "url": "Provenance"},
        },
    ]
    done = client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    (provenance,) = fake_fhir.all("Provenance")
    assert provenance["target"] == [{"reference": f"DocumentReference/{done[0].id}"}]
    stale = {
        "resource": {**NOTE, "id": done[0].id},
        "request": {"method": "PUT", "url": f"DocumentReference/{done[0].id}", "ifMatch": 'W/"9"'},
    }
    with pytest.raises(FhirServerError):
        client.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": [*entries, stale]}
        )
    assert len(fake_fhir.all("Provenance")) == 1, "the refused transaction left nothing"


def test_searches_filter_sort_and_page_through_next_links(fake_fhir: FakeFhir, client):
    fake_fhir.add(
        *(
            {**NOTE, "id": f"n{i}", "meta": {"lastUpdated": f"2026-11-2{9 - i}T10:00:00Z"}}
            for i in range(5)
        )
    )
    params = {"_lastUpdated": "ge2026-11-26", "_sort": "_lastUpdated", "_count": "2"}
    found = [r["id"] for r in client.search("DocumentReference", params)]
    assert found == ["n3", "n2", "n1", "n0"]
    assert fake_fhir.pages == [("DocumentReference", 1), ("DocumentReference", 2)]
    with pytest.raises(FhirServerError) as caught:
        list(client.search("DocumentReference", {"no-such-parameter": "x"}))
    assert caught.value.status == 400


def test_faults_answer_once_or_lose_the_answer_after_the_commit(fake_fhir, client):
    fake_fhir.fail(503, when=request_to("POST", "DocumentReference"), times=1)
    with pytest.raises(FhirServerError):
        client.create(NOTE)
    assert fake_fhir.all("DocumentReference") == []
    fake_fhir.lose_answers(1)
    with pytest.raises(ServerUnavailableError):
        client.create(NOTE)
    assert len(fake_fhir.all("DocumentReference")) == 1, "committed, though unanswered"
    assert client.create(NOTE).status == 201
