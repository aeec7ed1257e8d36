"""The EHR profiles of the local HAPI server (/fhir/<profile>/) refuse what their vendors refuse.

For every profile in servers/profiles/: a request the vendor refuses gets the profile's
documented status and an OperationOutcome saying why; one it allows succeeds; /metadata
states exactly what the profile file allows; the test-only header lifts the refusals only
when sent; and each profile keeps its own data.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.integration

PROFILES_DIR = Path(__file__).resolve().parents[2] / "servers" / "profiles"
NAMES = sorted(p.stem for p in PROFILES_DIR.glob("*.json"))
FHIR_JSON = "application/fhir+json"
ACCESS = {"X-Rfhir-Test-Access": "all"}
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROFILES_DIR / f"{name}.json").read_text())
    return data


def names_where(applies: Callable[[dict[str, Any]], bool]) -> list[str]:
    """The profiles a check applies to: tests parametrise over these instead of skipping the
    others (CI allows no skips).  An empty list would be a skip too, so it is an error."""
    names = [name for name in NAMES if applies(load(name))]
    if not names:
        raise RuntimeError("no profile in servers/profiles/ for this check")
    return names


class Endpoint:
    """One profile's base URL, its profile file, and plain HTTP against it."""

    def __init__(self, base: str, profile: dict[str, Any]) -> None:
        self.base = base
        self.profile = profile
        self.http = requests.Session()
        self.http.headers.update({"Accept": FHIR_JSON})

    def rule(self, resource_type: str) -> dict[str, Any] | None:
        rule: dict[str, Any] | None = self.profile["resources"].get(resource_type)
        return rule

    def allows(self, resource_type: str, interaction: str) -> bool:
        rule = self.rule(resource_type)
        return rule is not None and interaction in rule["interactions"]

    def send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> requests.Response:
        send = dict(headers or {})
        if body is not None:
            send["Content-Type"] = FHIR_JSON
        return self.http.request(
            method,
            f"{self.base}/{path}",
            data=json.dumps(body) if body is not None else None,
            headers=send,
            params=params or None,
            timeout=60,
        )

    def create(self, resource: dict[str, Any], *, access: bool = True) -> dict[str, Any]:
        answer = self.send("POST", resource["resourceType"], resource, ACCESS if access else None)
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    def assert_refused(self, answer: requests.Response, kind: str, *words: str) -> str:
        """The profile's answer for *kind*: its status and an OperationOutcome naming why."""
        expected = self.profile["answers"][kind]
        assert answer.status_code == expected["status"], (kind, answer.status_code, answer.text)
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        issue = outcome["issue"][0]
        assert issue["severity"] == "error"
        assert issue["code"] == expected["issueCode"]
        diagnostics: str = issue["diagnostics"]
        for word in words:
            assert word in diagnostics, (word, diagnostics)
        return diagnostics


@pytest.fixture(scope="module", params=NAMES)
def ep(request: pytest.FixtureRequest, fhir_server: str) -> Iterator[Endpoint]:
    endpoint = Endpoint(f"{fhir_server}/{request.param}", load(request.param))
    yield endpoint
    endpoint.http.close()


@pytest.fixture(scope="module")
def subject(ep: Endpoint) -> str:
    """A Patient on this profile, written with test access (most profiles refuse it)."""
    created = ep.create(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:test", "value": uuid.uuid4().hex}],
            "name": [{"family": "Profile", "given": ["Test"]}],
        }
    )
    return f"Patient/{created['id']}"


def response(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "https://test.rejection-fhir.org/fhir/Questionnaire/profiles|1.0.0",
        "subject": {"reference": subject},
        "authored": "2026-11-30T10:00:00Z",
        "item": [{"linkId": "q1", "answer": [{"valueString": "fine"}]}],
    }


def observation(subject: str, category: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": 70, "unit": "/min", "system": "http://unitsofmeasure.org"},
    }


def note(subject: str, content_type: str, encounter: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": subject},
        "content": [{"attachment": {"contentType": content_type, "data": "bm90ZQ=="}}],
    }
    if encounter:
        doc["context"] = {"encounter": [{"reference": encounter}]}
    return doc


# ------------------------------------------------------------------------------ metadata


