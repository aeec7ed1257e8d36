"""CI output formats, read back the way CI systems read them: JUnit XML with an XML parser,
JSON with a JSON parser, GitHub workflow commands with a parser of their grammar."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree as ET

import pytest

from rejection_fhir.findings import FORMATTERS, Finding, format_github, format_json, format_junit

HOSTILE = 'a <b> & "c", d: 50% done\nsecond line\r\x1b[31m\x00 end'

FINDINGS = [
    Finding(
        "questionnaires/rejection-log.yaml",
        12,
        5,
        "error",
        "version-unchanged",
        "item 'kind': option 'online' added (needs-new-version); set version: 1.1.0",
        "kind",
    ),
    Finding(
        "questionnaires/rejection-log.yaml", 30, None, "warning", "sdc-item-control", HOSTILE, "x"
    ),
    Finding("questionnaires/future-focus.yaml", None, None, "error", "que-1", "a group", ""),
    Finding("questionnaires/future-focus.yaml", 2, 10, "information", "version-change", "ok", ""),
    Finding("dir,with:odd%name.json", 1, 1, "error", "json-syntax", HOSTILE, ""),
]

_COMMAND = re.compile(r"^::(?P<level>error|warning|notice)(?: (?P<props>[^:]*))?::(?P<data>.*)$")


def _unescape(value: str, *, prop: bool) -> str:
    out = value.replace("%0D", "\r").replace("%0A", "\n")
    if prop:
        out = out.replace("%3A", ":").replace("%2C", ",")
    return out.replace("%25", "%")


def parse_github(text: str) -> list[dict[str, str]]:
    """Workflow commands as the runner reads them: one per line, properties split on ','."""
    commands = []
    for line in text.splitlines():
        match = _COMMAND.match(line)
        assert match, f"not a workflow command: {line!r}"
        props = {}
        for pair in (match.group("props") or "").split(","):
            key, _, value = pair.partition("=")
            props[key] = _unescape(value, prop=True)
        commands.append(
            {
                "level": match.group("level"),
                **props,
                "message": _unescape(match.group("data"), prop=False),
            }
        )
    return commands


def test_github_annotations_round_trip():
    commands = parse_github(format_github(FINDINGS))
    assert [c["level"] for c in commands] == ["error", "warning", "error", "notice", "error"]
    first = commands[0]
    assert first["file"] == "questionnaires/rejection-log.yaml"
    assert (first["line"], first["col"], first["title"]) == ("12", "5", "version-unchanged")
    assert first["message"].endswith("set version: 1.1.0 [kind]")
    assert commands[1]["message"] == HOSTILE + " [x]"
    assert "col" not in commands[1]
    assert "line" not in commands[2]
    assert commands[4]["file"] == "dir,with:odd%name.json"


def test_json_carries_every_field():
    payload = json.loads(format_json(FINDINGS))
    assert payload["errors"] == 3
    assert payload["warnings"] == 1
    assert payload["findings"][0] == {
        "file": "questionnaires/rejection-log.yaml",
        "line": 12,
        "column": 5,
        "severity": "error",
        "rule": "version-unchanged",
        "message": FINDINGS[0].message,
        "location": "kind",
    }
    assert payload["findings"][1]["message"] == HOSTILE


def test_junit_is_valid_xml_with_a_suite_per_file():
    root = ET.fromstring(format_junit(FINDINGS).encode("utf-8"))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "3", "0")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == [
        "questionnaires/rejection-log.yaml",
        "questionnaires/future-focus.yaml",
        "dir,with:odd%name.json",
    ]
    log = suites["questionnaires/rejection-log.yaml"]
    assert (log.get("tests"), log.get("failures")) == ("2", "1")
    error, warning = log.findall("testcase")
    assert error.get("name") == "version-unchanged [kind] line 12"
    assert error.get("line") == "12"
    failure = error.find("failure")
    assert failure is not None
    assert failure.get("type") == "version-unchanged"
    assert failure.get("message") == FINDINGS[0].message
    assert failure.text is not None
    assert failure.text.startswith("questionnaires/rejection-log.yaml:12:5: error: ")
    assert warning.find("failure") is None
    out = warning.find("system-out")
    assert out is not None and out.text is not None
    # Markup and quotes survive escaping; characters XML cannot carry are spelled out.
    assert 'a <b> & "c", d: 50% done\nsecond line' in out.text
    assert "\\x1b[31m\\x00 end" in out.text
    future = suites["questionnaires/future-focus.yaml"]
    assert (future.get("tests"), future.get("failures")) == ("2", "1")
    odd = suites["dir,with:odd%name.json"].find("testcase/failure")
    assert odd is not None and "\\x00" in (odd.get("message") or "")


def test_junit_without_findings_still_has_a_passing_test():
    root = ET.fromstring(format_junit([]))
    assert (root.get("tests"), root.get("failures")) == ("1", "0")
    (case,) = root.iter("testcase")
    assert case.get("name") == "all worksheets valid"
    assert case.find("failure") is None


@pytest.mark.parametrize("fmt", sorted(FORMATTERS))
def test_every_format_is_registered_and_names_each_error_rule(fmt):
    text = FORMATTERS[fmt](FINDINGS)
    for rule in ("version-unchanged", "que-1", "json-syntax"):
        assert rule in text
