"""The EHR profile files (servers/profiles/*.json): shape, consistency, a source for every rule.

The HAPI server enforces these files and builds each profile's /metadata from them
(tests/integration/test_profiles.py shows that against the running server); these tests
keep the files themselves honest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

PROFILES_DIR = Path(__file__).resolve().parents[3] / "servers" / "profiles"
EPIC_STATEMENT = (
    Path(__file__).resolve().parents[2] / "data" / "capabilities" / "epic-r4-sandbox-may-2026.json"
)
NAMES = ["athena-like", "canvas-like", "epic-like", "medplum-like", "oracle-like"]

INTERACTIONS = {
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
}
REFUSAL_KINDS = {
    "unsupported-resource",
    "unsupported-interaction",
    "unsupported-search",
    "conditional",
    "version-header",
    "precondition-failed",
    "content",
    "transaction",
    "transaction-limit",
    "test-access",
}
ISSUE_CODES = {"invalid", "not-supported", "business-rule", "conflict", "forbidden", "processing"}
RESOURCE_KEYS = {
    "interactions",
    "conditionalCreate",
    "conditionalUpdate",
    "conditionalDelete",
    "updateCreate",
    "searchParams",
    "searchRequiresOneOf",
    "sortParams",
    "writableCategories",
    "contentTypes",
    "requiresEncounter",
    "source",
}
TOP_KEYS = {
    "name",
    "partitionId",
    "imitates",
    "description",
    "transaction",
    "batch",
    "versioning",
    "bulkExport",
    "operations",
    "answers",
    "resources",
}
OBSERVATION_CATEGORIES = {
    "social-history",
    "vital-signs",
    "imaging",
    "laboratory",
    "procedure",
    "survey",
    "exam",
    "therapy",
    "activity",
}
NOT_VERIFIED = "not verified"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROFILES_DIR / f"{name}.json").read_text())
    return data


@pytest.fixture(params=NAMES)
def profile(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def rule_objects(profile: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every object in a profile that states rules, with where it is."""
    found = [
        (key, profile[key])
        for key in ("transaction", "batch", "versioning", "bulkExport")
        if key in profile
    ]
    found += [(key, profile[key]) for key in ("operations",) if key in profile]
    found += [(f"answers.{k}", v) for k, v in profile["answers"].items()]
    found += [(f"resources.{k}", v) for k, v in profile["resources"].items()]
    return [(where, obj) for where, obj in found if isinstance(obj, dict)]


def source_texts(source: Any) -> list[str]:
    return list(source.values()) if isinstance(source, dict) else [source]


def test_the_five_profiles_exist_and_nothing_else() -> None:
    assert sorted(p.stem for p in PROFILES_DIR.glob("*.json")) == NAMES


def test_shape(profile: dict[str, Any]) -> None:
    assert set(profile) <= TOP_KEYS, set(profile) - TOP_KEYS
    assert {"name", "partitionId", "imitates", "description", "answers", "resources"} <= set(
        profile
    )
    assert profile["name"] in NAMES
    assert "not " in profile["description"].lower(), "say that it is not the vendor's server"
    assert set(profile["answers"]) == REFUSAL_KINDS
    for kind, answer in profile["answers"].items():
        assert 400 <= answer["status"] < 500, kind
        assert answer["issueCode"] in ISSUE_CODES, kind
    assert profile["versioning"]["ifMatch"] in {"supported", "refused", "ignored"}
    assert profile["versioning"]["ifUnmodifiedSince"] in {"supported", "refused", "ignored"}
    for level in profile.get("bulkExport", {}).get("levels", []):
        assert level in {"system", "Patient", "Group"}
    for rtype, rule in profile["resources"].items():
        assert rtype[0].isupper() and rtype.isalpha(), rtype
        assert set(rule) <= RESOURCE_KEYS, (rtype, set(rule) - RESOURCE_KEYS)
        assert rule["interactions"], f"{rtype}: list it only if something is allowed"
        assert set(rule["interactions"]) <= INTERACTIONS, rtype
        assert set(rule.get("searchRequiresOneOf", [])) <= set(rule.get("searchParams", [])), rtype
        if rule.get("searchParams"):
            assert "search-type" in rule["interactions"], rtype
        for category in rule.get("writableCategories", []):
            assert category in OBSERVATION_CATEGORIES, (rtype, category)
        if "writableCategories" in rule or "contentTypes" in rule or rule.get("requiresEncounter"):
            assert {"create", "update"} & set(rule["interactions"]), rtype


def test_partitions_are_distinct_positive_numbers() -> None:
    ids = [load(name)["partitionId"] for name in NAMES]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(set(ids)) == len(ids)


