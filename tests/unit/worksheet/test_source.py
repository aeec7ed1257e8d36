"""Broken worksheet sources: one clear message each, pointing at file:line:column."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from rejection_fhir.commands.build import build
from rejection_fhir.commands.validate import validate
from rejection_fhir.errors import ExitCode, SourceError

HEADER = """\
name: broken
version: 1.0.0
status: active
date: "2026-11-26"
title: Broken worksheet
description: A worksheet with one mistake.
purpose: Testing.
"""


@pytest.fixture
def folder(tmp_path, repo) -> Path:
    shutil.copy(repo / "questionnaires" / "_project.yaml", tmp_path / "_project.yaml")
    return tmp_path


def _write(folder: Path, body: str, header: str = HEADER) -> Path:
    path = folder / "broken.yaml"
    path.write_text(header + textwrap.dedent(body), encoding="utf-8")
    return path


def _only_error(folder: Path):
    findings = [f for f in validate([folder]) if f.severity == "error"]
    assert len(findings) == 1, findings
    return findings[0]


@dataclass(frozen=True)
class Mistake:
    """A worksheet with one mistake (the items after ``HEADER``) and the one error it gets:
    ``expect`` its fields (``file`` by name), ``says`` parts of its message."""

    body: str
    expect: dict[str, object]
    says: tuple[str, ...] = ()
    header: str = HEADER


MISTAKES = {
    "missing_field": Mistake(
        """\
        items:
          - linkId: what
            type: text
        """,
        {
            "file": "broken.yaml",
            "line": 9,
            "column": 5,
            "message": "missing required field 'text' in item 'what'; add it",
        },
    ),
    "missing_top_level_field": Mistake(
        "items:\n  - {linkId: a, type: text, text: A}\n",
        {"line": 1},
        ("missing required field 'purpose'",),
        header=HEADER.replace("purpose: Testing.\n", ""),
    ),
    "duplicate_link_id": Mistake(
        """\
        items:
          - {linkId: feeling, type: text, text: One}
          - {linkId: other, type: text, text: Two}
          - {linkId: feeling, type: string, text: Three}
        """,
        {"line": 11, "rule": "que-2", "location": "feeling"},
        ("linkId 'feeling' is used twice",),
    ),
    "enable_when_pointing_to_unknown_item": Mistake(
        """\
        items:
          - {linkId: kind, type: string, text: Kind}
          - linkId: kind-other
            type: string
            text: Specify
            enableWhen:
              - {question: kinds, operator: "=", answer: other}
        """,
        {"line": 14, "rule": "enablewhen-unknown", "location": "kind-other"},
        ("'kinds', which is not an item",),
    ),
    "enable_when_pointing_to_a_later_item": Mistake(
        """\
        items:
          - linkId: first
            type: string
            text: First
            enableWhen:
              - {question: second, operator: exists, answer: true}
          - {linkId: second, type: boolean, text: Second}
        """,
        {"rule": "enablewhen-order", "line": 13},
    ),
    "enable_when_answer_of_the_wrong_type": Mistake(
        """\
        items:
          - {linkId: score, type: integer, text: Score}
          - linkId: why
            type: text
            text: Why so high?
            enableWhen:
              - {question: score, operator: ">", answer: "seven"}
        """,
        {"rule": "enablewhen-type"},
        ("'score' is an integer item, so the answer must be answerInteger",),
    ),
    "enable_when_code_not_among_options": Mistake(
        """\
        items:
          - {linkId: kind, type: choice, text: Kind, valueSet: rejection-kind}
          - linkId: kind-other
            type: string
            text: Specify
            enableWhen:
              - {question: kind, operator: "=", answer: otherwise}
        """,
        {"rule": "enablewhen-code"},
        ("'otherwise' is not one of the options of 'kind'",),
    ),
    "wrong_type": Mistake(
        """\
        items:
          - linkId: intensity
            type: integer
            text: How strong?
            max: ten
        """,
        {
            "line": 12,
            "column": 5,
            "message": "'max' of item 'intensity' should be a number, not text",
        },
    ),
    "unknown_field_suggests_the_right_one": Mistake(
        """\
        items:
          - {linkId: a, type: text, text: A, requird: true}
        """,
        {},
        ("unknown field 'requird'; did you mean 'required'?",),
    ),
    "yaml_syntax_error": Mistake(
        """\
        items:
          - linkId: a
            type: text
            text: "unclosed
        """,
        {"rule": "yaml-syntax", "file": "broken.yaml"},
        ("YAML syntax error",),
    ),
    "duplicate_yaml_key": Mistake(
        """\
        items:
          - linkId: a
            type: text
            text: A
            text: B
        """,
        {"rule": "yaml-duplicate-key", "line": 12},
    ),
    "unknown_answer_code_and_value_set": Mistake(
        """\
        items:
          - {linkId: kind, type: choice, text: Kind, valueSet: rejection-kinds}
        """,
        {"rule": "unknown-valueset"},
        ("'rejection-kinds' is not defined",),
    ),
    "display_item_takes_no_answers": Mistake(
        """\
        items:
          - {linkId: note, type: display, text: Read this, required: true}
          - {linkId: a, type: text, text: A}
        """,
        {"rule": "que-6"},
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES.values(), ids=MISTAKES.keys())
def test_one_mistake_gives_one_error_at_its_place(folder, mistake):
    _write(folder, mistake.body, header=mistake.header)
    f = _only_error(folder)
    assert Path(f.file).name == "broken.yaml" and f.line is not None, "file:line, always"
    got = {k: Path(f.file).name if k == "file" else getattr(f, k) for k in mistake.expect}
    assert got == mistake.expect
    for part in mistake.says:
        assert part in f.message
    if mistake.expect.get("rule") == "yaml-syntax":
        assert f.message.startswith("YAML syntax error")


def test_build_writes_nothing_when_any_source_is_invalid(folder, tmp_path_factory):
    _write(folder, "items:\n  - {linkId: a, type: text}\n")
    out = tmp_path_factory.mktemp("x") / "out"
    with pytest.raises(SourceError) as caught:
        build(folder, out)
    assert caught.value.exit_code == ExitCode.SOURCE
    assert "broken.yaml:9:5" in str(caught.value)
    assert "nothing was written" in str(caught.value)
    assert not out.exists()


def test_build_leaves_a_previous_build_untouched_when_a_source_breaks(
    folder, repo, tmp_path_factory
):
    out = tmp_path_factory.mktemp("x") / "out"
    for src in (repo / "questionnaires").glob("*.yaml"):
        shutil.copy(src, folder / src.name)
    build(folder, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (folder / "core-beliefs.yaml").write_text(
        (folder / "core-beliefs.yaml").read_text().replace("version: 1.0.0", "version: one")
    )
    with pytest.raises(SourceError):
        build(folder, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --- All findings of one file in one run, the root cause first (issue 18) ------------------


def test_schema_and_rule_findings_arrive_in_one_run(folder):
    _write(
        folder,
        """\
        items:
          - linkId: a
            type: text
            text: A
            colour: red
          - linkId: g
            type: group
            text: G
            min: 0
            max: 3
            items:
              - {linkId: g1, type: string, text: G1}
    """,
    )
    errors = [f for f in validate([folder]) if f.severity == "error"]
    assert [(f.rule, f.line) for f in errors] == [
        ("schema-additionalProperties", 12),
        ("sdc-min-max", 13),
    ]


def test_duplicate_yaml_key_does_not_hide_the_other_findings(folder):
    _write(
        folder,
        """\
        items:
          - linkId: a
            type: text
            text: A
            text: B
          - linkId: b
            type: text
            text: B
            colour: red
    """,
    )
    rules = [f.rule for f in validate([folder]) if f.severity == "error"]
    assert rules == ["yaml-duplicate-key", "schema-additionalProperties"]


def test_duplicate_link_id_is_the_root_cause_reported_first(folder):
    _write(
        folder,
        """\
        items:
          - linkId: kind
            type: choice
            text: Kind
            valueSet: rejection-kind
          - linkId: kind-other
            type: string
            text: Other
            enableWhen:
              - {question: kind, operator: "=", answer: other}
          - linkId: kind
            type: integer
            text: Duplicate
    """,
    )
    errors = [f for f in validate([folder]) if f.severity == "error"]
    assert [(f.rule, f.line) for f in errors] == [("que-2", 18)]


def test_min_max_on_a_group_is_reported_once(folder):
    _write(
        folder,
        """\
        items:
          - linkId: g
            type: group
            text: G
            min: 0
            max: 3
            items:
              - {linkId: g1, type: string, text: G1}
    """,
    )
    assert [f.rule for f in validate([folder]) if f.severity == "error"] == ["sdc-min-max"]


def test_a_missing_yaml_file_is_a_usage_error(folder):
    from rejection_fhir.errors import UsageError

    with pytest.raises(UsageError, match=r"broken-typo\.yaml: no such file"):
        validate([folder / "broken-typo.yaml"])
