"""CapabilityStatement and SMART configuration parsing (pure)."""

from __future__ import annotations

import pytest

from rejection_fhir.errors import FhirServerError
from rejection_fhir.fhir.capabilities import (
    note_requirements,
    observation_categories,
    parse_capability_statement,
    parse_smart_configuration,
    stated_header,
)


def statement(*resources: dict, **rest: object) -> dict:
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "software": {"name": "Example", "version": "1.2"},
        "publisher": "Example Inc",
        "rest": [{"mode": "server", "resource": list(resources), **rest}],
    }


def resource(kind: str, *interactions: str, params: tuple[str, ...] = (), **more: object) -> dict:
    return {
        "type": kind,
        "interaction": [{"code": i} for i in interactions],
        "searchParam": [{"name": p, "type": "token"} for p in params],
        **more,
    }


def test_interactions_search_params_and_conditionals_per_type():
    caps = parse_capability_statement(
        statement(
            resource(
                "DocumentReference",
                "read",
                "create",
                "update",
                "search-type",
                params=("identifier", "patient"),
                conditionalCreate=True,
                versioning="versioned-update",
            ),
            resource("QuestionnaireResponse", "read", "search-type", params=("patient",)),
            interaction=[{"code": "transaction"}, {"code": "history-system"}],
            searchParam=[{"name": "_lastUpdated", "type": "date"}],
        )
    )
    assert caps.software == "Example 1.2" and caps.fhir_version == "4.0.1"
    assert caps.system_interactions == {"transaction", "history-system"}
    note = caps.resource("DocumentReference")
    assert note is not None and note.conditional_create and not note.conditional_update
    assert note.versioning == "versioned-update"
    assert caps.writable("DocumentReference") == {"create", "update"}
    assert caps.writable("QuestionnaireResponse") == frozenset()
    assert caps.writable("Flag") == frozenset()
    assert caps.searchable("DocumentReference", "identifier")
    # rest.searchParam applies to every searchable type
    assert caps.searchable("QuestionnaireResponse", "_lastUpdated")
    assert not caps.searchable("QuestionnaireResponse", "authored")
    assert not caps.searchable("Flag", "_lastUpdated")


def test_a_parameter_without_search_type_is_not_searchable():
    caps = parse_capability_statement(statement(resource("Questionnaire", "read", params=("url",))))
    assert not caps.searchable("Questionnaire", "url")


def test_a_type_listed_twice_is_the_union_of_both_entries():
    caps = parse_capability_statement(
        statement(
            resource("Observation", "read", params=("code",)),
            resource("Observation", "create", conditionalCreate=True),
        )
    )
    observation = caps.resource("Observation")
    assert observation is not None
    assert observation.interactions == {"read", "create"} and observation.conditional_create


def test_export_at_system_patient_and_group_level():
    caps = parse_capability_statement(
        statement(
            resource("Group", "read", operation=[{"name": "export", "definition": "x"}]),
            resource("Patient", "read", operation=[{"name": "$export", "definition": "x"}]),
            operation=[{"name": "export", "definition": "x"}],
        )
    )
    assert caps.has_export() == ("system", "Patient", "Group")
    assert parse_capability_statement(statement(resource("Patient", "read"))).has_export() == ()


def test_security_services_and_token_url():
    caps = parse_capability_statement(
        statement(
            security={
                "service": [
                    {"coding": [{"system": "x", "code": "SMART-on-FHIR"}]},
                    {"text": "Basic over TLS"},
                ],
                "extension": [
                    {
                        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                        "extension": [{"url": "token", "valueUri": "https://auth.example/token"}],
                    }
                ],
            }
        )
    )
    assert caps.security_services == ("SMART-on-FHIR", "Basic over TLS")
    assert caps.token_url == "https://auth.example/token"


def test_odd_shapes_are_tolerated():
    caps = parse_capability_statement(
        {
            "resourceType": "CapabilityStatement",
            "rest": [{"resource": [{"type": "Patient", "interaction": "read"}, {"no": "type"}, 7]}],
        }
    )
    assert set(caps.resources) == {"Patient"} and caps.software == "" and caps.fhir_version == ""


def test_a_dstu2_conformance_is_refused_with_a_hint():
    with pytest.raises(FhirServerError, match="Conformance") as caught:
        parse_capability_statement({"resourceType": "Conformance", "fhirVersion": "1.0.2"})
    assert caught.value.hint and "R4" in caught.value.hint


@pytest.mark.parametrize(
    ("profiles", "categories"),
    [
        (
            (
                "http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure",
                "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab|3.1.1",
            ),
            ("laboratory", "vital-signs"),
        ),
        (("http://hl7.org/fhir/StructureDefinition/bodyweight",), ("vital-signs",)),
        (
            ("http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-survey",),
            ("survey",),
        ),
        # A profile the table does not know: the statement does not say which categories.
        (("http://example.org/StructureDefinition/my-observation",), None),
    ],
)
def test_observation_categories_from_supported_profiles(profiles, categories):
    assert observation_categories(profiles) == categories


def test_observation_without_profiles_is_not_restricted():
    caps = parse_capability_statement(statement(resource("Observation", "create")))
    assert caps.observation_categories() is None


def test_smart_configuration_backend_services():
    smart = parse_smart_configuration(
        {
            "token_endpoint": "https://auth.example/token",
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "capabilities": ["launch-ehr"],
        }
    )
    assert smart.backend_services and smart.token_endpoint == "https://auth.example/token"
    user_only = parse_smart_configuration({"grant_types_supported": ["authorization_code"]})
    assert not user_only.backend_services and user_only.token_endpoint is None


@pytest.mark.parametrize(
    ("rest_text", "note_text", "if_match", "if_unmodified_since"),
    [
        # What the local profiles' /metadata says (servers/hapi ProfileCapabilityStatementProvider).
        ("If-Match: refused; If-Unmodified-Since: supported; ETag: not sent.", "", False, True),
        ("If-Match: supported; If-Unmodified-Since: ignored; ETag: sent.", "", True, False),
        # A stated state wins over a passing mention earlier on.
        (
            "Updates guarded by If-Unmodified-Since instead of If-Match; "
            "If-Match: refused; If-Unmodified-Since: supported.",
            "",
            False,
            True,
        ),
        ("", "Updates require the If-Unmodified-Since header.", None, True),
        ("If-Match is not supported.", "", False, None),
        ("", "", None, None),
    ],
)
def test_version_headers_as_the_documentation_states_them(
    rest_text, note_text, if_match, if_unmodified_since
):
    caps = parse_capability_statement(
        statement(
            resource("DocumentReference", "create", "update", documentation=note_text),
            documentation=rest_text,
        )
    )
    assert stated_header(caps, "If-Match", "DocumentReference") is if_match
    assert stated_header(caps, "If-Unmodified-Since", "DocumentReference") is if_unmodified_since


def test_what_a_note_must_hold_from_its_documentation():
    stated = parse_capability_statement(
        statement(
            resource(
                "DocumentReference",
                "create",
                documentation="Sort keys: none. Content types accepted: text/plain. "
                "context.encounter must reference an existing Encounter.",
            )
        )
    )
    needs = note_requirements(stated)
    assert (needs.encounter, needs.content_types) == (True, ("text/plain",))
    silent = note_requirements(parse_capability_statement(statement(resource("DocumentReference"))))
    assert (silent.encounter, silent.content_types) == (None, None)