def test_every_rule_has_a_source(profile: dict[str, Any]) -> None:
    for where, obj in rule_objects(profile):
        assert "source" in obj, f"{profile['name']}: {where} has no source"
        source = obj["source"]
        if isinstance(source, dict):
            rules = set(obj) - {"source"}
            assert set(source) >= rules, (
                f"{profile['name']}: {where} lacks a source for {rules - set(source)}"
            )
            assert set(source) <= rules, f"{profile['name']}: {where} cites rules it does not state"
        for text in source_texts(source):
            assert isinstance(text, str) and text.strip(), f"{profile['name']}: {where}"
            cited = "http" in text
            unverified = NOT_VERIFIED in text
            own_rule = "this project's rule" in text
            assert cited or unverified or own_rule, (
                f"{profile['name']}: {where}: a source is a vendor URL, or says 'not verified'"
            )


def test_a_patient_portal_can_post_responses_everywhere(profile: dict[str, Any]) -> None:
    qr = profile["resources"]["QuestionnaireResponse"]
    assert "create" in qr["interactions"]


# The vendors' documented limits the issue names; each line of the profile files is checked
# against its own source, these guard the files against edits that would lose them.


def test_epic_like() -> None:
    p = load("epic-like")
    assert not p["transaction"]["allowed"] and not p["batch"]["allowed"]
    assert p["versioning"]["ifMatch"] == "refused" and p["versioning"]["etag"] is False
    r = p["resources"]
    assert r["Observation"]["writableCategories"] == ["vital-signs"]
    assert r["DocumentReference"]["contentTypes"] == ["text/plain"]
    assert r["DocumentReference"]["requiresEncounter"] is True
    assert "create" not in r["Questionnaire"]["interactions"]
    assert "create" not in r["Provenance"]["interactions"]
    assert "Flag" not in r
    assert not any(
        rule.get("conditionalCreate") or rule.get("conditionalUpdate") for rule in r.values()
    )
    assert p["bulkExport"]["levels"] == ["Group"]
    # What Epic's own statement lists (tests/data/capabilities/epic-r4-sandbox-may-2026.json)
    assert "authored" in r["QuestionnaireResponse"]["searchParams"]
    assert "update" in r["DocumentReference"]["interactions"]
    assert "update" in r["Observation"]["interactions"]


def test_epic_like_takes_no_more_than_epics_statement_lists() -> None:
    """Every interaction and search parameter of epic-like is in Epic's saved statement."""
    statement = json.loads(EPIC_STATEMENT.read_text())
    listed = {
        r["type"]: (
            {i["code"] for i in r.get("interaction", [])},
            {s["name"] for s in r.get("searchParam", [])},
        )
        for r in statement["rest"][0]["resource"]
    }
    for rtype, rule in load("epic-like")["resources"].items():
        interactions, params = listed[rtype]
        for interaction in rule["interactions"]:
            assert interaction in interactions, (rtype, interaction)
        assert set(rule.get("searchParams", [])) <= params, rtype


def test_oracle_like() -> None:
    p = load("oracle-like")
    assert not p["transaction"]["allowed"]
    assert p["batch"] == {**p["batch"], "allowed": True, "resourceTypes": ["Provenance"]}
    assert p["versioning"]["ifMatch"] == "supported"
    r = p["resources"]
    assert r["QuestionnaireResponse"]["searchParams"] == ["_id", "patient"]
    assert r["Questionnaire"]["interactions"] == ["read", "search-type"]
    assert r["Observation"]["writableCategories"] == ["vital-signs", "laboratory"]
    assert "update" in r["Observation"]["interactions"]  # Oracle's 'Update an observation'
    assert "create" in r["Provenance"]["interactions"] and "Flag" not in r
    assert p["bulkExport"]["since"] is True


def test_athena_like() -> None:
    p = load("athena-like")
    assert not p["transaction"]["allowed"] and not p["batch"]["allowed"]
    r = p["resources"]
    assert "_lastUpdated" in r["QuestionnaireResponse"]["searchParams"]
    writable = {
        t
        for t, rule in r.items()
        if {"create", "update", "patch", "delete"} & set(rule["interactions"])
    }
    assert writable == {"QuestionnaireResponse"}
    assert p["bulkExport"]["levels"]


def test_canvas_like() -> None:
    p = load("canvas-like")
    r = p["resources"]
    qr = r["QuestionnaireResponse"]
    assert "authored" in qr["searchParams"] and "_lastUpdated" not in qr["searchParams"]
    assert qr["conditionalCreate"] is False
    assert p["versioning"]["ifMatch"] == "refused"
    assert p["versioning"]["ifUnmodifiedSince"] == "supported"
    assert p["answers"]["precondition-failed"]["status"] == 412
    assert r["Observation"]["writableCategories"] == ["vital-signs"]
    assert r["Provenance"]["interactions"] == ["read", "search-type"] and "Flag" not in r


def test_medplum_like() -> None:
    p = load("medplum-like")
    assert p["transaction"]["allowed"] and p["batch"]["allowed"]
    assert p["transaction"]["strictIsolationMaxEntries"] == 8
    assert p["transaction"]["maxUpdates"] == 50
    assert p["answers"]["transaction-limit"]["status"] == 400
    assert all(rule["conditionalCreate"] for rule in p["resources"].values())
