"""Questionnaire JSON authored elsewhere, kept beside the YAML worksheets.

Clinics already hold forms made with the NLM Form Builder, LHC-Forms, Smart Forms or taken
from an Implementation Guide.  A ``<name>.json`` in a worksheet folder holding one R4
Questionnaire is one of the folder's forms: it is checked with the same rules as a built
worksheet (:mod:`rejection_fhir.worksheet.rules`), versioned by the same guard, built,
packaged, published and synced the same way.  Its findings point at the JSON's own
``file:line:column``: :func:`parse_json` keeps a side table from each value's path
(``("item", 2, "linkId")``) to where it stands, as :mod:`.source` does for YAML.

What the build changes (:func:`normalise`), and nothing else: ``id`` becomes the file name
(every command names a form by it), server bookkeeping in ``meta`` (``versionId``,
``lastUpdated``, ``source``) is dropped, and a canonical url under the project's
``canonicalBase`` follows ``--base-url`` like ours.  A form with a canonical of its own (an
IG's) keeps it.  A form without a narrative gets the generated one our worksheets carry.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rejection_fhir.errors import SourceError
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.findings import Finding, Severity
from rejection_fhir.worksheet.source import (
    MAX_SOURCE_BYTES,
    JsonPath,
    Pos,
    Source,
    _display,
)

#: Server bookkeeping a form exported from a server carries; not part of its content.
_SERVER_META = ("versionId", "lastUpdated", "source")

_NAME_RE = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")


def iter_form_paths(directory: Path) -> Iterator[Path]:
    """The ``*.json`` forms of a worksheet folder (``_``-prefixed files are not forms)."""
    for path in sorted(directory.glob("*.json")):
        if not path.name.startswith("_"):
            yield path


def is_form(source: Source) -> bool:
    """True for a form read from JSON (its data is the FHIR resource itself)."""
    return isinstance(source.data, Mapping) and "resourceType" in source.data


# --- Reading, with positions -------------------------------------------------------------


_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


class _Positions:
    """Where each value of a JSON text starts; keys point at the key, as in YAML."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.table: dict[JsonPath, Pos] = {}

    def pos(self, index: int) -> Pos:
        line = bisect.bisect_right(self.line_starts, index)
        return (line, index - self.line_starts[line - 1] + 1)

    def skip(self, i: int) -> int:
        match = _WS.match(self.text, i)
        return match.end() if match else i

    def value(self, i: int, path: JsonPath) -> int:
        text = self.text
        i = self.skip(i)
        self.table.setdefault(path, self.pos(i))
        char = text[i]
        if char == "{":
            i = self.skip(i + 1)
            if text[i] == "}":
                return i + 1
            while True:
                match = _STRING.match(text, self.skip(i))
                if match is None:  # json.loads read it, so this does not happen
                    raise ValueError("not a JSON key")
                key = json.loads(match.group())
                at = self.pos(match.start())
                i = self.skip(match.end()) + 1  # past ':'
                i = self.skip(self.value(i, (*path, key)))
                self.table[(*path, key)] = at
                if text[i] == ",":
                    i += 1
                    continue
                return i + 1  # '}'
        if char == "[":
            i = self.skip(i + 1)
            if text[i] == "]":
                return i + 1
            index = 0
            while True:
                i = self.skip(self.value(i, (*path, index)))
                index += 1
                if text[i] == ",":
                    i += 1
                    continue
                return i + 1  # ']'
        match = _STRING.match(text, i) if char == '"' else _SCALAR.match(text, i)
        if match is None:
            raise ValueError("not a JSON value")
        return match.end()


def json_positions(text: str) -> dict[JsonPath, Pos]:
    """Path → (line, column) of every value in a valid JSON text (best effort when nested
    deeper than Python's recursion allows: the outer levels still have their places)."""
    positions = _Positions(text)
    with contextlib.suppress(RecursionError, IndexError, ValueError):
        positions.value(0, ())
    return positions.table


