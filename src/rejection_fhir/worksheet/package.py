"""FHIR NPM packages: the built resources as a package HAPI, Firely, Smile, the IG Publisher
and SUSHI load, and a package read back (for ``validate`` and the version guard).

The format is the FHIR NPM Package specification (hl7.org/fhir/packages.html and HL7
Confluence, "NPM Package Specification"): a gzipped tarball holding a ``package/`` folder
with ``package.json`` (name, version, fhirVersions, dependencies, canonical, ...), the
resources as JSON files, and ``.index.json`` (``index-version`` 2: for each resource file
its filename, resourceType, id, url, version and, where the type has them, kind, type,
supplements and content).

Pure functions, no clock: the same resources always give the same bytes.  Entries are
written in a fixed order with fixed modification times (npm's own reproducible-pack
date), owner 0 and mode 0644; the gzip header carries no name and mtime 0.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rejection_fhir import FHIR_VERSION
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.findings import Finding
from rejection_fhir.worksheet.build import M49

#: The package id when _project.yaml names none.
DEFAULT_NAME = "rejection-fhir.worksheets"
#: The core package every R4 package depends on.
CORE_PACKAGE = "hl7.fhir.r4.core"
INDEX_VERSION = 2
#: 1985-10-26T08:15:00Z, the fixed date ``npm pack`` gives every entry for reproducible packs.
ENTRY_MTIME = 499162500
#: The index fields of a resource, in the order written, where the resource has them.
_INDEX_FIELDS = ("url", "version", "kind", "type", "supplements", "content")
#: The package's own files, not resources.
PACKAGE_JSON = "package.json"
INDEX_JSON = ".index.json"


def _dumps(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def resource_file_name(resource: Mapping[str, Any]) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def manifest(
    settings: Mapping[str, Any], project: Mapping[str, Any], *, canonical: str
) -> JsonDict:
    """``package/package.json``.  ``settings`` is _project.yaml's ``package`` block."""
    out: JsonDict = {
        "name": settings.get("name", DEFAULT_NAME),
        "version": settings["version"],
        "type": "Conformance",
        "canonical": canonical,
        "url": canonical,
        "title": settings.get("title", project.get("codeSystem", {}).get("title", "")),
        "description": settings.get("description")
        or "FHIR R4 Questionnaires, CodeSystem and ValueSets built by rejection-fhir.",
        "fhirVersions": [FHIR_VERSION],
        "dependencies": {CORE_PACKAGE: FHIR_VERSION},
        "author": settings.get("author", project.get("publisher", "")),
    }
    if "license" in settings:
        out["license"] = settings["license"]
    if "jurisdiction" in project:
        out["jurisdiction"] = f"{M49}#{project['jurisdiction']}"
    return out


def index_entry(file_name: str, resource: Mapping[str, Any]) -> JsonDict:
    entry: JsonDict = {
        "filename": file_name,
        "resourceType": resource["resourceType"],
        "id": resource["id"],
    }
    for key in _INDEX_FIELDS:
        value = resource.get(key)
        if isinstance(value, str):
            entry[key] = value
    return entry


def package_files(
    manifest_json: Mapping[str, Any], resources: Sequence[Mapping[str, Any]]
) -> dict[str, bytes]:
    """Name inside ``package/`` → bytes: package.json, .index.json and every resource."""
    named = sorted((resource_file_name(r), r) for r in resources)
    files = {PACKAGE_JSON: _dumps(manifest_json)}
    files[INDEX_JSON] = _dumps(
        {"index-version": INDEX_VERSION, "files": [index_entry(n, r) for n, r in named]}
    )
    for name, resource in named:
        files[name] = _dumps(resource)
    return files


def tarball(files: Mapping[str, bytes]) -> bytes:
    """The ``.tgz``: every file under ``package/``, byte-identical for the same files."""
    raw = io.BytesIO()
    order = [
        PACKAGE_JSON,
        INDEX_JSON,
        *sorted(n for n in files if n not in {PACKAGE_JSON, INDEX_JSON}),
    ]
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in order:
            data = files[name]
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            info.mtime = ENTRY_MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def tarball_name(manifest_json: Mapping[str, Any]) -> str:
    return f"{manifest_json['name']}-{manifest_json['version']}.tgz"


# --- Reading a package -------------------------------------------------------------------


class PackageError(ValueError):
    """Not a readable FHIR package; the message says why."""


#: The largest package read: ours is ~100 kB; hl7.fhir.r4.core is ~50 MB unpacked.
MAX_PACKAGE_BYTES = 200_000_000


def is_package(path: Path) -> bool:
    """A ``.tgz`` file, or an unpacked package: a folder with ``package/package.json``, or
    with ``package.json`` and ``.index.json`` (a bare package.json may be a Node project's)."""
    if path.is_file():
        return path.name.endswith((".tgz", ".tar.gz"))
    return path.is_dir() and (
        (path / "package" / PACKAGE_JSON).is_file()
        or ((path / PACKAGE_JSON).is_file() and (path / INDEX_JSON).is_file())
    )


