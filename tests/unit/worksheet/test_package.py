"""``build --package``: a FHIR NPM package (package.json, .index.json, resources) that is
byte-identical on a rebuild, and that ``validate`` and the version guard read back."""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from rejection_fhir.cli import main
from rejection_fhir.commands.build import build
from rejection_fhir.commands.validate import validate
from rejection_fhir.errors import ConfigError, ExitCode, InputError
from rejection_fhir.worksheet import package
from tests.conftest import QUESTIONNAIRES

TGZ = "rejection-fhir.worksheets-1.0.0.tgz"


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "out"
    build(QUESTIONNAIRES, out, with_package=True)
    return out


def _members(tgz: Path) -> dict[str, bytes]:
    with tarfile.open(tgz, mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_package_json_says_what_servers_need(out):
    manifest = json.loads((out / "package" / "package.json").read_text(encoding="utf-8"))
    assert manifest["name"] == "rejection-fhir.worksheets"
    assert manifest["version"] == "1.0.0"
    assert manifest["fhirVersions"] == ["4.0.1"]
    assert manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1"}
    assert manifest["canonical"] == manifest["url"] == "https://rejection-fhir.org/fhir"
    assert manifest["type"] == "Conformance"
    for key in ("title", "description", "author", "license"):
        assert manifest[key], key
    assert package.manifest_problems(manifest) == []


def test_index_lists_every_resource_with_its_canonical(out, built):
    folder = out / "package"
    index = json.loads((folder / ".index.json").read_text(encoding="utf-8"))
    assert index["index-version"] == 2
    entries = {e["filename"]: e for e in index["files"]}
    resources = {package.resource_file_name(r): r for r in built.resources}
    assert (
        set(entries)
        == set(resources)
        == {p.name for p in folder.glob("*.json") if p.name not in {"package.json", ".index.json"}}
    )
    for name, resource in resources.items():
        entry = entries[name]
        assert (entry["resourceType"], entry["id"], entry["url"], entry["version"]) == (
            resource["resourceType"],
            resource["id"],
            resource["url"],
            resource["version"],
        )
        assert json.loads((folder / name).read_text(encoding="utf-8")) == resource
    assert entries["CodeSystem-coping-with-rejection.json"]["content"] == "complete"
    assert "Questionnaire-weekly-check-in.json" in entries  # forms made elsewhere too


def test_tgz_holds_the_unpacked_folder_under_package(out):
    members = _members(out / TGZ)
    assert list(members)[:2] == ["package/package.json", "package/.index.json"]
    assert members == {f"package/{p.name}": p.read_bytes() for p in (out / "package").iterdir()}
    assert "bundle.json" not in {name.rsplit("/", 1)[1] for name in members}


def test_rebuild_is_byte_identical(out, tmp_path):
    again = tmp_path / "again"
    build(QUESTIONNAIRES, again, with_package=True)
    assert (again / TGZ).read_bytes() == (out / TGZ).read_bytes()
    raw = (out / TGZ).read_bytes()
    assert raw[4:8] == b"\0\0\0\0", "gzip mtime is 0"
    with tarfile.open(out / TGZ, mode="r:gz") as tar:
        assert {(m.mtime, m.uid, m.gid, m.mode) for m in tar} == {
            (package.ENTRY_MTIME, 0, 0, 0o644)
        }


def test_validate_and_the_version_guard_read_a_package(out, tmp_path, monkeypatch):
    monkeypatch.delenv("RFHIR_AGAINST", raising=False)
    assert validate([out / TGZ]) == []
    assert validate([out / "package"]) == []
    source = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRES, source)
    path = source / "rejection-log.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("A short record", "A brief record"), encoding="utf-8")
    for ref in (out / TGZ, out / "package", out):
        found = [f for f in validate([source], against=str(ref)) if f.severity == "error"]
        assert [(f.rule, Path(f.file).name) for f in found] == [
            ("version-unchanged", "rejection-log.yaml")
        ], ref
    # A package as input, against another package: the same comparison, by url.
    changed = tmp_path / "changed"
    build(source, changed, with_package=True)
    found = validate([changed / TGZ], against=str(out / TGZ))
    assert [f.rule for f in found if f.severity == "error"] == ["version-unchanged"]


def test_a_broken_package_is_reported_not_crashed_on(tmp_path, out):
    members = _members(out / TGZ)
    q = json.loads(members["package/Questionnaire-core-beliefs.json"])
    q["version"] = "one"
    members["package/Questionnaire-core-beliefs.json"] = json.dumps(q).encode()
    manifest = json.loads(members["package/package.json"])
    del manifest["fhirVersions"], manifest["dependencies"]
    members["package/package.json"] = json.dumps(manifest).encode()
    files = {name.removeprefix("package/"): data for name, data in members.items()}
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(package.tarball(files))
    rules = sorted(f.rule for f in validate([bad]))
    assert rules == ["package-manifest", "semver"]
    garbage = tmp_path / "garbage.tgz"
    garbage.write_bytes(gzip.compress(b"not a tar"))
    (f,) = validate([garbage])
    assert f.rule == "package-unreadable"
    with pytest.raises(InputError):
        validate([QUESTIONNAIRES], against=str(garbage))


def test_without_a_package_block_build_says_what_to_add(tmp_path):
    source = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRES, source)
    project = source / "_project.yaml"
    text = project.read_text(encoding="utf-8")
    start = text.index("package:\n")
    end = text.index("\n", text.index("  license:", start)) + 1
    project.write_text(text[:start] + text[end:], encoding="utf-8")
    build(source, tmp_path / "plain")  # without --package nothing is needed
    with pytest.raises(ConfigError) as caught:
        build(source, tmp_path / "out", with_package=True)
    assert "package" in str(caught.value.hint)
    assert not (tmp_path / "out").exists()
    assert caught.value.exit_code == ExitCode.CONFIG


def test_cli_writes_the_package(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["build", "--worksheets", str(QUESTIONNAIRES), "--out", str(tmp_path), "--package"])
        raise SystemExit(0)
    assert caught.value.code in (0, None)
    assert (tmp_path / TGZ).is_file() and (tmp_path / "package" / ".index.json").is_file()
    assert TGZ in capsys.readouterr().err  # status lines go to stderr


def test_a_node_projects_package_json_is_not_a_fhir_package(tmp_path, out):
    (tmp_path / "package.json").write_text('{"name": "web", "version": "1.0.0"}')
    assert not package.is_package(tmp_path)
    assert package.is_package(out) and package.is_package(out / "package")
    assert package.is_package(out / TGZ)
