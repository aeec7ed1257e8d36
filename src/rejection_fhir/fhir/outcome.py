"""Turn a FHIR OperationOutcome (a plain dict) into text a person can act on.

Pure functions only: the client calls them to build exception messages, and other modules
(validate, publish, sync) can call them on outcomes they meet in Bundle entries.

A server's ``diagnostics`` may quote the content it rejected.  When the request carried a
client's answers (sync), callers pass ``withhold_diagnostics=True`` so that free text never
reaches a log or an error message; severity, code and the FHIRPath location remain, which
is usually enough to find the problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Long server diagnostics (stack traces, whole validator dumps) are cut to this length.
MAX_DIAGNOSTICS_CHARS = 500

#: At most this many issues are listed; the rest are counted.
MAX_ISSUES = 20

_SEVERITY_RANK = {"fatal": 0, "error": 1, "warning": 2, "information": 3}
_WHITESPACE = re.compile(r"\s+")


def is_operation_outcome(value: object) -> bool:
    """True if *value* is a dict whose ``resourceType`` is OperationOutcome."""
    return isinstance(value, Mapping) and value.get("resourceType") == "OperationOutcome"


def issues(outcome: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The outcome's issues, skipping anything that is not an object."""
    raw = outcome.get("issue")
    if not isinstance(raw, list):
        return []
    return [issue for issue in raw if isinstance(issue, Mapping)]


def worst_severity(outcome: Mapping[str, Any]) -> str | None:
    """The most severe issue severity present, or None when there are no issues."""
    found = [str(issue.get("severity")) for issue in issues(outcome) if issue.get("severity")]
    if not found:
        return None
    return min(found, key=lambda severity: _SEVERITY_RANK.get(severity, len(_SEVERITY_RANK)))


def issue_location(issue: Mapping[str, Any]) -> str | None:
    """Where the issue is: ``expression`` (FHIRPath), else the deprecated ``location``."""
    for key in ("expression", "location"):
        value = issue.get(key)
        if isinstance(value, list):
            paths = [str(item) for item in value if isinstance(item, str) and item]
            if paths:
                return _clean(", ".join(paths))
    return None


def _code(value: object) -> str | None:
    """A severity or issue code as sent: one short token (servers have sent whole texts)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = _clean(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _clean(text: str) -> str:
    # Servers put stack traces and multi-line validator output here; one line reads better.
    text = _WHITESPACE.sub(" ", text).strip()
    if len(text) > MAX_DIAGNOSTICS_CHARS:
        text = text[: MAX_DIAGNOSTICS_CHARS - 3].rstrip() + "..."
    return text


def issue_text(issue: Mapping[str, Any]) -> str | None:
    """The human part of an issue: ``diagnostics``, else ``details.text``/coding display."""
    diagnostics = issue.get("diagnostics")
    if isinstance(diagnostics, str) and diagnostics.strip():
        return _clean(diagnostics)
    details = issue.get("details")
    if isinstance(details, Mapping):
        text = details.get("text")
        if isinstance(text, str) and text.strip():
            return _clean(text)
        codings = details.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, Mapping):
                    label = coding.get("display") or coding.get("code")
                    if isinstance(label, str) and label.strip():
                        return _clean(label)
    return None


def format_issue(issue: Mapping[str, Any], *, withhold_diagnostics: bool = False) -> str:
    """One line: ``error [invalid] at Questionnaire.item[0].linkId: Duplicate linkId``."""
    severity = _code(issue.get("severity")) or "issue"
    code = _code(issue.get("code"))
    line = f"{severity} [{code}]" if code else severity
    location = issue_location(issue)
    if location:
        line += f" at {location}"
    if withhold_diagnostics:
        if issue_text(issue):
            line += ": (server's text withheld: the request carried clients' answers)"
        return line
    text = issue_text(issue)
    if text:
        line += f": {text}"
    return line


def format_outcome(
    outcome: Mapping[str, Any],
    *,
    withhold_diagnostics: bool = False,
    indent: str = "  - ",
    max_issues: int = MAX_ISSUES,
) -> str:
    """All issues as lines (errors first, then warnings, then information).

    Returns an empty string when the outcome has no issues.
    """
    listed = sorted(
        issues(outcome),
        key=lambda issue: _SEVERITY_RANK.get(str(issue.get("severity")), len(_SEVERITY_RANK)),
    )
    lines = [
        indent + format_issue(issue, withhold_diagnostics=withhold_diagnostics)
        for issue in listed[:max_issues]
    ]
    if len(listed) > max_issues:
        lines.append(f"{indent}... and {len(listed) - max_issues} more issues")
    return "\n".join(lines)


def redact_outcome(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without the free-text parts (``diagnostics``, ``details.text``, narrative).

    Used when the outcome is kept on an exception for a request that carried clients'
    answers, so that code logging ``error.outcome`` cannot leak them.
    """
    redacted: dict[str, Any] = {
        key: value for key, value in outcome.items() if key not in ("text", "issue")
    }
    cleaned = []
    for issue in issues(outcome):
        copy = {key: value for key, value in issue.items() if key != "diagnostics"}
        details = copy.get("details")
        if isinstance(details, Mapping):
            copy["details"] = {key: value for key, value in details.items() if key != "text"}
        cleaned.append(copy)
    if "issue" in outcome:
        redacted["issue"] = cleaned
    return redacted