def test_metadata_states_exactly_what_the_profile_allows(ep: Endpoint) -> None:
    answer = ep.send("GET", "metadata")
    assert answer.status_code == 200
    statement = answer.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert ep.profile["imitates"] in statement["title"]
    rest = statement["rest"][0]
    listed = {r["type"]: r for r in rest["resource"]}
    assert set(listed) == set(ep.profile["resources"])
    for rtype, rule in ep.profile["resources"].items():
        got = listed[rtype]
        assert [i["code"] for i in got["interaction"]] == rule["interactions"], rtype
        assert got["conditionalCreate"] is rule.get("conditionalCreate", False), rtype
        assert got["conditionalUpdate"] is rule.get("conditionalUpdate", False), rtype
        assert got["updateCreate"] is rule.get("updateCreate", False), rtype
        names = [p["name"] for p in got.get("searchParam", [])]
        if "*" in rule.get("searchParams", []):
            assert {"_id", "_lastUpdated"} <= set(names), rtype
        else:
            assert names == rule.get("searchParams", []), rtype
        assert all("type" in p for p in got.get("searchParam", [])), (
            f"{rtype}: unknown search parameter"
        )
        versioning = (
            "versioned-update" if ep.profile["versioning"]["ifMatch"] == "supported" else None
        )
        if versioning:
            assert got["versioning"] == versioning
        else:
            assert got["versioning"] in ("no-version", "versioned")
    system = {i["code"] for i in rest.get("interaction", [])}
    assert ("transaction" in system) is ep.profile["transaction"]["allowed"]
    assert ("batch" in system) is ep.profile["batch"]["allowed"]


# ------------------------------------------------------------------ allowed and refused


def test_a_patient_portal_can_post_a_response(ep: Endpoint, subject: str) -> None:
    answer = ep.send("POST", "QuestionnaireResponse", response(subject))
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("ep", names_where(lambda p: "Flag" not in p["resources"]), indirect=True)
def test_unsupported_resource_types_are_refused(ep: Endpoint, subject: str) -> None:
    flag = {
        "resourceType": "Flag",
        "status": "active",
        "code": {"text": "x"},
        "subject": {"reference": subject},
    }
    ep.assert_refused(ep.send("POST", "Flag", flag), "unsupported-resource", "Flag")
    ep.assert_refused(ep.send("GET", "Flag", _count="0"), "unsupported-resource", "Flag")
    # The test-only header lifts it.
    assert ep.send("POST", "Flag", flag, ACCESS).status_code == 201


def test_questionnaire_publishing(ep: Endpoint) -> None:
    questionnaire = {
        "resourceType": "Questionnaire",
        "url": f"https://test.rejection-fhir.org/fhir/Questionnaire/{uuid.uuid4().hex}",
        "version": "1.0.0",
        "status": "active",
        "item": [{"linkId": "q1", "type": "string", "text": "How are you?"}],
    }
    answer = ep.send("POST", "Questionnaire", questionnaire)
    if ep.allows("Questionnaire", "create"):
        assert answer.status_code == 201, answer.text
    else:
        ep.assert_refused(
            answer, "unsupported-interaction", "Questionnaire create is not supported"
        )
        assert ep.send("POST", "Questionnaire", questionnaire, ACCESS).status_code == 201


def test_transactions(ep: Endpoint, subject: str) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": response(subject),
                "request": {"method": "POST", "url": "QuestionnaireResponse"},
            }
        ],
    }
    answer = ep.send("POST", "", bundle)
    if ep.profile["transaction"]["allowed"]:
        assert answer.status_code == 200, answer.text
    else:
        ep.assert_refused(answer, "transaction", "transaction Bundles are not supported")
        assert ep.send("POST", "", bundle, ACCESS).status_code == 200


def test_batches(ep: Endpoint, subject: str) -> None:
    entry = {
        "resource": response(subject),
        "request": {"method": "POST", "url": "QuestionnaireResponse"},
    }
    answer = ep.send("POST", "", {"resourceType": "Bundle", "type": "batch", "entry": [entry]})
    batch = ep.profile["batch"]
    if batch["allowed"] and batch.get("resourceTypes") is None:
        assert answer.status_code == 200, answer.text
    elif batch["allowed"]:
        ep.assert_refused(answer, "transaction", "a batch may only hold")
    else:
        ep.assert_refused(answer, "transaction", "batch Bundles are not supported")


def test_conditional_create(ep: Endpoint, subject: str) -> None:
    qr = response(subject)
    qr["identifier"] = {"system": "urn:test", "value": uuid.uuid4().hex}
    condition = {"If-None-Exist": f"identifier=urn:test|{qr['identifier']['value']}"}
    answer = ep.send("POST", "QuestionnaireResponse", qr, condition)
    if ep.rule("QuestionnaireResponse").get("conditionalCreate"):  # type: ignore[union-attr]
        assert answer.status_code == 201, answer.text
        assert ep.send("POST", "QuestionnaireResponse", qr, condition).status_code == 200
    else:
        ep.assert_refused(answer, "conditional", "If-None-Exist")


