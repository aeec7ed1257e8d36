"""Derived keys: stable per source, response and (where written per version) version."""

from __future__ import annotations

from urllib.parse import parse_qs

from rejection_fhir.ehr.entries import (
    DERIVED_SYSTEM,
    ResponseVersion,
    create_once,
    derived_id,
    keep_updated,
    source_key,
    urn,
)


def test_keys_per_version_or_per_response() -> None:
    ref = ResponseVersion("https://ehr.test/fhir/", "q", "3")
    assert ref.key("note", per_version=True) == f"{source_key('https://ehr.test/fhir')}/q/3/note"
    assert ref.key("obs/a", per_version=False) == derived_id(
        "https://ehr.test/fhir", "q", None, "obs/a"
    )
    other = ResponseVersion("https://other.test/fhir", "q", "3")
    assert other.key("note", per_version=True) != ref.key("note", per_version=True)


def test_references_relative_on_the_same_server_absolute_otherwise() -> None:
    assert ResponseVersion("https://s/fhir", "q", "2").versioned_reference == (
        "QuestionnaireResponse/q/_history/2"
    )
    assert ResponseVersion("https://s/fhir/", "q", "2", same_server=False).reference == (
        "https://s/fhir/QuestionnaireResponse/q"
    )


def test_entries_are_keyed_on_the_derived_identifier() -> None:
    created = create_once("k/1", {"resourceType": "Flag"})
    assert (
        created["fullUrl"] == urn("k/1") == create_once("k/1", {"resourceType": "Flag"})["fullUrl"]
    )
    assert parse_qs(created["request"]["ifNoneExist"]) == {"identifier": [f"{DERIVED_SYSTEM}|k/1"]}
    updated = keep_updated("k/2", {"resourceType": "Observation"})
    assert updated["request"]["method"] == "PUT"
    assert updated["request"]["url"].startswith("Observation?identifier=")
