"""publish against HAPI: idempotent, refuses changed content, dry run, exact round trip."""

from __future__ import annotations

import shutil

import pytest

from rejection_fhir.commands.build import build_all
from rejection_fhir.commands.publish import publish
from rejection_fhir.errors import VersionConflictError

pytestmark = pytest.mark.integration


def _count(client, rtype, url, version):
    return len(list(client.search(rtype, {"url": url, "version": version})))


def test_publish_twice_gives_exactly_one_of_each(repo, settings, client, canonical_base):
    built, _ = build_all(repo / "questionnaires", base_url=canonical_base)
    first = publish(repo / "questionnaires", settings, base_url=canonical_base)
    assert first.counts() == {"create": len(built.resources)}
    second = publish(repo / "questionnaires", settings, base_url=canonical_base)
    assert second.counts() == {"unchanged": len(built.resources)}
    for resource in built.resources:
        assert _count(client, resource["resourceType"], resource["url"], resource["version"]) == 1


def test_what_is_read_back_equals_what_was_built(repo, settings, client, canonical_base):
    from rejection_fhir.publish import differences

    built, _ = build_all(repo / "questionnaires", base_url=canonical_base)
    publish(repo / "questionnaires", settings, base_url=canonical_base)
    for resource in built.resources:
        (held,) = client.search(
            resource["resourceType"], {"url": resource["url"], "version": resource["version"]}
        )
        assert differences(resource, held) == (), resource["url"]
        stripped = {k: v for k, v in held.items() if k not in {"id", "meta", "text"}}
        assert stripped == {k: v for k, v in resource.items() if k not in {"id", "meta", "text"}}
        if resource["resourceType"] == "Questionnaire":
            # The generated narrative is stored (the server may re-serialise its XHTML).
            assert held["text"]["status"] == "generated"
            assert resource["title"] in held["text"]["div"]


def test_changed_content_without_a_version_bump_is_refused(
    repo, settings, client, canonical_base, tmp_path
):
    source = tmp_path / "questionnaires"
    shutil.copytree(repo / "questionnaires", source)
    publish(source, settings, base_url=canonical_base)
    path = source / "core-beliefs.yaml"
    path.write_text(
        path.read_text().replace("A more balanced way of seeing it", "A kinder way of seeing it")
    )
    url = f"{canonical_base}/Questionnaire/core-beliefs"
    (before,) = client.search("Questionnaire", {"url": url, "version": "1.0.0"})
    with pytest.raises(VersionConflictError, match=r"core-beliefs\|1\.0\.0"):
        publish(source, settings, base_url=canonical_base)
    (after,) = client.search("Questionnaire", {"url": url, "version": "1.0.0"})
    assert after == before, "the server is unchanged"
    path.write_text(path.read_text().replace("version: 1.0.0", "version: 1.0.1"))
    report = publish(source, settings, base_url=canonical_base, retire_old=True)
    actions = {(s.step.resource_type, s.step.canonical): s.step.action for s in report.results}
    assert actions[("Questionnaire", f"{url}|1.0.1")] == "create"
    assert actions[("Questionnaire", f"{url}|1.0.0")] == "retire"
    (old,) = client.search("Questionnaire", {"url": url, "version": "1.0.0"})
    assert old["status"] == "retired"


def test_dry_run_writes_nothing(repo, settings, client, canonical_base):
    report = publish(repo / "questionnaires", settings, base_url=canonical_base, dry_run=True)
    assert set(report.counts()) == {"create"}
    for step in report.plan.steps:
        assert _count(client, step.resource_type, step.url, step.version) == 0


def test_force_overwrites_in_place(repo, settings, client, canonical_base, tmp_path):
    source = tmp_path / "questionnaires"
    shutil.copytree(repo / "questionnaires", source)
    publish(source, settings, base_url=canonical_base)
    path = source / "future-focus.yaml"
    path.write_text(
        path.read_text().replace("What matters most to me?", "What matters most to me now?")
    )
    report = publish(source, settings, base_url=canonical_base, force=True)
    assert [r.step.action for r in report.results if r.step.action != "unchanged"] == ["update"]
    (held,) = client.search(
        "Questionnaire", {"url": f"{canonical_base}/Questionnaire/future-focus", "version": "1.0.1"}
    )
    assert held["item"][0]["text"] == "What matters most to me now?"
