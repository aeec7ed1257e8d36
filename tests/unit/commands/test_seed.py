"""``rejection-fhir seed`` against the in-memory server (tests/fakefhir.py): what it writes,
how, and the test header.

The test-only header (X-Rfhir-Test-Access) must reach loopback servers only; what a profile
would refuse from a client is written with it, the responses as a portal would send them.
"""

from __future__ import annotations

from typing import Any

import pytest
import responses

from rejection_fhir.commands.seed import TEST_ACCESS_HEADER, seed
from rejection_fhir.errors import ConfigError
from rejection_fhir.settings import load_settings
from tests.fakefhir import FakeFhir, Seen

LOCAL = "http://127.0.0.1:8083/fhir/epic-like"
REMOTE = "https://ehr-test.example.org/fhir"

QUESTIONNAIRE = {
    "resourceType": "Questionnaire",
    "url": "https://rejection-fhir.org/fhir/Questionnaire/t",
    "version": "1.0.0",
    "status": "active",
    "item": [{"linkId": "q1", "type": "string", "text": "How are you?"}],
}


def capabilities(*, transaction: bool, questionnaire_create: bool) -> dict[str, Any]:
    q = ["read", "search-type"] + (["create"] if questionnaire_create else [])
    rest: dict[str, Any] = {
        "mode": "server",
        "resource": [
            {"type": "Questionnaire", "interaction": [{"code": c} for c in q]},
            {"type": "QuestionnaireResponse", "interaction": [{"code": "create"}]},
        ],
    }
    if transaction:
        rest["interaction"] = [{"code": "transaction"}]
    return {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": [rest]}


def server(rsps: responses.RequestsMock, base: str, caps: dict[str, Any]) -> FakeFhir:
    fake = FakeFhir(rsps, base)
    fake.statement = caps
    return fake


def posts_to(fake: FakeFhir, resource_type: str) -> list[Seen]:
    return [seen for seen in fake.writes("POST") if seen.path == resource_type]


def test_a_profile_without_transactions_gets_the_ehrs_own_questionnaires_and_portal_posts(rsps):
    fake = server(rsps, LOCAL, capabilities(transaction=False, questionnaire_create=False))
    seeded = seed(load_settings({"server": LOCAL}, env={}), [QUESTIONNAIRE], rounds=2)

    (patient,) = fake.all("Patient")
    (encounter,) = fake.all("Encounter")
    assert seeded.patient == f"Patient/{patient['id']}"
    assert seeded.encounter == f"Encounter/{encounter['id']}"
    assert seeded.questionnaires == 1 and len(seeded.responses) == 2
    # What the EHR would hold but refuses from a client: with the test header.
    for rtype in ("Patient", "Encounter", "Questionnaire"):
        (request,) = posts_to(fake, rtype)
        assert request.headers[TEST_ACCESS_HEADER] == "all", rtype
    (questionnaire,) = posts_to(fake, "Questionnaire")
    assert "version=1.0.0" in questionnaire.headers["If-None-Exist"]
    # The responses: one plain POST each, as a portal would; no header, no transaction.
    posts = posts_to(fake, "QuestionnaireResponse")
    assert len(posts) == 2
    assert all(TEST_ACCESS_HEADER not in p.headers for p in posts)
    assert fake.posted == []
    held = fake.all("QuestionnaireResponse")
    assert [q["subject"]["reference"] for q in held] == [seeded.patient] * 2


def test_a_full_server_gets_one_transaction_and_no_questionnaires(rsps):
    base = "http://127.0.0.1:8083/fhir"
    fake = server(rsps, base, capabilities(transaction=True, questionnaire_create=True))
    seeded = seed(load_settings({"server": base}, env={}), [QUESTIONNAIRE], rounds=3)

    assert seeded.questionnaires == 0 and len(seeded.responses) == 3
    assert not posts_to(fake, "Questionnaire")
    (bundle,) = fake.posted
    assert len(bundle["entry"]) == 3
    assert len(fake.all("QuestionnaireResponse")) == 3


def test_a_remote_test_server_never_gets_the_test_header(rsps):
    fake = server(rsps, REMOTE, capabilities(transaction=False, questionnaire_create=False))
    seeded = seed(
        load_settings({"server": REMOTE}, env={}), [QUESTIONNAIRE], rounds=1, allow_remote=True
    )

    assert seeded.questionnaires == 0  # the EHR's own questionnaires need test access
    assert fake.requests
    assert all(TEST_ACCESS_HEADER not in seen.headers for seen in fake.requests)


def test_remote_servers_are_refused_without_allow_remote():
    with pytest.raises(ConfigError, match="seed is for local test servers"):
        seed(load_settings({"server": REMOTE}, env={}), [QUESTIONNAIRE])
