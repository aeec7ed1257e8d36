"""Findings: what ``validate`` reports, and the formats CI systems read.

A finding names where the problem is in words the reader can act on: the file and
line for authors, the linkId for clinicians and integration engineers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

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


def has_errors(findings: Iterable[Finding]) -> bool:
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


FORMATTERS = {"text": format_text, "json": format_json, "github": format_github}
