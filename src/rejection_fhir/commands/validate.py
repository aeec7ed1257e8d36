"""``rejection-fhir validate``: schema, FHIR structure, que-* invariants, SDC and our rules,
and with ``--against REF`` the version guard (:mod:`rejection_fhir.worksheet.guard`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rejection_fhir.errors import SourceError, UsageError
from rejection_fhir.findings import Finding
from rejection_fhir.worksheet import guard, package, project
from rejection_fhir.worksheet.source import PROJECT_FILE


def _check_folder(
    directory: Path, base_url: str | None
) -> tuple[list[Finding], list[guard.Current]]:
    ws, findings = project.load(directory, salvage=True)
    if ws is None:
        return findings, []
    result, more = project.check_and_build(ws, base_url=base_url)
    # A salvaged worksheet is not what the author wrote: no version verdict on it.
    current = [
        guard.Current(q, source.display_path, source)
        for q, source in zip(result.questionnaires, ws.sources(), strict=True)
        if not source.salvaged
    ]
    return [*findings, *more], current


def _json_questionnaires(path: Path) -> list[guard.Current]:
    try:
        text = path.read_text(encoding="utf-8")
        value = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []  # check_json_file reports it
    return [
        guard.Current(r, str(path), text=text)
        for r in guard.resources_in(value)
        if isinstance(r, dict) and r.get("resourceType") == "Questionnaire"
    ]


#: Findings that make others follow (an unreadable file, a key or linkId given twice):
#: each file's list starts with them, whatever their line.
ROOT_CAUSES = frozenset(
    {"read", "yaml-syntax", "yaml-duplicate-key", "json-syntax", "que-2", "duplicate-name"}
)


class _Baselines:
    """REF loaded once per source folder (git) or once for all (folder, server)."""

    def __init__(self, ref: str, base_url: str | None) -> None:
        self.ref = ref
        self.base_url = base_url
        self._folder: guard.Baseline | None = None

    def against(self, directory: Path | None, current: Sequence[guard.Current]) -> guard.Baseline:
        if guard.is_server(self.ref):
            urls = sorted({str(c.questionnaire.get("url")) for c in current})
            return guard.load_server(self.ref, urls)
        if package.is_package(Path(self.ref)):
            if self._folder is None:
                self._folder = guard.load_package(Path(self.ref))
            return self._folder
        if Path(self.ref).is_dir():
            if self._folder is None:
                self._folder = guard.load_folder(Path(self.ref))
            return self._folder
        if directory is None:
            raise UsageError(
                f"--against {self.ref}: a git ref compares worksheet folders or YAML sources, not built JSON",
                hint="compare built JSON against a folder of built JSON or a server URL",
            )
        return guard.load_git(self.ref, directory, base_url=self.base_url)


def validate(
    paths: Sequence[Path], *, base_url: str | None = None, against: str | None = None
) -> list[Finding]:
    """Every finding for the given folders, YAML sources, built JSON files or FHIR packages
    (``.tgz`` or unpacked folder).

    A YAML file is checked with the rest of its folder (it needs _project.yaml's
    terminology), and only its own findings, or the shared file's, are reported.
    With ``against`` (a git ref, a folder of built JSON or a server URL), each worksheet's
    change since then is classified and its version checked (see :mod:`.guard`).
    """
    if not paths:
        paths = [project.default_source_dir()]
    baselines = _Baselines(against, base_url) if against else None
    findings: list[Finding] = []
    folders: dict[Path, set[str] | None] = {}
    shown: dict[Path, Path] = {}
    json_current: list[guard.Current] = []
    for path in paths:
        if not path.exists():
            # Before anything else: a mistyped name must never read as "all worksheets valid".
            raise UsageError(
                f"{path}: no such file or folder",
                hint="check the spelling; validate takes worksheet folders, .yaml sources and .json resources",
            )
        if package.is_package(path):
            package_findings, questionnaires = package.check_package(path)
            findings.extend(package_findings)
            if baselines is not None:
                json_current.extend(guard.Current(q, origin) for q, origin in questionnaires)
        elif path.is_dir():
            folders[path.resolve()] = None
            shown.setdefault(path.resolve(), path)
        elif path.suffix in {".yaml", ".yml"} or (
            # A form authored elsewhere, kept in a worksheet folder (worksheet.foreign).
            path.suffix == ".json" and (path.parent / PROJECT_FILE).is_file()
        ):
            if not (path.parent / PROJECT_FILE).is_file():
                raise UsageError(
                    f"{path}: no {PROJECT_FILE} beside it; worksheets are checked with their folder's terminology"
                )
            wanted = folders.setdefault(path.parent.resolve(), set())
            shown.setdefault(path.parent.resolve(), path.parent)
            if wanted is not None:
                wanted.add(path.resolve().name)
        elif path.suffix == ".json":
            findings.extend(project.check_json_file(path))
            if baselines is not None:
                json_current.extend(_json_questionnaires(path))
        else:
            raise UsageError(
                f"{path}: not a worksheet folder, a .yaml source, a .json resource or a FHIR package (.tgz)"
            )
    for directory, wanted in folders.items():
        current: list[guard.Current] = []
        try:
            folder_findings, current = _check_folder(directory, base_url)
        except SourceError as exc:
            folder_findings = list(exc.findings)
        if baselines is not None:
            if wanted is not None:
                current = [c for c in current if Path(c.file).name in wanted]
            baseline = baselines.against(shown[directory], current)
            folder_findings.extend(guard.guard(current, baseline, whole_set=wanted is None))
        if wanted is not None:
            keep = wanted | {PROJECT_FILE}
            folder_findings = [f for f in folder_findings if Path(f.file).name in keep]
        findings.extend(folder_findings)
    if baselines is not None and json_current:
        baseline = baselines.against(None, json_current)
        findings.extend(guard.guard(json_current, baseline, whole_set=False))
    return sorted(
        findings,
        key=lambda f: (f.file, f.rule not in ROOT_CAUSES, f.line or 0, f.column or 0, f.rule),
    )


def only_the_guard_failed(failing: Sequence[Finding]) -> bool:
    """Whether every failing finding is the version guard's: ``validate`` then exits with
    VERSION_GUARD (a content change needs a new version) rather than FINDINGS."""
    return bool(failing) and all(f.rule in guard.GUARD_RULES for f in failing)