def test_response_searches(ep: Endpoint, subject: str) -> None:
    rule = ep.rule("QuestionnaireResponse")
    assert rule is not None
    params = rule["searchParams"]
    by_patient = ep.send("GET", "QuestionnaireResponse", patient=subject, _count="5")
    if "patient" in params or "*" in params:
        assert by_patient.status_code == 200, by_patient.text
    since = ep.send("GET", "QuestionnaireResponse", _lastUpdated="ge2026-01-01", _count="5")
    if "_lastUpdated" in params or "*" in params:
        assert since.status_code == 200, since.text
    else:
        ep.assert_refused(since, "unsupported-search", "_lastUpdated is not supported")
        assert ep.send("GET", "QuestionnaireResponse", {}, ACCESS, _lastUpdated="ge2026-01-01").ok
    sorted_ = ep.send(
        "GET",
        "QuestionnaireResponse",
        _sort="_lastUpdated",
        _count="5",
        **({"patient": subject} if "patient" in params else {}),
    )
    if "*" in rule.get("sortParams", []) or "_lastUpdated" in rule.get("sortParams", []):
        assert sorted_.status_code == 200, sorted_.text
    else:
        ep.assert_refused(sorted_, "unsupported-search", "cannot be sorted by _lastUpdated")
    if rule.get("searchRequiresOneOf"):
        ep.assert_refused(
            ep.send("GET", "QuestionnaireResponse", _count="5"),
            "unsupported-search",
            "needs one of",
        )


def test_observation_categories(ep: Endpoint, subject: str) -> None:
    rule = ep.rule("Observation")
    if rule is None or "create" not in rule["interactions"]:
        answer = ep.send("POST", "Observation", observation(subject, "vital-signs"))
        kind = "unsupported-resource" if rule is None else "unsupported-interaction"
        ep.assert_refused(answer, kind)
        return
    writable = rule.get("writableCategories")
    assert ep.send("POST", "Observation", observation(subject, "vital-signs")).status_code == 201
    survey = ep.send("POST", "Observation", observation(subject, "survey"))
    if writable is None or "survey" in writable:
        assert survey.status_code == 201, survey.text
    else:
        ep.assert_refused(survey, "content", "survey", *writable)
        assert (
            ep.send("POST", "Observation", observation(subject, "survey"), ACCESS).status_code
            == 201
        )


def test_notes(ep: Endpoint, subject: str) -> None:
    rule = ep.rule("DocumentReference")
    assert rule is not None
    if "create" not in rule["interactions"]:
        ep.assert_refused(
            ep.send("POST", "DocumentReference", note(subject, "text/plain", None)),
            "unsupported-interaction",
        )
        return
    visit = ep.create(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": subject},
        }
    )
    encounter = f"Encounter/{visit['id']}"
    assert (
        ep.send("POST", "DocumentReference", note(subject, "text/plain", encounter)).status_code
        == 201
    )
    markdown = ep.send("POST", "DocumentReference", note(subject, "text/markdown", encounter))
    if rule.get("contentTypes") and "text/markdown" not in rule["contentTypes"]:
        ep.assert_refused(markdown, "content", "text/markdown", *rule["contentTypes"])
    else:
        assert markdown.status_code == 201, markdown.text
    unattached = ep.send("POST", "DocumentReference", note(subject, "text/plain", None))
    missing = ep.send(
        "POST", "DocumentReference", note(subject, "text/plain", "Encounter/does-not-exist")
    )
    if rule.get("requiresEncounter"):
        ep.assert_refused(unattached, "content", "context.encounter")
        ep.assert_refused(missing, "content", "Encounter/does-not-exist")
    else:
        assert unattached.status_code == 201, unattached.text