def read_package(path: Path) -> tuple[JsonDict, list[tuple[JsonDict, str]]]:
    """package.json and every resource of a package (``.tgz`` or unpacked folder), each with
    where it came from (``pkg.tgz#package/Questionnaire-x.json``)."""
    if path.is_dir():
        return _read_folder(path)
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            return _read_tar(tar, str(path))
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise PackageError(f"{path}: not a readable .tgz package ({exc})") from None


def _parse(data: bytes, where: str) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{where}: not valid JSON ({exc})") from None


def _read_tar(tar: tarfile.TarFile, label: str) -> tuple[JsonDict, list[tuple[JsonDict, str]]]:
    manifest_json: Any = None
    resources: list[tuple[JsonDict, str]] = []
    total = 0
    for member in tar:
        if not member.isfile():
            continue
        name = member.name.lstrip("./")
        folder, _, base = name.rpartition("/")
        # Resources live in package/ itself; package/examples, package/other... are not ours
        # to compare (the spec leaves their use open).
        if folder != "package" or not base.endswith(".json"):
            continue
        total += member.size
        if total > MAX_PACKAGE_BYTES:
            raise PackageError(f"{label}: more than {MAX_PACKAGE_BYTES // 1_000_000} MB of JSON")
        handle = tar.extractfile(member)
        if handle is None:
            continue
        value = _parse(handle.read(), f"{label}#{name}")
        if base == PACKAGE_JSON:
            manifest_json = value
        elif base != INDEX_JSON and isinstance(value, dict) and "resourceType" in value:
            resources.append((value, f"{label}#{name}"))
    if not isinstance(manifest_json, dict):
        raise PackageError(f"{label}: no package/package.json; is this a FHIR package?")
    return manifest_json, resources


def _read_folder(path: Path) -> tuple[JsonDict, list[tuple[JsonDict, str]]]:
    folder = path / "package" if (path / "package" / PACKAGE_JSON).is_file() else path
    try:
        manifest_json = _parse((folder / PACKAGE_JSON).read_bytes(), str(folder / PACKAGE_JSON))
    except OSError as exc:
        raise PackageError(f"{folder}: no readable {PACKAGE_JSON} ({exc.strerror})") from None
    if not isinstance(manifest_json, dict):
        raise PackageError(f"{folder / PACKAGE_JSON}: not a package manifest (a JSON object)")
    resources: list[tuple[JsonDict, str]] = []
    for file in sorted(folder.glob("*.json")):
        if file.name in {PACKAGE_JSON, INDEX_JSON}:
            continue
        try:
            value = _parse(file.read_bytes(), str(file))
        except OSError as exc:
            raise PackageError(f"{file}: cannot read it ({exc.strerror})") from None
        if isinstance(value, dict) and "resourceType" in value:
            resources.append((value, str(file)))
    return manifest_json, resources


# --- Checking a package ----------------------------------------------------------------


def check_package(path: Path) -> tuple[list[Finding], list[tuple[JsonDict, str]]]:
    """Findings on a package (manifest, then every Questionnaire with the same rules as a
    built worksheet), and its Questionnaires with where each came from."""
    from rejection_fhir.worksheet import rules

    try:
        manifest_json, resources = read_package(path)
    except PackageError as exc:
        return [Finding(str(path), None, None, "error", "package-unreadable", str(exc))], []
    findings = [
        Finding(str(path), None, None, "error", "package-manifest", problem, PACKAGE_JSON)
        for problem in manifest_problems(manifest_json)
    ]
    systems: dict[str, set[str]] = {}
    for resource, _ in resources:
        concepts = resource.get("concept")
        if resource.get("resourceType") == "CodeSystem" and isinstance(resource.get("url"), str):
            systems[resource["url"]] = {
                str(c.get("code"))
                for c in (concepts if isinstance(concepts, list) else [])
                if isinstance(c, Mapping)
            }
    questionnaires = [
        (r, origin) for r, origin in resources if r.get("resourceType") == "Questionnaire"
    ]
    for q, origin in questionnaires:
        for issue in [*rules.check_structure(q), *rules.check_questionnaire(q, systems)]:
            findings.append(
                Finding(
                    origin,
                    None,
                    None,
                    issue.severity,
                    issue.rule,
                    issue.message,
                    issue.link_id or issue.path,
                )
            )
    return findings, questionnaires


_PACKAGE_NAME = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$")


def manifest_problems(manifest_json: Mapping[str, Any]) -> list[str]:
    """What package.json lacks for a FHIR package of R4 conformance resources."""
    problems = []
    name = manifest_json.get("name")
    if not isinstance(name, str) or not _PACKAGE_NAME.match(name):
        problems.append(
            f"package.json name {name!r} is not a FHIR package id (lower-case parts joined "
            "by dots, at least two, e.g. clinic.worksheets)"
        )
    if not isinstance(manifest_json.get("version"), str):
        problems.append("package.json has no version")
    versions = manifest_json.get("fhirVersions")
    dependencies = manifest_json.get("dependencies")
    core = dependencies.get(CORE_PACKAGE) if isinstance(dependencies, Mapping) else None
    if not (isinstance(versions, list) and FHIR_VERSION in versions) and core != FHIR_VERSION:
        problems.append(
            f"package.json names neither fhirVersions [{FHIR_VERSION!r}] nor a dependency "
            f"on {CORE_PACKAGE} {FHIR_VERSION}: servers will not load it as FHIR R4"
        )
    return problems
