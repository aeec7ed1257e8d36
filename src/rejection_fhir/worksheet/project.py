"""The worksheet set as a whole: load every source, check it end to end, build it.

This is the edge where files are read; the checks and the build it calls are pure.
A finding on a built resource is mapped back to the YAML line that caused it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rejection_fhir.errors import ConfigError, SourceError
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.findings import Finding
from rejection_fhir.worksheet import build, foreign, rules
from rejection_fhir.worksheet.source import (
    PROJECT_FILE,
    JsonPath,
    Source,
    check_schema,
    iter_worksheet_paths,
    read_source,
    walk_items,
)


def default_source_dir() -> Path:
    """``./questionnaires`` when run in a content repository, else the worksheets we ship."""
    here = Path("questionnaires")
    if (here / PROJECT_FILE).is_file():
        return here
    return Path(__file__).resolve().parent.parent / "data" / "questionnaires"


@dataclass
class WorksheetSet:
    directory: Path
    project: Source
    worksheets: list[Source] = field(default_factory=list)
    #: Questionnaire JSON authored elsewhere, beside the YAML (:mod:`.foreign`).
    forms: list[Source] = field(default_factory=list)

    def names(self) -> list[str]:
        return [ws.path.stem for ws in self.sources()]

    def sources(self) -> list[Source]:
        """YAML worksheets, then forms: the order of BuildResult.questionnaires."""
        return [*self.worksheets, *self.forms]


@dataclass
class BuildResult:
    questionnaires: list[JsonDict]
    codesystem: JsonDict
    valuesets: list[JsonDict]
    #: _project.yaml as read: the package settings and metadata `build --package` needs.
    project: JsonDict = field(default_factory=dict)
    #: The canonical base the resources were built with.
    base: str = ""

    @property
    def resources(self) -> list[JsonDict]:
        return [self.codesystem, *self.valuesets, *self.questionnaires]

    def bundle(self) -> JsonDict:
        return build.transaction_bundle(self.resources)


def load(directory: Path, *, salvage: bool = False) -> tuple[WorksheetSet | None, list[Finding]]:
    """Read and schema-check every source.

    Returns the worksheets that passed the schema (so later rules still report on them)
    and every finding; the set is None only when _project.yaml itself is unusable.
    With ``salvage`` (validate), a worksheet whose only schema problems are fields that can
    be left out (an unknown field, a mistyped optional one) is kept without them, so that
    one run reports the schema's findings and the rules' on the rest; it is marked
    :attr:`Source.salvaged` and never built for output.
    """
    if not directory.is_dir():
        raise ConfigError(
            f"{directory}: no such folder of worksheets",
            hint="pass --worksheets DIR or run from the content repository",
        )
    project_path = directory / PROJECT_FILE
    if not project_path.is_file():
        raise ConfigError(
            f"{project_path}: missing; every worksheet folder needs a {PROJECT_FILE} with publisher and terminology"
        )
    findings: list[Finding] = []
    sources: list[Source] = []
    project: Source | None = None
    for path, schema in [(project_path, "project.schema.json")] + [
        (p, "worksheet.schema.json") for p in iter_worksheet_paths(directory)
    ]:
        try:
            source = read_source(path)
        except SourceError as exc:
            findings.extend(
                exc.findings or [Finding(str(path), None, None, "error", "read", exc.message)]
            )
            continue
        findings.extend(source.findings)
        schema_findings = check_schema(source, schema)
        findings.extend(schema_findings)
        if schema_findings:
            if salvage and schema == "worksheet.schema.json":
                salvaged = _salvage(source, schema)
                if salvaged is not None:
                    sources.append(salvaged)
            continue
        if schema == "project.schema.json":
            project = source
        else:
            sources.append(source)
    forms, form_findings = foreign.load_forms(directory)
    findings.extend(form_findings)
    if project is None:
        return None, findings
    return WorksheetSet(directory, project, sources, forms), findings


#: Item fields the rules and the build cannot do without: an item whose problem is one of
#: these is not salvaged (its findings would be guesses).
_ESSENTIAL_ITEM_FIELDS = frozenset({"linkId", "type", "text", "items", "valueSet", "options"})
_ESSENTIAL_TOP_FIELDS = frozenset({"name", "version", "items"})


def _salvage(source: Source, schema: str) -> Source | None:
    """``source`` without the optional fields the schema rejected, if that satisfies it.

    Positions stay valid: only mapping keys are dropped, never list entries.
    """
    import copy

    data = copy.deepcopy(source.data)
    if not isinstance(data, dict):
        return None
    for error in _schema_errors(source.data, schema):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            extras = set(error.instance) - set(error.schema.get("properties", {}))
            targets = [(*path, name) for name in extras]
        elif error.validator == "required":
            return None
        else:
            targets = [_field_path(path)]
        for target in targets:
            if not _drop(data, target):
                return None
    salvaged = Source(source.path, data, source.positions)
    if check_schema(salvaged, schema):
        return None
    salvaged.salvaged = True
    return salvaged


def _schema_errors(data: Any, schema: str) -> list[Any]:
    from rejection_fhir.worksheet.source import _validator

    return list(_validator(schema).iter_errors(data))


def _field_path(path: JsonPath) -> JsonPath:
    """The path of the item field (or top-level field) that holds ``path``."""
    last_item = None
    for i in range(len(path) - 1):
        if path[i] == "items" and isinstance(path[i + 1], int):
            last_item = i + 1
    if last_item is None:
        return path[:1]
    return path[: last_item + 2]


def _drop(data: Any, path: JsonPath) -> bool:
    """Delete the mapping key at ``path`` unless it is one the rules cannot do without."""
    if not path or not isinstance(path[-1], str):
        return False
    essential = _ESSENTIAL_TOP_FIELDS if len(path) == 1 else _ESSENTIAL_ITEM_FIELDS
    if path[-1] in essential:
        return False
    node = data
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if not isinstance(node, dict):
        return False
    node.pop(path[-1], None)
    return True


def check_sources(ws: WorksheetSet) -> list[Finding]:
    """Cross-file checks that need the YAML: names, terminology references."""
    findings: list[Finding] = []
    project = ws.project.data
    concepts: dict[str, int] = {}
    for i, concept in enumerate(project["concepts"]):
        if concept["code"] in concepts:
            findings.append(
                ws.project.finding(
                    ("concepts", i, "code"),
                    "duplicate-code",
                    f"code '{concept['code']}' is defined twice; keep one",
                )
            )
        concepts.setdefault(concept["code"], i)
    value_sets = set()
    for i, vs in enumerate(project["valueSets"]):
        if vs["name"] in value_sets:
            findings.append(
                ws.project.finding(
                    ("valueSets", i, "name"),
                    "duplicate-valueset",
                    f"value set '{vs['name']}' is defined twice",
                )
            )
        value_sets.add(vs["name"])
        for j, code in enumerate(vs["codes"]):
            if code not in concepts:
                findings.append(
                    ws.project.finding(
                        ("valueSets", i, "codes", j),
                        "unknown-code",
                        f"value set '{vs['name']}' lists '{code}', which is not among the concepts; add it under concepts",
                    )
                )
    names: dict[str, Source] = {}
    for source in ws.worksheets:
        data = source.data
        if data["name"] != source.path.stem:
            findings.append(
                source.finding(
                    ("name",),
                    "name-file",
                    f"name '{data['name']}' must match the file name '{source.path.stem}'",
                )
            )
        if data["name"] in names:
            findings.append(
                source.finding(
                    ("name",),
                    "duplicate-name",
                    f"worksheet name '{data['name']}' is also used by {names[data['name']].display_path}",
                )
            )
        names[data["name"]] = source
        for path, item in walk_items(data["items"]):
            if "valueSet" in item and item["valueSet"] not in value_sets:
                findings.append(
                    source.finding(
                        (*path, "valueSet"),
                        "unknown-valueset",
                        f"value set '{item['valueSet']}' is not defined in {PROJECT_FILE}",
                        location=item["linkId"],
                    )
                )
            if isinstance(item.get("code"), str) and item["code"] not in concepts:
                findings.append(
                    source.finding(
                        (*path, "code"),
                        "unknown-code",
                        f"code '{item['code']}' is not among the concepts in {PROJECT_FILE}; add it there",
                        location=item["linkId"],
                    )
                )
            if "valueSet" in item and "options" in item:
                findings.append(
                    source.finding(
                        (*path, "options"),
                        "options-twice",
                        "give either valueSet or options, not both",
                        location=item["linkId"],
                    )
                )
            if (
                item["type"] in {"choice", "open-choice"}
                and "valueSet" not in item
                and "options" not in item
            ):
                findings.append(
                    source.finding(
                        (*path, "type"),
                        "no-options",
                        f"choice item '{item['linkId']}' needs valueSet or options",
                        location=item["linkId"],
                    )
                )
    return findings


def _link_paths(source: Source) -> dict[str, JsonPath]:
    return {
        item["linkId"]: path
        for path, item in walk_items(source.data["items"])
        if isinstance(item.get("linkId"), str)
    }


_ENABLE_WHEN_TAIL = re.compile(r"\.enableWhen\[(\d+)\]$")


def issue_to_finding(
    source: Source, issue: rules.Issue, link_paths: Mapping[str, JsonPath]
) -> Finding:
    path: JsonPath = ()
    if issue.link_id is not None and issue.link_id in link_paths:
        path = link_paths[issue.link_id]
        if match := _ENABLE_WHEN_TAIL.search(issue.path):
            path = (*path, "enableWhen", int(match.group(1)))
    return source.finding(
        path,
        issue.rule,
        issue.message,
        severity=issue.severity,
        location=issue.link_id or issue.path,
    )


#: Rules on the built resource that check_sources reports on the YAML already.
_SOURCE_RULES = frozenset({"no-options"})


def check_and_build(
    ws: WorksheetSet, *, base_url: str | None = None
) -> tuple[BuildResult, list[Finding]]:
    """Build every resource and run every rule on what was built."""
    findings = check_sources(ws)
    project = ws.project.data
    codesystem = build.build_codesystem(project, base_url=base_url)
    valuesets = build.build_valuesets(project, base_url=base_url)
    code_systems = {codesystem["url"]: {c["code"] for c in codesystem["concept"]}}
    questionnaires = []
    for source in ws.worksheets:
        q = build.build_questionnaire(project, source.data, base_url=base_url)
        questionnaires.append(q)
        link_paths = _link_paths(source)
        for issue in [*rules.check_structure(q), *rules.check_questionnaire(q, code_systems)]:
            if issue.rule in _SOURCE_RULES:
                continue  # check_sources said it in the author's words (valueSet, options)
            findings.append(issue_to_finding(source, issue, link_paths))
    yaml_names = {source.path.stem for source in ws.worksheets}
    for source in ws.forms:
        q = foreign.normalise(source, project_base=project["canonicalBase"], base_url=base_url)
        questionnaires.append(q)
        findings.extend(foreign.check_form(source, yaml_names))
        for issue in [*rules.check_structure(q), *rules.check_questionnaire(q, code_systems)]:
            findings.append(
                foreign.issue_finding(
                    source, issue.link_id, issue.path, issue.rule, issue.severity, issue.message
                )
            )
    result = BuildResult(
        questionnaires,
        codesystem,
        valuesets,
        project=dict(project),
        base=build.canonical_base(project, base_url),
    )
    return result, findings


# --- Built JSON, from anywhere ---------------------------------------------------------


def _line_of(text: str, link_id: str | None) -> int | None:
    if link_id is None:
        return None
    needle = f'"linkId": {json.dumps(link_id)}'
    index = text.find(needle)
    if index < 0:
        needle = f'"linkId":{json.dumps(link_id)}'
        index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else None


def check_json_file(
    path: Path, code_systems: Mapping[str, set[str]] | None = None
) -> list[Finding]:
    """Validate a Questionnaire (or a Bundle of them) that was built elsewhere."""
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        resource = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        return [Finding(display, None, None, "error", "read", f"cannot read the file: {exc}")]
    except json.JSONDecodeError as exc:
        return [
            Finding(
                display, exc.lineno, exc.colno, "error", "json-syntax", f"not valid JSON: {exc.msg}"
            )
        ]
    resources: Sequence[Any]
    #: Where each resource stands in the file, for the positions of its findings.
    prefixes: list[str]
    if isinstance(resource, Mapping) and resource.get("resourceType") == "Bundle":
        listed = resource.get("entry")
        entries = [
            (i, e)
            for i, e in enumerate(listed if isinstance(listed, list) else [])
            if isinstance(e, Mapping)
        ]
        resources = [e.get("resource") for _, e in entries]
        prefixes = [f"entry[{i}].resource" for i, _ in entries]
    else:
        resources = [resource]
        prefixes = [""]
    systems = dict(code_systems or {})
    for r in resources:
        if (
            isinstance(r, Mapping)
            and r.get("resourceType") == "CodeSystem"
            and isinstance(r.get("url"), str)
        ):
            concepts = r.get("concept")
            systems[r["url"]] = {
                str(c.get("code"))
                for c in (concepts if isinstance(concepts, list) else [])
                if isinstance(c, Mapping)
            }
    from rejection_fhir.worksheet.jsonpos import json_positions, position_of

    positions = json_positions(text)
    findings = []
    for prefix, r in zip(prefixes, resources, strict=True):
        if not isinstance(r, Mapping):
            findings.append(
                Finding(
                    display,
                    None,
                    None,
                    "error",
                    "structure",
                    "expected a FHIR resource (a JSON object)",
                )
            )
            continue
        if r.get("resourceType") != "Questionnaire":
            continue
        for issue in [*rules.check_structure(r), *rules.check_questionnaire(r, systems)]:
            line, column = _line_of(text, issue.link_id), None
            if issue.path:
                at = position_of(positions, ".".join(p for p in (prefix, issue.path) if p))
                if at is not None:
                    line, column = at
            findings.append(
                Finding(
                    display,
                    line,
                    column,
                    issue.severity,
                    issue.rule,
                    issue.message,
                    issue.link_id or issue.path,
                )
            )
    return findings