def test_version_headers(ep: Endpoint, subject: str) -> None:
    """If-Match where the profile takes it, If-Unmodified-Since where that replaces it."""
    rule = ep.rule("QuestionnaireResponse")
    assert rule is not None
    created = ep.send("POST", "QuestionnaireResponse", response(subject)).json()
    path = f"QuestionnaireResponse/{created['id']}"
    if "update" not in rule["interactions"]:
        ep.assert_refused(
            ep.send("PUT", path, created), "unsupported-interaction", "update is not supported"
        )
        return
    versioning = ep.profile["versioning"]
    created["authored"] = "2026-12-01T09:00:00Z"  # a real change: HAPI skips no-op updates
    if_match = ep.send("PUT", path, created, {"If-Match": 'W/"1"'})
    if versioning["ifMatch"] == "supported":
        assert if_match.status_code == 200, if_match.text
        stale = ep.send("PUT", path, created, {"If-Match": 'W/"1"'})
        assert stale.status_code in (409, 412), stale.text
    elif versioning["ifMatch"] == "refused":
        ep.assert_refused(if_match, "version-header", "If-Match is not supported")
    if versioning["ifUnmodifiedSince"] == "supported":
        past = format_datetime(datetime.now(UTC) - timedelta(days=1), usegmt=True)
        future = format_datetime(datetime.now(UTC) + timedelta(days=1), usegmt=True)
        ep.assert_refused(
            ep.send("PUT", path, created, {"If-Unmodified-Since": past}),
            "precondition-failed",
            "was modified",
        )
        assert ep.send("PUT", path, created, {"If-Unmodified-Since": future}).status_code == 200
    if not ep.profile["versioning"].get("etag", True):
        assert "ETag" not in ep.send("GET", path).headers


def test_update_as_create(ep: Endpoint, subject: str) -> None:
    """PUT to an id that does not exist yet: refused unless the profile says updateCreate."""
    rule = ep.rule("QuestionnaireResponse")
    assert rule is not None
    qr = response(subject)
    qr["id"] = f"client-{uuid.uuid4().hex[:12]}"
    answer = ep.send("PUT", f"QuestionnaireResponse/{qr['id']}", qr)
    if "update" not in rule["interactions"]:
        ep.assert_refused(answer, "unsupported-interaction", "update is not supported")
    elif rule.get("updateCreate"):
        assert answer.status_code == 201, answer.text
    else:
        ep.assert_refused(answer, "unsupported-interaction", "update-as-create")
        assert (
            ep.send("GET", f"QuestionnaireResponse/{qr['id']}", headers=ACCESS).status_code == 404
        )
    with_access = ep.send("PUT", f"QuestionnaireResponse/{qr['id']}", qr, ACCESS)
    assert with_access.status_code == 201, with_access.text


@pytest.mark.parametrize(
    "ep",
    names_where(lambda p: p["transaction"].get("strictIsolationMaxEntries") is not None),
    indirect=True,
)
def test_medplum_strict_isolation_limit(ep: Endpoint, subject: str) -> None:
    limit = ep.profile["transaction"]["strictIsolationMaxEntries"]

    def bundle(entries: int) -> dict[str, Any]:
        entry = []
        for i in range(entries):
            qr = response(subject)
            qr["identifier"] = {"system": "urn:test", "value": uuid.uuid4().hex}
            request = {"method": "POST", "url": "QuestionnaireResponse"}
            if i == 0:  # one conditional create is enough to need strict isolation
                request["ifNoneExist"] = f"identifier=urn:test|{qr['identifier']['value']}"
            entry.append({"resource": qr, "request": request})
        return {"resourceType": "Bundle", "type": "transaction", "entry": entry}

    assert ep.send("POST", "", bundle(limit)).status_code == 200
    refused = ep.send("POST", "", bundle(limit + 1))
    diagnostics = ep.assert_refused(refused, "transaction-limit")
    assert diagnostics == "Transaction requires strict isolation but has too many entries"
    # Without a conditional entry the same size commits.
    plain = bundle(limit + 1)
    del plain["entry"][0]["request"]["ifNoneExist"]
    assert ep.send("POST", "", plain).status_code == 200


