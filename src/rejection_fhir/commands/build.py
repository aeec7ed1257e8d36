"""``rejection-fhir build``: worksheets → FHIR JSON files plus one transaction Bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rejection_fhir import jsonio
from rejection_fhir.errors import ConfigError, SourceError
from rejection_fhir.findings import Finding, has_errors
from rejection_fhir.worksheet import build as builder
from rejection_fhir.worksheet import project
from rejection_fhir.worksheet.source import format_first

BUNDLE_FILE = "bundle.json"
OWNED_PATTERNS = ("Questionnaire-*.json", "CodeSystem-*.json", "ValueSet-*.json", BUNDLE_FILE)


#: The unpacked FHIR package, beside the loose files: out/package/package.json, ...
PACKAGE_DIR = "package"


@dataclass
class BuildOutput:
    result: project.BuildResult
    findings: list[Finding]
    files: list[str]
    #: The package's .tgz name, when one was written.
    package: str | None = None


def build_all(
    source_dir: Path, *, base_url: str | None = None
) -> tuple[project.BuildResult, list[Finding]]:
    """Load, check and build; raise SourceError (nothing built) if any source has an error."""
    ws, findings = project.load(source_dir)
    if ws is None:
        raise SourceError(
            format_first(findings),
            findings=findings,
            hint="fix the source and run again; nothing was written",
        )
    result, more = project.check_and_build(ws, base_url=base_url)
    findings = [*findings, *more]
    if has_errors(findings):
        errors = [f for f in findings if f.severity == "error"]
        raise SourceError(
            format_first(errors),
            findings=findings,
            hint="fix the source and run again; nothing was written",
        )
    return result, findings


def package_manifest(result: project.BuildResult) -> dict[str, object]:
    """package.json for the built resources, from _project.yaml's ``package`` block."""
    from rejection_fhir.worksheet import package

    settings = result.project.get("package")
    if not isinstance(settings, dict):
        raise ConfigError(
            "build --package: _project.yaml has no package block",
            hint="add `package: {name: clinic.worksheets, version: 1.0.0}` to _project.yaml "
            "(a FHIR package id and a semantic version; see docs/packages.md)",
        )
    return package.manifest(settings, result.project, canonical=result.base)


def build(
    source_dir: Path, out_dir: Path, *, base_url: str | None = None, with_package: bool = False
) -> BuildOutput:
    result, findings = build_all(source_dir, base_url=base_url)
    files: dict[str, str | bytes] = {
        builder.file_name(r): jsonio.dumps(r) for r in result.resources
    }
    files[BUNDLE_FILE] = jsonio.dumps(result.bundle())
    tgz_name = None
    package_files: dict[str, str | bytes] = {}
    owned: tuple[str, ...] = OWNED_PATTERNS
    if with_package:
        from rejection_fhir.worksheet import package

        manifest = package_manifest(result)
        contents = package.package_files(manifest, result.resources)
        package_files = dict(contents)
        tgz_name = package.tarball_name(manifest)
        files[tgz_name] = package.tarball(contents)
        owned = (*OWNED_PATTERNS, f"{manifest['name']}-*.tgz")
    jsonio.write_folder(out_dir, files, owned=owned)
    if with_package:
        jsonio.write_folder(out_dir / PACKAGE_DIR, package_files, owned=("*.json",))
    return BuildOutput(result, findings, sorted(files), tgz_name)