def _problem(path: Path, line: int | None, column: int | None, rule: str, message: str) -> Finding:
    return Finding(_display(path), line, column, "error", rule, message)


class _NotJson(ValueError):
    def __init__(self, word: str) -> None:
        super().__init__(word)
        self.word = word


def _not_json(word: str) -> Any:
    raise _NotJson(word)


def _line_col(text: str, word: str) -> tuple[int | None, int | None]:
    """Where ``word`` first stands outside a string (NaN, Infinity), roughly: its first
    occurrence after a ':' , '[' or ','."""
    match = re.search(r"[:\[,]\s*(-?" + re.escape(word.lstrip("-")) + ")", text)
    if match is None:
        return None, None
    index = match.start(1)
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def parse_json(text: str, path: Path) -> Source:
    """Parse a form's JSON text into data plus positions; raise SourceError if it is not
    one Questionnaire in valid JSON."""
    try:
        data = json.loads(text, parse_constant=_not_json)
    except _NotJson as exc:
        finding = _problem(
            path,
            *_line_col(text, exc.word),
            "json-syntax",
            f"{exc.word} is not a JSON number (Python's json reads it, FHIR servers do not); "
            "write a number or leave the element out",
        )
        raise SourceError(f"{finding.where()}: {finding.message}", findings=[finding]) from None
    except json.JSONDecodeError as exc:
        finding = _problem(
            path, exc.lineno, exc.colno, "json-syntax", f"JSON syntax error: {exc.msg}; fix it here"
        )
        raise SourceError(f"{finding.where()}: {finding.message}", findings=[finding]) from None
    except RecursionError:
        finding = _problem(path, None, None, "json-syntax", "the JSON is nested too deeply to read")
        raise SourceError(f"{finding.where()}: {finding.message}", findings=[finding]) from None
    if not isinstance(data, dict) or data.get("resourceType") != "Questionnaire":
        found = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        finding = _problem(
            path,
            1,
            1,
            "form-not-questionnaire",
            f"a .json file in a worksheet folder must hold one FHIR Questionnaire (found "
            f"{found!r}); move other files out of the folder, or name them with a leading _",
        )
        raise SourceError(f"{finding.where()}: {finding.message}", findings=[finding])
    return Source(path=path, data=data, positions=json_positions(text))


def read_form(path: Path) -> Source:
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            finding = _problem(
                path,
                None,
                None,
                "read",
                f"{size / 1e6:.1f} MB is far more than a form holds "
                f"(at most {MAX_SOURCE_BYTES // 1_000_000} MB); is this the right file?",
            )
            raise SourceError(f"{finding.file}: {finding.message}", findings=[finding])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        finding = _problem(path, None, None, "read", "not UTF-8 text; save the file as UTF-8")
        raise SourceError(f"{finding.file}: {finding.message}", findings=[finding]) from None
    except OSError as exc:
        finding = _problem(path, None, None, "read", f"cannot read the file ({exc.strerror})")
        raise SourceError(f"{finding.file}: {finding.message}", findings=[finding]) from None
    return parse_json(text, path)


def load_forms(directory: Path) -> tuple[list[Source], list[Finding]]:
    """Every readable form of the folder, and the findings of those that are not."""
    forms: list[Source] = []
    findings: list[Finding] = []
    for path in iter_form_paths(directory):
        try:
            forms.append(read_form(path))
        except SourceError as exc:
            findings.extend(exc.findings)
    return forms, findings


# --- Building -----------------------------------------------------------------------------


