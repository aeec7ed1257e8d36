"""Reading worksheet sources: YAML with line numbers, checked against the JSON Schemas.

Authors edit YAML by hand, so every problem must point at ``file:line:column`` and say
what to change.  PyYAML's node graph carries the marks; we keep a side table from each
value's path (``("items", 2, "linkId")``) to its position.  ruamel.yaml's line tracking
gives the same positions but would still need this walk to make plain data, reads the
worksheets 2.2-2.4 times slower, and stops at the first duplicate key (README, "Library
choices").
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from rejection_fhir.errors import SourceError
from rejection_fhir.findings import Finding, Severity

Pos = tuple[int, int]
JsonPath = tuple[str | int, ...]

#: Shared settings and terminology live beside the worksheets under this name.
PROJECT_FILE = "_project.yaml"


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: a date in a worksheet stays the string the
    author wrote, which is what FHIR wants on the wire."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class Source:
    """One parsed YAML file and where each of its values stands."""

    path: Path
    data: Any
    positions: dict[JsonPath, Pos] = field(default_factory=dict)
    #: Problems found while parsing that did not stop it (a key given twice: the last one
    #: counts, as in YAML 1.1 loaders), reported with the schema's and the rules' findings.
    findings: list[Finding] = field(default_factory=list)
    #: Kept for validate with the fields the schema rejected left out (project.load).
    salvaged: bool = False

    @property
    def display_path(self) -> str:
        return _display(self.path)

    def position(self, path: JsonPath) -> Pos | None:
        """Position of ``path`` or, failing that, of its nearest parent that has one."""
        while True:
            if path in self.positions:
                return self.positions[path]
            if not path:
                return None
            path = path[:-1]

    def finding(
        self,
        path: JsonPath,
        rule: str,
        message: str,
        *,
        severity: Severity = "error",
        location: str = "",
    ) -> Finding:
        pos = self.position(path)
        return Finding(
            file=self.display_path,
            line=pos[0] if pos else None,
            column=pos[1] if pos else None,
            severity=severity,
            rule=rule,
            message=message,
            location=location or item_link_id(self.data, path) or _dotted(path),
        )


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def item_link_id(data: Any, path: JsonPath) -> str | None:
    """linkId of the deepest worksheet item on ``path``: how authors and clinicians name it."""
    link_id = None
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("linkId"), str) and "type" in node:
            link_id = node["linkId"]
    return link_id


def _dotted(path: JsonPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


#: More values than any worksheet has: an alias "bomb" (anchors nesting anchors) stops here.
MAX_VALUES = 100_000


class _TooBig(Exception):
    def __init__(self, message: str, node: yaml.Node) -> None:
        super().__init__(message)
        self.message = message
        self.node = node


def _unreadable(path: Path, line: int | None, col: int | None, message: str) -> SourceError:
    finding = Finding(_display(path), line, col, "error", "yaml-syntax", message)
    return SourceError(f"{finding.where()}: {finding.message}", findings=[finding])


def parse_yaml(text: str, path: Path) -> Source:
    """Parse YAML text into plain data plus positions; raise SourceError on bad syntax."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        # A control character (or a lone surrogate) that YAML does not allow anywhere.
        before = text[: exc.position]
        at_line = before.count("\n") + 1
        at_col = exc.position - (before.rfind("\n") + 1) + 1
        raise _unreadable(
            path,
            at_line,
            at_col,
            f"the character U+{exc.character:04X} is not allowed in YAML; delete it (it may "
            "come from copying text out of another program)",
        ) from None
    try:
        node = loader.get_single_node()
        positions: dict[JsonPath, Pos] = {}
        duplicates: list[Finding] = []
        budget = _Budget()
        data = (
            _construct(loader, node, (), positions, duplicates, path, budget)
            if node is not None
            else None
        )
    except _TooBig as exc:
        mark = exc.node.start_mark
        raise _unreadable(path, mark.line + 1, mark.column + 1, exc.message) from None
    except RecursionError:
        raise _unreadable(
            path,
            None,
            None,
            "the YAML is nested too deeply to read (hundreds of levels); worksheets nest a "
            "few levels at most",
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = exc.problem or exc.context or "invalid YAML"
        finding = Finding(
            _display(path),
            line,
            col,
            "error",
            "yaml-syntax",
            f"YAML syntax error: {problem}; fix the indentation or quoting here",
        )
        raise SourceError(f"{finding.where()}: {finding.message}", findings=[finding]) from None
    except yaml.YAMLError as exc:
        finding = Finding(
            _display(path), None, None, "error", "yaml-syntax", f"YAML syntax error: {exc}"
        )
        raise SourceError(f"{finding.where()}: {finding.message}", findings=[finding]) from None
    finally:
        loader.dispose()
    return Source(path=path, data=data, positions=positions, findings=duplicates)


def format_first(findings: list[Finding]) -> str:
    first = findings[0]
    more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
    return f"{first.where()}: {first.message}{more}"


@dataclass
class _Budget:
    """Values made so far, and the collections being made (an alias back into one of them
    would make the data contain itself)."""

    values: int = 0
    open: set[int] = field(default_factory=set)


def _construct(
    loader: _Loader,
    node: yaml.Node,
    path: JsonPath,
    positions: dict[JsonPath, Pos],
    duplicates: list[Finding],
    file: Path,
    budget: _Budget,
) -> Any:
    budget.values += 1
    if budget.values > MAX_VALUES:
        raise _TooBig(
            f"the YAML expands to more than {MAX_VALUES:,} values (anchors and aliases "
            "repeating each other?); write the worksheet out plainly",
            node,
        )
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in budget.open:
            raise _TooBig("an alias (*name) refers to the block that contains it; remove it", node)
        budget.open.add(id(node))
        try:
            return _construct_collection(loader, node, path, positions, duplicates, file, budget)
        finally:
            budget.open.discard(id(node))
    return loader.construct_object(node, deep=True)


def _construct_collection(
    loader: _Loader,
    node: yaml.MappingNode | yaml.SequenceNode,
    path: JsonPath,
    positions: dict[JsonPath, Pos],
    duplicates: list[Finding],
    file: Path,
    budget: _Budget,
) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                duplicates.append(
                    Finding(
                        _display(file),
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        "error",
                        "yaml-duplicate-key",
                        f"the field '{key}' appears twice in the same block; keep one",
                    )
                )
            child = (*path, key)
            result[key] = _construct(loader, value_node, child, positions, duplicates, file, budget)
            # Point field-level problems at the key, where the author reads the field name.
            positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    return [
        _construct(loader, item, (*path, i), positions, duplicates, file, budget)
        for i, item in enumerate(node.value)
    ]


#: The largest worksheet source read: ours are ~10 kB; PyYAML reads ~1 MB a second.
MAX_SOURCE_BYTES = 2_000_000


def _unreadable_file(path: Path, message: str) -> SourceError:
    finding = Finding(_display(path), None, None, "error", "read", message)
    return SourceError(f"{finding.file}: {message}", findings=[finding])


def read_source(path: Path) -> Source:
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise _unreadable_file(
                path,
                f"{size / 1e6:.1f} MB is far more than a worksheet holds "
                f"(at most {MAX_SOURCE_BYTES // 1_000_000} MB); is this the right file?",
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _unreadable_file(path, "not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise _unreadable_file(path, f"cannot read the file ({exc.strerror})") from None
    if "\x00" in text:
        raise _unreadable_file(path, "contains a NUL byte; this is not a YAML text file")
    return parse_yaml(text, path)


# --- Schema ----------------------------------------------------------------------------


def schema_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "schemas"


@cache
def _validator(schema_name: str) -> Any:
    from jsonschema import (
        Draft202012Validator,  # jsonschema is heavy; only validate/build pay for it
    )

    schema = json.loads((schema_dir() / schema_name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _type_word(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a block of fields"
    return "empty" if value is None else type(value).__name__


_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a block of fields",
}


def _field_name(data: Any, path: JsonPath) -> str:
    """``'max' of item 'emotion.intensity'`` rather than ``items[4].items[2].max``."""
    if not path:
        return "the file"
    link_id = item_link_id(data, path)
    last = path[-1]
    if link_id is None:
        return f"'{_dotted(path)}'"
    if isinstance(last, int):
        return f"'{_dotted(path[-2:])}' of item '{link_id}'"
    return f"'{last}' of item '{link_id}'"


def _describe(error: Any, data: Any) -> tuple[JsonPath, str]:
    """Turn a jsonschema error into (path, message) an author understands."""
    path: JsonPath = tuple(error.absolute_path)
    field_name = _field_name(data, path)
    validator = error.validator
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        link_id = item_link_id(data, path)
        if link_id is not None and path and isinstance(path[-1], int):
            where = f" in item '{link_id}'"
        elif path:
            where = f" in {_field_name(data, path)}"
        else:
            where = ""
        return path, f"missing required field '{missing}'{where}; add it"
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extras = sorted(set(error.instance) - set(allowed))
        name = extras[0] if extras else "?"
        guess = difflib.get_close_matches(name, allowed, n=1)
        hint = (
            f"; did you mean '{guess[0]}'?" if guess else f"; allowed fields: {', '.join(allowed)}"
        )
        return (*path, name), f"unknown field '{name}'{hint}"
    if validator == "type":
        want = error.validator_value
        wants = [want] if isinstance(want, str) else list(want)
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wants)
        return path, f"{field_name} should be {words}, not {_type_word(error.instance)}"
    if validator == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        return path, f"{field_name} must be one of: {choices} (got '{error.instance}')"
    if validator == "pattern":
        title = error.schema.get("description") or f"must match {error.validator_value}"
        return path, f"{field_name} = '{error.instance}' is not allowed: {title}"
    if validator in {"minItems", "minLength"}:
        return path, f"{field_name} must not be empty"
    if validator in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        return path, f"{field_name} {error.message}"
    if validator == "const":
        return path, f"{field_name} must be {error.validator_value!r}"
    return path, f"{field_name}: {error.message}"


def check_schema(source: Source, schema_name: str) -> list[Finding]:
    """All schema findings for ``source``, in file order."""
    findings = []
    for error in _validator(schema_name).iter_errors(source.data):
        path, message = _describe(error, source.data)
        findings.append(source.finding(path, f"schema-{error.validator}", message))
    return sorted(findings, key=lambda f: (f.line or 0, f.column or 0))


def iter_worksheet_paths(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.glob("*.yaml")):
        if not path.name.startswith("_"):
            yield path


def walk_items(
    items: list[Mapping[str, Any]], path: JsonPath = ("items",)
) -> Iterator[tuple[JsonPath, Mapping[str, Any]]]:
    """Every item of a worksheet source, depth first in document order, with its path."""
    for i, item in enumerate(items):
        here = (*path, i)
        yield here, item
        children = item.get("items")
        if isinstance(children, list):
            yield from walk_items(children, (*here, "items"))
