"""The version guard: the edge of ``rejection-fhir validate --against REF``.

Project-specific (it builds worksheets), so it lives next to :mod:`.versioning`, not in
``commands/``: :mod:`rejection_fhir.commands.validate` calls it.

Loads what the worksheets were at REF, pairs each built Questionnaire with its earlier
self, lets :mod:`rejection_fhir.worksheet.versioning` classify the change, and reports a
:class:`~rejection_fhir.findings.Finding` at the item's line when the version does not
follow.  REF is one of:

* ``http(s)://…``: a FHIR server; for each worksheet's url, its highest version there
  (credentials as for every command: ``RFHIR_TOKEN_FILE`` and friends);
* a FHIR package: a ``.tgz`` or its unpacked folder (as ``build --package`` writes);
* an existing folder: built JSON (``Questionnaire-*.json`` or Bundles, as ``build`` writes);
* anything else: a git ref (branch, tag, commit).  The worksheet folder as it was at that
  ref, ``_project.yaml`` included, is built with this version of the builder, so a change
  to shared terminology shows up in every worksheet that uses it.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rejection_fhir.errors import InputError, UsageError
from rejection_fhir.fhir.json import JsonDict, as_list
from rejection_fhir.findings import Finding, Severity
from rejection_fhir.worksheet import foreign, project
from rejection_fhir.worksheet.source import (
    PROJECT_FILE,
    JsonPath,
    Source,
    iter_worksheet_paths,
    walk_items,
)
from rejection_fhir.worksheet.versioning import (
    Change,
    Reason,
    classify,
    parse_version,
    required_bump,
)

#: Rules the guard reports; ``validate`` exits with VERSION_GUARD when only these fail.
GUARD_RULES = frozenset(
    {
        "version-unchanged",
        "version-too-small",
        "version-backwards",
        "version-unreadable",
        "baseline-unreadable",
        "worksheet-removed",
    }
)

#: FHIR element of a reason → the worksheet YAML key an author edits for it.
_YAML_KEY: Mapping[str, tuple[str, ...]] = {
    "answerOption": ("options", "valueSet"),
    "answerValueSet": ("valueSet", "options"),
    "enableBehavior": ("enableBehavior", "enableWhen"),
    "minValue": ("min",),
    "maxValue": ("max",),
    "questionnaire-itemControl": ("control",),
    "entryFormat": ("placeholder",),
    "questionnaire-sliderStepValue": ("step",),
    "observationExtract": ("observation",),
    "calculatedExpression": ("calculated",),
    "item": (),
}


@dataclass
class Baseline:
    """The Questionnaires at REF, each with where it came from."""

    label: str
    held: list[tuple[JsonDict, str]] = field(default_factory=list)
    #: False when REF can only be asked about our urls (a server): removals are unseen.
    complete: bool = True
    #: Names of worksheets present at REF that this version cannot read.
    unreadable: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Current:
    """One Questionnaire as built now, and where its content is written."""

    questionnaire: Mapping[str, Any]
    file: str
    source: Source | None = None
    #: The JSON text, for line numbers when there is no YAML source.
    text: str | None = None


def is_server(ref: str) -> bool:
    return ref.startswith(("http://", "https://"))


# --- Loading REF ---------------------------------------------------------------------------


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise UsageError(
            "--against names a git ref, but git is not installed",
            hint="install git, or compare against a folder of built JSON or a server URL",
        ) from None


def load_git(ref: str, source_dir: Path, *, base_url: str | None = None) -> Baseline:
    """The worksheets in ``source_dir`` as they were at git ref ``ref``, built now."""
    directory = source_dir.resolve()
    top = _git(["rev-parse", "--show-toplevel"], directory)
    if top.returncode != 0:
        raise UsageError(
            f"--against {ref}: not a folder or a server URL, and {source_dir} is not in a git repository",
            hint="give a git ref inside the content repository, a folder of built Questionnaires, or an http(s) server URL",
        )
    root = Path(top.stdout.decode().strip()).resolve()
    commit = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], root)
    if commit.returncode != 0:
        raise UsageError(
            f"--against {ref}: no such git ref (branch, tag or commit) in {root}",
            hint="in CI, fetch the history the ref needs (GitHub Actions: actions/checkout with fetch-depth: 0)",
        )
    sha = commit.stdout.decode().strip()
    rel = directory.relative_to(root).as_posix()
    label = f"{ref} ({sha[:12]})"
    spec = f"{sha}:{rel}" if rel != "." else f"{sha}^{{tree}}"
    if _git(["cat-file", "-e", spec], root).returncode != 0:
        return Baseline(label)  # the folder did not exist yet: every worksheet is new
    archive = _git(["archive", "--format=tar", sha, *([] if rel == "." else ["--", rel])], root)
    if archive.returncode != 0:
        raise UsageError(
            f"--against {ref}: git archive failed: {archive.stderr.decode(errors='replace').strip()}"
        )
    with tempfile.TemporaryDirectory(prefix="rfhir-against-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        old_dir = Path(tmp) / rel
        return _build_old(old_dir, source_dir, label, base_url=base_url)


def _build_old(old_dir: Path, shown: Path, label: str, *, base_url: str | None) -> Baseline:
    """Build the old sources; each is named by where it stands in the current folder."""
    baseline = Baseline(label)
    if not (old_dir / PROJECT_FILE).is_file():
        return baseline
    ws, findings = project.load(old_dir)
    if ws is None:
        first = next((f.message for f in findings if f.severity == "error"), "it does not load")
        baseline.findings.append(
            Finding(
                PROJECT_FILE,
                None,
                None,
                "error",
                "baseline-unreadable",
                f"cannot compare with {label}: its {PROJECT_FILE} does not load with this rejection-fhir ({first}); "
                "compare against a later ref",
            )
        )
        return baseline
    result, _ = project.check_and_build(ws, base_url=base_url)
    for q, source in zip(result.questionnaires, ws.sources(), strict=True):
        baseline.held.append((q, str(shown / source.path.name)))
    loaded = {s.path.stem for s in ws.sources()}
    for path in [*iter_worksheet_paths(old_dir), *foreign.iter_form_paths(old_dir)]:
        if path.stem not in loaded:
            problem = next(
                (f.message for f in findings if Path(f.file).name == path.name), "it does not load"
            )
            baseline.unreadable[path.stem] = problem
    return baseline


def resources_in(value: Any) -> list[Any]:
    if isinstance(value, Mapping) and value.get("resourceType") == "Bundle":
        return [e.get("resource") for e in as_list(value.get("entry")) if isinstance(e, Mapping)]
    return [value]


def _newest(found: Sequence[tuple[JsonDict, str]]) -> list[tuple[JsonDict, str]]:
    """One Questionnaire per url: the highest semantic version (others sort first)."""
    best: dict[str, tuple[JsonDict, str]] = {}
    for q, origin in found:
        url = str(q.get("url"))
        here = best.get(url)
        if here is None or _version_key(q) > _version_key(here[0]):
            best[url] = (q, origin)
    return list(best.values())


def _version_key(q: Mapping[str, Any]) -> tuple[int, Any]:
    v = parse_version(q.get("version"))
    return (1, v._key()) if v is not None else (0, str(q.get("version")))


def load_folder(folder: Path) -> Baseline:
    """Built Questionnaires (resources or Bundles) in ``folder`` and below."""
    found: list[tuple[JsonDict, str]] = []
    for path in sorted(folder.rglob("*.json")):
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(
                f"--against {folder}: {path} is not readable JSON ({exc})",
                hint="point --against at the folder `rejection-fhir build` wrote",
            ) from None
        for resource in resources_in(value):
            if isinstance(resource, dict) and resource.get("resourceType") == "Questionnaire":
                found.append((resource, str(path)))
    return Baseline(str(folder), _newest(found))


def load_package(path: Path) -> Baseline:
    """The Questionnaires of a FHIR package (``.tgz`` or unpacked folder)."""
    from rejection_fhir.worksheet import package

    try:
        _, resources = package.read_package(path)
    except package.PackageError as exc:
        raise InputError(
            f"--against {path}: {exc}",
            hint="point --against at a package `rejection-fhir build --package` wrote",
        ) from None
    found = [(r, origin) for r, origin in resources if r.get("resourceType") == "Questionnaire"]
    return Baseline(str(path), _newest(found))


def load_server(ref: str, urls: Sequence[str]) -> Baseline:
    """For each canonical url, the highest version the server at ``ref`` holds."""
    from rejection_fhir import settings as settings_module

    settings = settings_module.load_settings({"server": ref})
    found: list[tuple[JsonDict, str]] = []
    with settings_module.make_client(settings) as client:
        label = client.base_url
        for url in urls:
            for q in client.search("Questionnaire", {"url": url}):
                found.append((q, f"{label}/Questionnaire/{q.get('id')}"))
    return Baseline(label, _newest(found), complete=False)


# --- Comparing -----------------------------------------------------------------------------


def _pairs(
    current: Sequence[Current], baseline: Baseline
) -> tuple[list[tuple[Current, JsonDict | None]], list[tuple[JsonDict, str]]]:
    by_url = {str(q.get("url")): (q, origin) for q, origin in baseline.held}
    by_name = {str(q.get("name")): (q, origin) for q, origin in baseline.held}
    used: set[int] = set()
    pairs: list[tuple[Current, JsonDict | None]] = []
    for c in current:
        match = by_url.get(str(c.questionnaire.get("url")))
        if match is None or id(match[0]) in used:
            # A changed canonical base keeps the worksheet's name: still the same worksheet.
            match = by_name.get(str(c.questionnaire.get("name")))
        if match is not None and id(match[0]) not in used:
            used.add(id(match[0]))
            pairs.append((c, match[0]))
        else:
            pairs.append((c, None))
    gone = [(q, origin) for q, origin in baseline.held if id(q) not in used]
    return pairs, gone


def _json_line(text: str | None, link_id: str | None, element: str) -> int | None:
    if text is None:
        return None
    needles = [f'"linkId": {json.dumps(link_id)}'] if link_id else [f'"{element}":', '"version":']
    for needle in needles:
        index = text.find(needle)
        if index >= 0:
            return text.count("\n", 0, index) + 1
    return None


def _yaml_path(source: Source, link_id: str | None, element: str) -> JsonPath:
    if link_id is None:
        return (element,) if element in source.data else ("version",)
    paths = {
        item["linkId"]: path
        for path, item in walk_items(as_list(source.data.get("items")))
        if isinstance(item.get("linkId"), str)
    }
    path: JsonPath
    if link_id in paths:
        path = paths[link_id]
    elif link_id.endswith(".help") and link_id[: -len(".help")] in paths:
        return (*paths[link_id[: -len(".help")]], "help")
    else:
        return ("items",)
    item = source.data
    for part in path:
        item = item[part]
    for key in _YAML_KEY.get(element, (element,)):
        if key in item:
            return (*path, key)
    return path


def _at(
    c: Current,
    link_id: str | None,
    element: str,
    severity: Severity,
    rule: str,
    message: str,
    location: str = "",
) -> Finding:
    if c.source is not None and foreign.is_form(c.source):
        return foreign.issue_finding(
            c.source, link_id, "", rule, severity, message, element=element, location=location
        )
    if c.source is not None:
        return c.source.finding(
            _yaml_path(c.source, link_id, element),
            rule,
            message,
            severity=severity,
            location=location or link_id or element,
        )
    return Finding(
        c.file,
        _json_line(c.text, link_id, element),
        None,
        severity,
        rule,
        message,
        location or link_id or element,
    )


def _summary(change: Change, limit: int = 3) -> str:
    shown = "; ".join(r.message for r in change.reasons[:limit])
    more = len(change.reasons) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


def _bump_words(reason: Reason, change: Change) -> str:
    old = parse_version(change.old_version)
    bump = required_bump(reason.kind, old) if old is not None else "new"
    return f"a {reason.kind} change, which needs a {bump} version"


def findings_for(c: Current, change: Change, label: str) -> list[Finding]:
    """What to tell the author about one worksheet's change."""
    old, new, suggested = change.old_version, change.new_version, change.suggested_version
    if change.problem is None:
        if change.kind == "none":
            return []
        return [
            _at(
                c,
                None,
                "version",
                "information",
                "version-change",
                f"{change.kind} change since {label}, and version {old} → {new} covers it: {_summary(change)}",
                "version",
            )
        ]
    if change.problem == "backwards":
        return [
            _at(
                c,
                None,
                "version",
                "error",
                "version-backwards",
                f"version went backwards: {new} here, {old} at {label}; versions only grow: set version: {suggested}"
                + (" or higher" if change.kind != "none" else " (or higher)"),
                "version",
            )
        ]
    if change.problem == "unreadable":
        return [
            _at(
                c,
                None,
                "version",
                "error",
                "version-unreadable",
                f"cannot tell whether version {new!r} comes after {old!r} at {label}: use semantic versions "
                f"(MAJOR.MINOR.PATCH); this {change.kind} change needs a new one: {_summary(change)}",
                "version",
            )
        ]
    out = []
    for reason in change.reasons_needing_more():
        if change.problem == "unchanged":
            rule = "version-unchanged"
            text = f"{reason.message} — {_bump_words(reason, change)}, but the version is still {new} as at {label}: set version: {suggested}"
        else:
            rule = "version-too-small"
            text = f"{reason.message} — {_bump_words(reason, change)}: {new} is not enough after {old} at {label}: set version: {suggested}"
        out.append(_at(c, reason.anchor, reason.element, "error", rule, text, reason.link_id or ""))
    return out


