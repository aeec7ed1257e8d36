"""``rejection-fhir build``: worksheets → FHIR JSON files plus one transaction Bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rejection_fhir import jsonio
from rejection_fhir.errors import SourceError
from rejection_fhir.findings import Finding, has_errors
from rejection_fhir.worksheet import build as builder
from rejection_fhir.worksheet import project
from rejection_fhir.worksheet.source import format_first

BUNDLE_FILE = "bundle.json"
OWNED_PATTERNS = ("Questionnaire-*.json", "CodeSystem-*.json", "ValueSet-*.json", BUNDLE_FILE)


@dataclass
class BuildOutput:
    result: project.BuildResult
    findings: list[Finding]
    files: list[str]


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


def build(source_dir: Path, out_dir: Path, *, base_url: str | None = None) -> BuildOutput:
    result, findings = build_all(source_dir, base_url=base_url)
    files = {builder.file_name(r): jsonio.dumps(r) for r in result.resources}
    files[BUNDLE_FILE] = jsonio.dumps(result.bundle())
    jsonio.write_folder(out_dir, files, owned=OWNED_PATTERNS)
    return BuildOutput(result, findings, sorted(files))