def normalise(source: Source, *, project_base: str, base_url: str | None = None) -> JsonDict:
    """The form as the build writes it (see the module docstring for what changes)."""
    q: JsonDict = {}
    for key, value in source.data.items():
        if key == "id":
            continue
        q[key] = value
        if key == "resourceType":
            q["id"] = source.path.stem
    meta = q.get("meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in _SERVER_META}
        if kept:
            q["meta"] = kept
        else:
            del q["meta"]
    url = q.get("url")
    project_base = project_base.rstrip("/")
    if base_url and isinstance(url, str) and url.startswith(f"{project_base}/"):
        q["url"] = base_url.rstrip("/") + url[len(project_base) :]
    if "text" not in q:
        # Like our worksheets (dom-6): a form without a narrative gets the generated one,
        # right after id where FHIR orders it; a form's own narrative is kept as written.
        from rejection_fhir.worksheet.build import narrative

        q = {"resourceType": q.pop("resourceType"), "id": q.pop("id"), "text": narrative(q), **q}
    return q


def check_form(source: Source, yaml_names: set[str]) -> list[Finding]:
    """What a form needs besides the Questionnaire rules to live in a worksheet folder."""
    findings: list[Finding] = []
    data = source.data
    stem = source.path.stem
    if not _NAME_RE.match(stem):
        findings.append(
            source.finding(
                (),
                "name-file",
                f"the file name '{stem}' names the form in every command: use lower-case "
                "words joined by hyphens (e.g. weekly-check-in.json)",
            )
        )
    if stem in yaml_names:
        findings.append(
            source.finding(
                (),
                "duplicate-name",
                f"'{stem}' is also a YAML worksheet in this folder; rename one of them",
            )
        )
    form_id = data.get("id")
    if form_id is not None and form_id != stem:
        findings.append(
            source.finding(
                ("id",),
                "id-file",
                f"id '{form_id}' differs from the file name: the build uses '{stem}'; rename "
                "the file or the id to say which you mean",
                severity="warning",
            )
        )
    if not isinstance(data.get("title"), str) or not data.get("title"):
        findings.append(
            source.finding(
                ("title",),
                "form-title",
                "the form has no title; give it one: lists, previews and notes name it",
            )
        )
    return findings


# --- Findings at the JSON's lines -----------------------------------------------------------


#: Rules about a top-level element that name no element path: where to point.
_RULE_ELEMENT = {"semver": "version", "canonical-url": "url", "que-0": "name", "no-items": "item"}

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def element_path(fhir_path: str) -> JsonPath:
    """``item[2].enableWhen[0]`` → ``("item", 2, "enableWhen", 0)``."""
    out: list[str | int] = []
    for name, index in _STEP.findall(fhir_path):
        out.append(int(index) if index else name)
    return tuple(out)


def link_paths(data: Mapping[str, Any]) -> dict[str, JsonPath]:
    """linkId → path of its item, however deeply nested."""
    found: dict[str, JsonPath] = {}

    def walk(items: Any, path: JsonPath) -> None:
        if not isinstance(items, list):
            return
        for i, item in enumerate(items):
            if isinstance(item, Mapping):
                here = (*path, i)
                if isinstance(item.get("linkId"), str):
                    found.setdefault(item["linkId"], here)
                walk(item.get("item"), (*here, "item"))

    walk(data.get("item"), ("item",))
    return found


def issue_finding(
    source: Source,
    link_id: str | None,
    fhir_path: str,
    rule: str,
    severity: Severity,
    message: str,
    *,
    element: str = "",
    location: str = "",
) -> Finding:
    """A finding on a form, at the element's line and column when the JSON has it."""
    path: JsonPath = element_path(fhir_path) if fhir_path else ()
    element = element or ("" if link_id else _RULE_ELEMENT.get(rule, ""))
    if not path:
        if link_id is not None and link_id in (paths := link_paths(source.data)):
            path = paths[link_id]
            if element and (*path, element) in source.positions:
                path = (*path, element)
        elif element and (element,) in source.positions:
            path = (element,)
    return source.finding(
        path,
        rule,
        _clipped(message),
        severity=severity,
        location=_clipped(location or link_id or fhir_path or element, 200),
    )


#: The longest message or location reported: the rules quote the form's own keys and
#: values, and a form made elsewhere may hold anything (one line of 100 kB, say).
MAX_MESSAGE = 600


def _clipped(text: str, limit: int = MAX_MESSAGE) -> str:
    if len(text) <= limit:
        return text
    keep = (limit - 1) // 2
    return f"{text[:keep]}…{text[-keep:]}"
