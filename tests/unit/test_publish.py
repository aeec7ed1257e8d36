"""Publishing plan (pure) and the publish command against a recorded server (responses)."""

from __future__ import annotations

import copy

import pytest

from rejection_fhir.commands.publish import publish
from rejection_fhir.errors import VersionConflictError
from rejection_fhir.publish import differences, plan_publish, suggest_versions

BASE = "http://127.0.0.1:9999/fhir"


def _q(version="1.0.0", text="Why?"):
    return {
        "resourceType": "Questionnaire",
        "url": "https://x.example/Questionnaire/q",
        "version": version,
        "status": "active",
        "meta": {"profile": ["p"]},
        "item": [{"linkId": "why", "type": "text", "text": text}],
    }


def _on_server(resource, rid="17"):
    held = copy.deepcopy(resource)
    held.update(
        id=rid, meta={"versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z", "profile": ["p"]}
    )
    return held


def test_plan_create_unchanged_conflict_update():
    q = _q()
    key = ("Questionnaire", q["url"], "1.0.0")
    assert [s.action for s in plan_publish([q], {}).steps] == ["create"]
    assert [s.action for s in plan_publish([q], {key: [_on_server(q)]}).steps] == ["unchanged"]
    changed = _on_server(_q(text="Why not?"))
    (step,) = plan_publish([q], {key: [changed]}).steps
    assert step.action == "conflict" and step.differences == ("item 'why' changed",)
    assert plan_publish([q], {key: [changed]}, force=True).steps[0].action == "update"


def test_numbers_compare_by_value_and_server_fields_are_ignored():
    a = {**_q(), "extension": [{"url": "w", "valueDecimal": 1}]}
    b = {**_on_server(_q()), "extension": [{"url": "w", "valueDecimal": 1.0}], "text": {"div": "x"}}
    assert differences(a, b) == ()


def test_retire_old_versions():
    old = _on_server(_q("0.9.0"), rid="5")
    plan = plan_publish([_q()], {}, other_versions={("Questionnaire", _q()["url"]): [old]})
    retire = [s for s in plan.steps if s.action == "retire"]
    assert (
        len(retire) == 1
        and retire[0].resource["status"] == "retired"
        and "meta" not in retire[0].resource
    )
    tx = plan.transaction()
    assert [e["request"]["method"] for e in tx["entry"]] == ["POST", "PUT"]
    assert tx["entry"][1]["request"]["url"] == "Questionnaire/5"


def test_a_release_retires_its_own_pre_releases_and_nothing_newer():
    # Semver precedence (one rule for publish and the version guard): 1.1.0-rc.1 < 1.1.0,
    # so publishing 1.1.0 retires its release candidate; a later pre-release is not older.
    url = _q()["url"]
    held = [
        _on_server(_q("1.1.0-rc.1"), rid="7"),
        _on_server(_q("1.1.0-rc.10"), rid="8"),
        _on_server(_q("1.2.0-rc.1"), rid="9"),
    ]
    plan = plan_publish([_q("1.1.0")], {}, other_versions={("Questionnaire", url): held})
    assert [(s.action, s.version) for s in plan.steps if s.action == "retire"] == [
        ("retire", "1.1.0-rc.1"),
        ("retire", "1.1.0-rc.10"),
    ]


def test_suggested_versions():
    assert (
        suggest_versions("1.2.3")
        == "1.2.4 for wording fixes, 1.3.0 for additions, or 2.0.0 for breaking changes"
    )


def test_conflict_is_refused_and_nothing_is_written(repo, settings, built, fake_fhir):
    core = next(q for q in built.questionnaires if q["id"] == "core-beliefs")
    # The server holds core-beliefs at the same version, with other content.
    fake_fhir.add(
        {
            "resourceType": "Questionnaire",
            "id": "9",
            "url": core["url"],
            "version": core["version"],
            "status": "active",
            "item": [],
        }
    )
    with pytest.raises(VersionConflictError) as caught:
        publish(repo / "questionnaires", settings)
    message = str(caught.value)
    assert (
        "core-beliefs|1.0.0 differs" in message
        and "bump the version" in message
        and "1.0.1" in message
    )
    assert fake_fhir.writes() == []
    assert {"url", "version"} <= set(fake_fhir.searched("Questionnaire")[0])


def test_dry_run_writes_nothing(repo, settings, fake_fhir):
    report = publish(repo / "questionnaires", settings, dry_run=True)
    assert report.counts() == {"create": len(report.plan.steps)}
    assert {c.method for c in fake_fhir.requests} == {"GET"}


def test_publish_writes_once_then_finds_everything_published(repo, settings, fake_fhir):
    first = publish(repo / "questionnaires", settings)
    assert first.counts() == {"create": len(first.plan.steps)}
    held = len(fake_fhir.all("Questionnaire"))
    assert held == sum(1 for s in first.plan.steps if s.resource["resourceType"] == "Questionnaire")
    writes = len(fake_fhir.writes())
    again = publish(repo / "questionnaires", settings)
    assert "create" not in again.counts()
    assert len(fake_fhir.writes()) == writes, "nothing written twice"


def test_a_server_without_questionnaire_create_is_refused_before_any_write(
    repo, settings, fake_fhir
):
    from rejection_fhir.commands.publish import publish
    from rejection_fhir.errors import ExitCode, FormsNotAcceptedError

    fake_fhir.statement = {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "software": {"name": "Epic"},
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {"type": "Questionnaire", "interaction": [{"code": "read"}]},
                    {"type": "DocumentReference", "interaction": [{"code": "create"}]},
                ],
            }
        ],
    }
    with pytest.raises(FormsNotAcceptedError) as caught:
        publish(repo / "questionnaires", settings)
    assert caught.value.exit_code is ExitCode.NO_FORMS
    assert "Epic does not take Questionnaires" in caught.value.message
    assert "rejection-fhir build --out" in (caught.value.hint or "")
    assert "build --package" in (caught.value.hint or "")  # the FHIR package too
    assert len(fake_fhir.requests) == 1  # the statement only: no search, no write
