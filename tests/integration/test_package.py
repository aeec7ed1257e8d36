"""A FHIR package built by ``build --package`` loads into HAPI through its package installer
(``$install-package`` in servers/hapi, HAPI JPA's IPackageInstallerSvc), and the
Questionnaires come back by canonical url|version as they were built."""

from __future__ import annotations

import base64
import json
import shutil
import uuid

import pytest

from rejection_fhir.commands.build import build
from rejection_fhir.worksheet import package

pytestmark = pytest.mark.integration


def test_built_package_installs_into_hapi(repo, client, canonical_base, tmp_path):
    source = tmp_path / "questionnaires"
    shutil.copytree(repo / "questionnaires", source)
    # A package id of this test's own: HAPI keeps every installed name#version, and a
    # second install of the same one would be answered from what it kept.
    name = f"rejection-fhir.test{uuid.uuid4().hex[:10]}"
    project = source / "_project.yaml"
    text = project.read_text(encoding="utf-8")
    project.write_text(
        text.replace("  name: rejection-fhir.worksheets\n", f"  name: {name}\n"), encoding="utf-8"
    )
    out = tmp_path / "out"
    output = build(source, out, base_url=canonical_base, with_package=True)
    assert output.package == f"{name}-1.0.0.tgz"
    tgz = (out / output.package).read_bytes()

    answer = client.operation(
        "install-package",
        body={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "npmContent", "valueBase64Binary": base64.b64encode(tgz).decode()}
            ],
        },
    )
    assert answer is not None
    installed = {
        next(p["valueString"] for p in param["part"] if p["name"] == "resourceType"): next(
            p["valueInteger"] for p in param["part"] if p["name"] == "count"
        )
        for param in answer["parameter"]
        if param["name"] == "installed"
    }
    built = output.result
    assert installed == {
        "CodeSystem": 1,
        "ValueSet": len(built.valuesets),
        "Questionnaire": len(built.questionnaires),
    }, answer

    index = json.loads((out / "package" / ".index.json").read_text(encoding="utf-8"))
    for entry in index["files"]:
        found = list(
            client.search(entry["resourceType"], {"url": entry["url"], "version": entry["version"]})
        )
        assert len(found) == 1, entry
        held = found[0]
        mine = json.loads((out / "package" / entry["filename"]).read_text(encoding="utf-8"))
        if entry["resourceType"] == "Questionnaire":
            assert held["item"] == mine["item"], entry["filename"]
            assert (held["title"], held["status"]) == (mine["title"], mine["status"])
    assert (
        package.manifest_problems(
            json.loads((out / "package" / "package.json").read_text(encoding="utf-8"))
        )
        == []
    )
