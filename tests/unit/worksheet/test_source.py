"""Broken worksheet sources: one clear message each, pointing at file:line:column."""

from __future__ import annotations

import shutil
import textwrap
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


def test_missing_field(folder):
    _write(
        folder,
        """\
        items:
          - linkId: what
            type: text
    """,
    )
    f = _only_error(folder)
    assert (Path(f.file).name, f.line, f.column) == ("broken.yaml", 9, 5)
    assert f.message == "missing required field 'text' in item 'what'; add it"


def test_missing_top_level_field(folder):
    _write(
        folder,
        "items:\n  - {linkId: a, type: text, text: A}\n",
        header=HEADER.replace("purpose: Testing.\n", ""),
    )
    f = _only_error(folder)
    assert f.line == 1 and "missing required field 'purpose'" in f.message


def test_duplicate_link_id(folder):
    _write(
        folder,
        """\
        items:
          - {linkId: feeling, type: text, text: One}
          - {linkId: other, type: text, text: Two}
          - {linkId: feeling, type: string, text: Three}
    """,
    )
    f = _only_error(folder)
    assert f.line == 11 and f.rule == "que-2"
    assert "linkId 'feeling' is used twice" in f.message
    assert f.location == "feeling"


def test_enable_when_pointing_to_unknown_item(folder):
    _write(
        folder,
        """\
        items:
          - {linkId: kind, type: string, text: Kind}
          - linkId: kind-other
            type: string
            text: Specify
            enableWhen:
              - {question: kinds, operator: "=", answer: other}
    """,
    )
    f = _only_error(folder)
    assert (f.line, f.rule) == (14, "enablewhen-unknown")
    assert "'kinds', which is not an item" in f.message
    assert f.location == "kind-other"


def test_enable_when_pointing_to_a_later_item(folder):
    _write(
        folder,
        """\
        items:
          - linkId: first
            type: string
            text: First
            enableWhen:
              - {question: second, operator: exists, answer: true}
          - {linkId: second, type: boolean, text: Second}
    """,
    )
    f = _only_error(folder)
    assert f.rule == "enablewhen-order" and f.line == 13


def test_enable_when_answer_of_the_wrong_type(folder):
    _write(
        folder,
        """\
        items:
          - {linkId: score, type: integer, text: Score}
          - linkId: why
            type: text
            text: Why so high?
            enableWhen:
              - {question: score, operator: ">", answer: "seven"}
    """,
    )
    f = _only_error(folder)
    assert f.rule == "enablewhen-type"
    assert "'score' is an integer item, so the answer must be answerInteger" in f.message


def test_enable_when_code_not_among_options(folder):
    _write(
        folder,
        """\
        items:
          - {linkId: kind, type: choice, text: Kind, valueSet: rejection-kind}
          - linkId: kind-other
            type: string
            text: Specify
            enableWhen:
              - {question: kind, operator: "=", answer: otherwise}
    """,
    )
    f = _only_error(folder)
    assert (
        f.rule == "enablewhen-code"
        and "'otherwise' is not one of the options of 'kind'" in f.message
    )


def test_wrong_type(folder):
    _write(
        folder,
        """\
        items:
          - linkId: intensity
            type: integer
            text: How strong?
            max: ten
    """,
    )
    f = _only_error(folder)
    assert (f.line, f.column) == (12, 5)
    assert f.message == "'max' of item 'intensity' should be a number, not text"


def test_unknown_field_suggests_the_right_one(folder):
    _write(
        folder,
        """\
        items:
          - {linkId: a, type: text, text: A, requird: true}
    """,
    )
    f = _only_error(folder)
    assert "unknown field 'requird'; did you mean 'required'?" in f.message


def test_yaml_syntax_error(folder):
    _write(
        folder,
        """\
        items:
          - linkId: a
            type: text
            text: "unclosed
    """,
    )
    f = _only_error(folder)
    assert f.rule == "yaml-syntax" and Path(f.file).name == "broken.yaml" and f.line is not None
    assert f.message.startswith("YAML syntax error")


def test_duplicate_yaml_key(folder):
    _write(
        folder,
        """\
        items:
          - linkId: a
            type: text
            text: A
            text: B
    """,
    )
    f = _only_error(folder)
    assert (f.rule, f.line) == ("yaml-duplicate-key", 12)


def test_unknown_answer_code_and_value_set(folder):
    _write(
        folder,
        """\
        items:
          - {linkId: kind, type: choice, text: Kind, valueSet: rejection-kinds}
    """,
    )
    f = _only_error(folder)
    assert f.rule == "unknown-valueset" and "'rejection-kinds' is not defined" in f.message


def test_display_item_takes_no_answers(folder):
    _write(
        folder,
        """\
        items:
          - {linkId: note, type: display, text: Read this, required: true}
          - {linkId: a, type: text, text: A}
    """,
    )
    f = _only_error(folder)
    assert f.rule == "que-6"


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