@pytest.mark.parametrize(
    "ep",
    names_where(
        lambda p: p["batch"]["allowed"] and p["batch"].get("resourceTypes") == ["Provenance"]
    ),
    indirect=True,
)
def test_oracle_batch_holds_provenance_only(ep: Endpoint, subject: str) -> None:
    target = ep.send("POST", "QuestionnaireResponse", response(subject)).json()
    provenance = {
        "resourceType": "Provenance",
        "target": [{"reference": f"QuestionnaireResponse/{target['id']}"}],
        "recorded": "2026-12-01T10:00:00Z",
        "agent": [{"who": {"display": "rejection-fhir"}}],
    }
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"resource": provenance, "request": {"method": "POST", "url": "Provenance"}}],
    }
    answer = ep.send("POST", "", batch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["entry"][0]["response"]["status"].startswith("201")


def test_bulk_export_levels(ep: Endpoint, subject: str) -> None:
    """Group export where the profile offers it, finished inside the profile's own data."""
    import time

    levels = ep.profile.get("bulkExport", {}).get("levels", [])
    async_ = {"Prefer": "respond-async"}
    system = ep.send("GET", "$export", headers=async_)
    if "system" in levels:
        assert system.status_code == 202, system.text
        ep.send("DELETE", system.headers["Content-Location"].split("/")[-1])
    else:
        ep.assert_refused(
            system, "unsupported-interaction", "$export is not supported at system level"
        )

    group = ep.create(
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": subject}}],
        }
    )
    ep.send("POST", "QuestionnaireResponse", response(subject))
    kickoff = ep.send(
        "GET", f"Group/{group['id']}/$export", headers=async_, _type="QuestionnaireResponse"
    )
    if "Group" not in levels:
        ep.assert_refused(
            kickoff, "unsupported-interaction", "$export is not supported at Group level"
        )
        return
    assert kickoff.status_code == 202, kickoff.text
    status_url = kickoff.headers["Content-Location"]
    assert status_url.startswith(ep.base + "/")
    deadline = time.monotonic() + 180
    while True:
        poll = ep.http.get(status_url, timeout=60)
        if poll.status_code == 200:
            break
        assert poll.status_code == 202, poll.text
        assert time.monotonic() < deadline, "export did not finish"
        time.sleep(1)
    outputs = poll.json()["output"]
    assert outputs and all(o["url"].startswith(ep.base + "/Binary/") for o in outputs)
    lines = []
    for output in outputs:
        data = ep.http.get(output["url"], headers={"Accept": "application/fhir+ndjson"}, timeout=60)
        assert data.status_code == 200, data.text
        lines += [json.loads(line) for line in data.text.splitlines() if line.strip()]
    responses_ = [r for r in lines if r["resourceType"] == "QuestionnaireResponse"]
    assert responses_ and {r["subject"]["reference"] for r in responses_} == {subject}


# --------------------------------------------------------------- test access and separation


def test_test_access_needs_the_exact_value(ep: Endpoint) -> None:
    answer = ep.send("GET", "Patient", headers={"X-Rfhir-Test-Access": "yes"}, _count="1")
    ep.assert_refused(answer, "test-access", "loopback")


def test_each_profile_keeps_its_own_data(ep: Endpoint, fhir_server: str) -> None:
    """Patients and Questionnaires alike (HAPI would share Questionnaires between partitions)."""
    marker = uuid.uuid4().hex
    url = f"https://test.rejection-fhir.org/fhir/Questionnaire/{marker}"
    ep.create({"resourceType": "Patient", "identifier": [{"system": "urn:sep", "value": marker}]})
    ep.create({"resourceType": "Questionnaire", "url": url, "status": "active"})
    searches = {
        "Patient": {"identifier": f"urn:sep|{marker}", "_summary": "count"},
        "Questionnaire": {"url": url, "_summary": "count"},
    }
    others = [fhir_server] + [f"{fhir_server}/{n}" for n in NAMES if n != ep.profile["name"]]
    for rtype, search in searches.items():
        own = requests.get(f"{ep.base}/{rtype}", params=search, headers=ACCESS, timeout=60).json()
        assert own["total"] == 1, rtype
        for other in others:
            seen = requests.get(
                f"{other}/{rtype}", params=search, headers=ACCESS, timeout=60
            ).json()
            assert seen["total"] == 0, (rtype, other)


# ------------------------------------------------------------------------------ seed


def test_seed_leaves_what_the_ehr_would_hold(ep: Endpoint) -> None:
    from rejection_fhir.cli.options import built_worksheets
    from rejection_fhir.commands.seed import seed
    from rejection_fhir.settings import load_settings

    base_url = f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"
    questionnaires = built_worksheets(None, base_url)
    seeded = seed(load_settings({"server": ep.base}, env={}), questionnaires, rounds=1)

    def count(path: str, **params: str) -> int:
        got = ep.send("GET", path, headers=ACCESS, _summary="count", **params)
        assert got.status_code == 200, got.text
        total: int = got.json()["total"]
        return total

    assert (
        count(seeded.patient.replace("/", "?_id=").split("?")[0], _id=seeded.patient.split("/")[1])
        == 1
    )
    assert seeded.encounter is not None
    assert count("Encounter", patient=seeded.patient) == 1
    assert count("QuestionnaireResponse", patient=seeded.patient) == len(questionnaires)
    held = count("Questionnaire", url=questionnaires[0]["url"])
    if ep.allows("Questionnaire", "create"):
        assert held == 0 and seeded.questionnaires == 0  # clients publish them (`publish`)
    else:
        assert held == 1 and seeded.questionnaires == len(questionnaires)
