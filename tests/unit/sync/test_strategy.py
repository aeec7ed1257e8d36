"""Strategy choice from capabilities and probe evidence (pure)."""

from __future__ import annotations

import json

import pytest

from rejection_fhir.fhir.capabilities import parse_capability_statement
from rejection_fhir.sync.strategy import (
    Evidence,
    PublishMode,
    ReadMode,
    SearchResult,
    VersionCheck,
    WriteMode,
    choose_strategy,
)

SYNC_TYPES = ("DocumentReference", "Observation", "Flag", "Provenance", "Device", "Task")


def full_server(**overrides: object) -> dict:
    """A server like HAPI: everything, conditionally, in transactions."""
    resources = []
    for kind in ("Questionnaire", "CodeSystem", "ValueSet", "QuestionnaireResponse", *SYNC_TYPES):
        resources.append(
            {
                "type": kind,
                "interaction": [
                    {"code": c} for c in ("read", "create", "update", "search-type", "delete")
                ],
                "conditionalCreate": True,
                "conditionalUpdate": True,
                "versioning": "versioned-update",
                "searchParam": [
                    {"name": p, "type": "token"}
                    for p in ("_lastUpdated", "authored", "patient", "url", "identifier")
                ],
            }
        )
    rest = {"mode": "server", "resource": resources, "interaction": [{"code": "transaction"}]}
    rest.update(overrides)
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "software": {"name": "Full", "version": "1"},
        "rest": [rest],
    }


def edit(statement: dict, kind: str, **changes: object) -> dict:
    for entry in statement["rest"][0]["resource"]:
        if entry["type"] == kind:
            for key, value in changes.items():
                if value is None:
                    entry.pop(key, None)
                else:
                    entry[key] = value
    return statement


def drop(statement: dict, *kinds: str) -> dict:
    rest = statement["rest"][0]
    rest["resource"] = [r for r in rest["resource"] if r["type"] not in kinds]
    return statement


def only(*codes: str) -> list[dict]:
    return [{"code": c} for c in codes]


def params(*names: str) -> list[dict]:
    return [{"name": n, "type": "token"} for n in names]


def choose(statement: dict, evidence: Evidence | None = None):
    return choose_strategy(parse_capability_statement(statement), evidence)


def test_a_full_server_gets_what_sync_does_today():
    strategy = choose(full_server())
    assert strategy.publish is PublishMode.TRANSACTION
    assert strategy.read is ReadMode.LAST_UPDATED
    assert strategy.write is WriteMode.TRANSACTION
    assert strategy.version_check is VersionCheck.IF_MATCH
    assert strategy.writable == SYNC_TYPES
    assert strategy.max_conditional_entries is None
    assert strategy.degradations == () and strategy.can_sync and strategy.can_publish


@pytest.mark.parametrize(
    ("system", "note", "expected"),
    [
        ([{"code": "batch"}], {}, WriteMode.BATCH),
        ([], {}, WriteMode.CONDITIONAL),
        ([], {"conditionalCreate": None}, WriteMode.SEARCH_THEN_CREATE),
        (
            [{"code": "transaction"}],
            {"conditionalCreate": None, "searchParam": params("patient")},
            WriteMode.CREATE_WITH_LEDGER,
        ),
        ([{"code": "transaction"}], {"interaction": only("read", "search-type")}, WriteMode.NONE),
    ],
)
def test_write_mode_falls_back_step_by_step(system, note, expected):
    statement = edit(full_server(interaction=system), "DocumentReference", **note)
    strategy = choose(statement)
    assert strategy.write is expected
    assert strategy.can_sync is (expected is not WriteMode.NONE)
    if expected is not WriteMode.TRANSACTION:
        assert any(d.topic == "write" for d in strategy.degradations)


