"""``rejection-fhir validate``: schema, FHIR structure, que-* invariants, SDC and our rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rejection_fhir.errors import SourceError, UsageError
from rejection_fhir.findings import Finding
from rejection_fhir.worksheet import project
from rejection_fhir.worksheet.source import PROJECT_FILE


def _check_folder(directory: Path, base_url: str | None) -> list[Finding]:
    ws, findings = project.load(directory)
    if ws is None:
        return findings
    _, more = project.check_and_build(ws, base_url=base_url)
    return [*findings, *more]


def validate(paths: Sequence[Path], *, base_url: str | None = None) -> list[Finding]:
    """Every finding for the given folders, YAML sources or built JSON files.

    A YAML file is checked with the rest of its folder (it needs _project.yaml's
    terminology), and only its own findings, or the shared file's, are reported.
    """
    if not paths:
        paths = [project.default_source_dir()]
    findings: list[Finding] = []
    folders: dict[Path, set[str] | None] = {}
    for path in paths:
        if path.is_dir():
            folders[path.resolve()] = None
        elif path.suffix in {".yaml", ".yml"}:
            if not (path.parent / PROJECT_FILE).is_file():
                raise UsageError(
                    f"{path}: no {PROJECT_FILE} beside it; worksheets are checked with their folder's terminology"
                )
            wanted = folders.setdefault(path.parent.resolve(), set())
            if wanted is not None:
                wanted.add(path.resolve().name)
        elif path.suffix == ".json":
            findings.extend(project.check_json_file(path))
        elif not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        else:
            raise UsageError(f"{path}: not a worksheet folder, a .yaml source or a .json resource")
    for directory, wanted in folders.items():
        try:
            folder_findings = _check_folder(directory, base_url)
        except SourceError as exc:
            folder_findings = list(exc.findings)
        if wanted is not None:
            keep = wanted | {PROJECT_FILE}
            folder_findings = [f for f in folder_findings if Path(f.file).name in keep]
        findings.extend(folder_findings)
    return sorted(findings, key=lambda f: (f.file, f.line or 0, f.column or 0, f.rule))
