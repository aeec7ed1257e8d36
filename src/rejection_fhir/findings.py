"""Findings: what ``validate`` reports, and the formats CI systems read.

A finding names where the problem is in words the reader can act on: the file and
line for authors, the linkId for clinicians and integration engineers.

Top level, as ``errors``: both the worksheet checks (``worksheet/``) and the generic
response checks (``response/``) report findings, and neither package may import the
other's way, so the type lives below both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

Severity = Literal["error", "warning", "information"]


@dataclass(frozen=True, order=True)
class Finding:
    file: str
    line: int | None
    column: int | None
    severity: Severity
    rule: str
    message: str
    #: linkId path or field path inside the resource, for readers without the source open.
    location: str = ""

    def where(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class _Graded(Protocol):
    @property
    def severity(self) -> str: ...


def has_errors(findings: Iterable[_Graded]) -> bool:
    """Whether any finding (a source :class:`Finding`, a response's
    ``ResponseFinding``, anything with a ``severity``) is an error."""
    return any(f.severity == "error" for f in findings)


def format_text(findings: Sequence[Finding]) -> str:
    lines = []
    for f in findings:
        at = f" [{f.location}]" if f.location else ""
        lines.append(f"{f.where()}: {f.severity}: {f.message}{at} ({f.rule})")
    return "\n".join(lines)


def format_json(findings: Sequence[Finding]) -> str:
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)
    payload = {
        "errors": errors,
        "warnings": warnings,
        "findings": [asdict(f) for f in findings],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)


def _escape_github_data(value: str) -> str:
    # GitHub's workflow-command grammar: %, CR and LF must be percent-encoded in data.
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_github_property(value: str) -> str:
    return _escape_github_data(value).replace(":", "%3A").replace(",", "%2C")


def format_github(findings: Sequence[Finding]) -> str:
    """GitHub Actions workflow commands, shown as annotations on the pull request."""
    level = {"error": "error", "warning": "warning", "information": "notice"}
    lines = []
    for f in findings:
        props = [f"file={_escape_github_property(f.file)}"]
        if f.line is not None:
            props.append(f"line={f.line}")
            if f.column is not None:
                props.append(f"col={f.column}")
        props.append(f"title={_escape_github_property(f.rule)}")
        at = f" [{f.location}]" if f.location else ""
        lines.append(
            f"::{level[f.severity]} {','.join(props)}::{_escape_github_data(f.message + at)}"
        )
    return "\n".join(lines)


# XML 1.0 cannot carry most control characters, not even escaped; a message quoting a
# broken file may contain them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: str) -> str:
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def format_junit(findings: Sequence[Finding]) -> str:
    """JUnit XML, the test-report format most CI systems display: one testsuite per file,
    one testcase per finding, a failure for each error.  Warnings and information pass and
    carry their message in system-out.  With nothing to report, one passing testcase says
    so (some CI systems treat a report without tests as broken)."""
    from xml.etree import ElementTree as ET

    by_file: dict[str, list[Finding]] = {}
    for f in findings:
        by_file.setdefault(f.file, []).append(f)
    root = ET.Element("testsuites", name="rejection-fhir validate")
    if not by_file:
        suite = ET.SubElement(root, "testsuite", name="rejection-fhir validate")
        ET.SubElement(suite, "testcase", classname="rejection-fhir", name="all worksheets valid")
        by_file_counts = [(suite, 1, 0)]
    else:
        by_file_counts = []
        for file, group in by_file.items():
            suite = ET.SubElement(root, "testsuite", name=_xml_text(file))
            failures = 0
            for f in group:
                at = f" [{f.location}]" if f.location else ""
                name = f"{f.rule}{at}" + (f" line {f.line}" if f.line is not None else "")
                attrs = {
                    "classname": _xml_text(file),
                    "name": _xml_text(name),
                    "file": _xml_text(file),
                }
                if f.line is not None:
                    attrs["line"] = str(f.line)
                case = ET.SubElement(suite, "testcase", attrs)
                detail = _xml_text(f"{f.where()}: {f.severity}: {f.message}{at} ({f.rule})")
                if f.severity == "error":
                    failures += 1
                    failure = ET.SubElement(
                        case, "failure", type=_xml_text(f.rule), message=_xml_text(f.message)
                    )
                    failure.text = detail
                else:
                    out = ET.SubElement(case, "system-out")
                    out.text = detail
            by_file_counts.append((suite, len(group), failures))
    total = failed = 0
    for suite, tests, failures in by_file_counts:
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total += tests
        failed += failures
    root.set("tests", str(total))
    root.set("failures", str(failed))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


FORMATTERS = {
    "text": format_text,
    "json": format_json,
    "github": format_github,
    "junit": format_junit,
}
