"""``rejection-fhir seed`` against recorded servers: what it writes, how, and the test header.

The test-only header (X-Rfhir-Test-Access) must reach loopback servers only; what a profile
would refuse from a client is written with it, the responses as a portal would send them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from rejection_fhir.commands.seed import TEST_ACCESS_HEADER, seed
from rejection_fhir.errors import ConfigError
from rejection_fhir.settings import load_settings

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


def record(rsps: responses.RequestsMock, base: str, caps: dict[str, Any]) -> None:
    rsps.get(f"{base}/metadata", json=caps)
    counter = iter(range(1000))

    def created(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        body["id"] = f"id{next(counter)}"
        return 201, {}, json.dumps(body)

    for rtype in ("Patient", "Encounter", "Questionnaire", "QuestionnaireResponse"):
        rsps.add_callback(responses.POST, f"{base}/{rtype}", callback=created)

    def transaction(request: Any) -> tuple[int, dict[str, str], str]:
        sent = json.loads(request.body)
        entries = [
            {
                "response": {
                    "status": "201 Created",
                    "location": f"QuestionnaireResponse/t{i}/_history/1",
                }
            }
            for i, _ in enumerate(sent["entry"])
        ]
        return (
            200,
            {},
            json.dumps(
                {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
            ),
        )

    rsps.add_callback(responses.POST, base, callback=transaction)


def sent(rsps: responses.RequestsMock, method: str, suffix: str) -> list[Any]:
    return [
        c.request
        for c in rsps.calls
        if c.request.method == method and c.request.url.split("?")[0].endswith(suffix)
    ]


def test_a_profile_without_transactions_gets_the_ehrs_own_questionnaires_and_portal_posts(rsps):
    record(rsps, LOCAL, capabilities(transaction=False, questionnaire_create=False))
    seeded = seed(load_settings({"server": LOCAL}, env={}), [QUESTIONNAIRE], rounds=2)

    assert seeded.patient == "Patient/id0" and seeded.encounter == "Encounter/id1"
    assert seeded.questionnaires == 1 and len(seeded.responses) == 2
    # What the EHR would hold but refuses from a client: with the test header.
    for suffix in ("/Patient", "/Encounter", "/Questionnaire"):
        (request,) = sent(rsps, "POST", suffix)
        assert request.headers[TEST_ACCESS_HEADER] == "all", suffix
    (questionnaire,) = sent(rsps, "POST", "/Questionnaire")
    assert "version=1.0.0" in questionnaire.headers["If-None-Exist"]
    # The responses: one plain POST each, as a portal would; no header, no transaction.
    posts = sent(rsps, "POST", "/QuestionnaireResponse")
    assert len(posts) == 2
    assert all(TEST_ACCESS_HEADER not in p.headers for p in posts)
    assert not sent(rsps, "POST", "/epic-like")


def test_a_full_server_gets_one_transaction_and_no_questionnaires(rsps):
    base = "http://127.0.0.1:8083/fhir"
    record(rsps, base, capabilities(transaction=True, questionnaire_create=True))
    seeded = seed(load_settings({"server": base}, env={}), [QUESTIONNAIRE], rounds=3)

    assert seeded.questionnaires == 0 and len(seeded.responses) == 3
    assert not sent(rsps, "POST", "/Questionnaire")
    (bundle,) = sent(rsps, "POST", "/fhir")
    assert len(json.loads(bundle.body)["entry"]) == 3


def test_a_remote_test_server_never_gets_the_test_header(rsps):
    record(rsps, REMOTE, capabilities(transaction=False, questionnaire_create=False))
    seeded = seed(
        load_settings({"server": REMOTE}, env={}), [QUESTIONNAIRE], rounds=1, allow_remote=True
    )

    assert seeded.questionnaires == 0  # the EHR's own questionnaires need test access
    assert rsps.calls
    assert all(TEST_ACCESS_HEADER not in c.request.headers for c in rsps.calls)


def test_remote_servers_are_refused_without_allow_remote():
    with pytest.raises(ConfigError, match="seed is for local test servers"):
        seed(load_settings({"server": REMOTE}, env={}), [QUESTIONNAIRE])