@pytest.mark.parametrize(
    ("qr_params", "export", "expected"),
    [
        (("_lastUpdated", "authored", "patient"), False, ReadMode.LAST_UPDATED),
        (("authored", "patient"), False, ReadMode.AUTHORED),
        (("patient",), True, ReadMode.BULK_EXPORT),
        (("patient",), False, ReadMode.PER_PATIENT),
        (("_id",), False, ReadMode.NONE),
    ],
)
def test_read_mode_prefers_last_updated_then_authored_then_export_then_per_patient(
    qr_params, export, expected
):
    statement = edit(full_server(), "QuestionnaireResponse", searchParam=params(*qr_params))
    if export:
        statement["rest"][0]["operation"] = [{"name": "export", "definition": "x"}]
    strategy = choose(statement)
    assert strategy.read is expected
    assert strategy.can_sync is (expected is not ReadMode.NONE)


def test_a_probe_that_was_refused_or_ignored_overrides_the_statement():
    refused = Evidence(searches={"QuestionnaireResponse:_lastUpdated": SearchResult.REFUSED})
    assert choose(full_server(), refused).read is ReadMode.AUTHORED
    ignored = Evidence(
        searches={
            "QuestionnaireResponse:_lastUpdated": SearchResult.IGNORED,
            "QuestionnaireResponse:authored": SearchResult.IGNORED,
        }
    )
    assert choose(full_server(), ignored).read is ReadMode.PER_PATIENT


def test_a_probe_that_worked_counts_though_the_statement_omits_the_parameter():
    statement = edit(full_server(), "QuestionnaireResponse", searchParam=params("patient"))
    works = Evidence(searches={"QuestionnaireResponse:_lastUpdated": SearchResult.WORKS})
    assert choose(statement, works).read is ReadMode.LAST_UPDATED


def test_version_check_from_statement_probe_or_documentation():
    plain = edit(full_server(), "DocumentReference", versioning=None)
    assert choose(plain).version_check is VersionCheck.NONE
    assert choose(plain, Evidence(etag_on_read=True)).version_check is VersionCheck.IF_MATCH
    # A Last-Modified alone does not show If-Unmodified-Since is honoured (HAPI sends one and
    # ignores the header): only a statement saying so counts.
    no_etag = Evidence(etag_on_read=False, last_modified_on_read=True)
    assert choose(plain, no_etag).version_check is VersionCheck.NONE
    documented = edit(
        full_server(),
        "DocumentReference",
        versioning=None,
        documentation="Updates require the If-Unmodified-Since header.",
    )
    assert choose(documented).version_check is VersionCheck.IF_UNMODIFIED_SINCE
    messages = [d.message for d in choose(plain).degradations]
    assert any("without a version check" in m for m in messages)


def test_no_update_on_notes_means_amendments_get_a_new_note():
    statement = edit(
        full_server(), "DocumentReference", interaction=only("read", "create", "search-type")
    )
    strategy = choose(statement)
    assert strategy.version_check is VersionCheck.NONE
    assert any("not marked superseded" in d.message for d in strategy.degradations)


def test_what_cannot_be_written_is_said_with_what_happens_instead():
    strategy = choose(drop(full_server(), "Flag", "Task"))
    assert strategy.writable == ("DocumentReference", "Observation", "Provenance", "Device")
    messages = {d.topic: d.message for d in strategy.degradations}
    assert messages["Flag"] == "no Flag: the safety alert goes at the top of the note"
    assert "--safety-task" in messages["Task"]
    assert strategy.can_sync


def test_observations_limited_to_vital_signs_cannot_carry_scores():
    statement = edit(
        full_server(),
        "Observation",
        supportedProfile=["http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs"],
    )
    strategy = choose(statement)
    assert strategy.observation_categories == ("vital-signs",)
    assert "Observation" not in strategy.writable
    message = next(d.message for d in strategy.degradations if d.topic == "Observation")
    assert "vital-signs" in message and "note only" in message


def test_survey_observations_stay_writable():
    statement = edit(
        full_server(),
        "Observation",
        supportedProfile=[
            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-survey"
        ],
    )
    assert "Observation" in choose(statement).writable