def guard(
    current: Sequence[Current], baseline: Baseline, *, whole_set: bool = True
) -> list[Finding]:
    """Every version-guard finding for the Questionnaires built now against ``baseline``.

    ``whole_set``: ``current`` is every worksheet there is (a folder), so a worksheet held
    at REF but missing here was removed; False for a few files picked by hand."""
    findings = list(baseline.findings)
    pairs, gone = _pairs(current, baseline)
    for c, old in pairs:
        name = str(c.questionnaire.get("id") or c.questionnaire.get("name"))
        if old is None:
            if name in baseline.unreadable:
                findings.append(
                    _at(
                        c,
                        None,
                        "version",
                        "warning",
                        "baseline-unreadable",
                        f"cannot compare with {baseline.label}: this worksheet there does not load with this "
                        f"rejection-fhir ({baseline.unreadable[name]}); check its version by hand",
                        "version",
                    )
                )
            else:
                findings.append(
                    _at(
                        c,
                        None,
                        "version",
                        "information",
                        "worksheet-new",
                        f"new worksheet since {baseline.label} (version {c.questionnaire.get('version')})",
                        "version",
                    )
                )
            continue
        findings.extend(findings_for(c, classify(old, c.questionnaire), baseline.label))
    if baseline.complete and whole_set:
        for old, origin in gone:
            findings.append(
                Finding(
                    origin,
                    None,
                    None,
                    "warning",
                    "worksheet-removed",
                    f"worksheet '{old.get('id') or old.get('name')}' (version {old.get('version')} at "
                    f"{baseline.label}) is gone; earlier responses still point at it: keep it with "
                    "status: retired instead of deleting it",
                    str(old.get("url") or ""),
                )
            )
    return findings