def test_medplum_caps_conditional_transactions_at_eight_entries():
    statement = full_server()
    statement["software"] = {"name": "medplum", "version": "5.2.13"}
    strategy = choose(statement)
    assert strategy.write is WriteMode.TRANSACTION and strategy.max_conditional_entries == 8
    assert any("above 8 entries" in d.message for d in strategy.degradations)


@pytest.mark.parametrize(
    ("questionnaire", "system", "expected"),
    [
        ({}, [{"code": "transaction"}], PublishMode.TRANSACTION),
        ({}, [], PublishMode.CONDITIONAL_CREATE),
        ({"conditionalCreate": None}, [], PublishMode.SEARCH_THEN_CREATE),
        ({"conditionalCreate": None, "searchParam": params("name")}, [], PublishMode.CREATE),
        ({"interaction": only("read", "search-type")}, [], PublishMode.NONE),
    ],
)
def test_publish_mode(questionnaire, system, expected):
    statement = edit(full_server(interaction=system), "Questionnaire", **questionnaire)
    strategy = choose(statement)
    assert strategy.publish is expected
    assert strategy.can_publish is (expected is not PublishMode.NONE)


def test_json_form_is_stable_and_serialisable():
    statement = drop(full_server(), "Flag")
    form = choose(statement).to_json()
    assert json.loads(json.dumps(form)) == form
    assert form["publish"] == "transaction" and form["versionCheck"] == "If-Match"
    assert form["degradations"] == [
        {"topic": "Flag", "message": "no Flag: the safety alert goes at the top of the note"}
    ]
    assert set(form) == {
        "publish",
        "read",
        "write",
        "versionCheck",
        "maxConditionalEntries",
        "writable",
        "observationCategories",
        "canPublish",
        "canSync",
        "degradations",
    }


def test_a_statement_that_says_if_match_is_refused_outweighs_an_etag():
    statement = edit(full_server(), "DocumentReference", versioning=None)
    statement["rest"][0]["documentation"] = "If-Match: refused; If-Unmodified-Since: supported."
    strategy = choose(statement, Evidence(etag_on_read=True))
    assert strategy.version_check is VersionCheck.IF_UNMODIFIED_SINCE


def test_what_a_note_must_hold_is_said_with_what_happens():
    statement = edit(
        full_server(),
        "DocumentReference",
        documentation="Content types accepted: text/plain. "
        "context.encounter must reference an existing Encounter.",
    )
    messages = [d.message for d in choose(statement).degradations]
    assert any("must reference an existing Encounter" in m for m in messages)
    assert "the note is accepted only as text/plain: no Markdown or XHTML rendering" in messages
    assert not any("Encounter" in d.message for d in choose(full_server()).degradations)


@pytest.mark.parametrize(
    ("levels", "qr_params", "says", "never"),
    [
        (("system",), ("_id",), ("sync --bulk",), ("--patients-group",)),
        (("Patient", "Group"), ("_id",), ("sync --bulk",), ("--patients-group",)),
        (
            ("Group",),
            ("_id", "patient"),
            ("--patients-group GROUP_ID", "--patients FILE"),
            ("--bulk",),
        ),
        (("Group",), ("_id",), ("--patients-group GROUP_ID",), ("--bulk", "--patients FILE")),
    ],
)
def test_an_export_read_says_how_sync_gets_it_at_the_offered_level(levels, qr_params, says, never):
    statement = edit(full_server(), "QuestionnaireResponse", searchParam=params(*qr_params))
    if "system" in levels:
        statement["rest"][0]["operation"] = [{"name": "export", "definition": "x"}]
    for kind in ("Patient", "Group"):
        if kind in levels:
            statement["rest"][0]["resource"].append(
                {"type": kind, "interaction": [{"code": "read"}], "operation": [{"name": "export"}]}
            )
    strategy = choose(statement)
    assert strategy.read is ReadMode.BULK_EXPORT
    (message,) = [d.message for d in strategy.degradations if d.topic == "read"]
    assert all(part in message for part in says), message
    assert not any(part in message for part in never), message
