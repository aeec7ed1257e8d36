"""Questionnaire JSON authored elsewhere, beside the YAML: the same rules at the JSON's own
lines, the same version guard, the same build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rejection_fhir.commands.build import build, build_all
from rejection_fhir.commands.validate import validate
from rejection_fhir.errors import ExitCode, SourceError
from rejection_fhir.worksheet import foreign
from tests.conftest import QUESTIONNAIRES
from tests.unit.worksheet.test_guard import ContentRepo

FORM = "weekly-check-in.json"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A worksheet folder: the project file and the example form authored elsewhere."""
    shutil.copy(QUESTIONNAIRES / "_project.yaml", tmp_path / "_project.yaml")
    shutil.copy(QUESTIONNAIRES / FORM, tmp_path / FORM)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _line(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_positions_point_at_keys_and_list_elements():
    text = '{\n  "a": [1,\n    {"b": "x"}],\n  "c": null\n}'
    positions = foreign.json_positions(text)
    assert positions[()] == (1, 1)
    assert positions[("a",)] == (2, 3)
    assert positions[("a", 0)] == (2, 9)
    assert positions[("a", 1)] == (3, 5)
    assert positions[("a", 1, "b")] == (3, 6)
    assert positions[("c",)] == (4, 3)


def test_positions_survive_escapes_and_unicode():
    text = '{"k\\"ey": "a\\u00e9\\"", "é": [true, -1.5e3]}'
    positions = foreign.json_positions(text)
    assert positions[('k"ey',)] == (1, 2)
    assert positions[("é", 1)] == (1, 36)


def test_the_example_form_is_clean_and_built_beside_the_worksheets(folder, tmp_path):
    assert validate([folder]) == []
    out = tmp_path / "out"
    build(folder, out)
    q = json.loads((out / "Questionnaire-weekly-check-in.json").read_text(encoding="utf-8"))
    original = json.loads((folder / FORM).read_text(encoding="utf-8"))
    # Server bookkeeping goes, the rest is the author's, in the author's order.
    assert q["meta"] == {"tag": original["meta"]["tag"]}
    assert q["item"] == original["item"]
    assert list(q)[:4] == ["resourceType", "id", "text", "meta"]  # narrative generated
    bundle = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    assert q in [e["resource"] for e in bundle["entry"]]


def test_findings_point_at_the_json_line_and_column(folder):
    path = folder / FORM
    _edit(path, '"version": "1.0.0"', '"version": "1.0"')
    _edit(path, '"question": "tried-strategy"', '"question": "tried-strateg"')
    _edit(path, '"code": "okay"', '"code": "good"')
    found = {f.rule: f for f in validate([folder])}
    assert (found["semver"].line, found["semver"].column) == (_line(path, '"version"'), 3)
    unknown = found["enablewhen-unknown"]
    assert unknown.line == _line(path, '"question": "tried-strateg"') - 1  # the condition
    assert unknown.location == "strategy-notes"
    assert Path(unknown.file).name == FORM


def test_one_form_is_checked_with_its_folder(folder):
    _edit(folder / FORM, '"version": "1.0.0"', '"version": "one"')
    (rule,) = {f.rule for f in validate([folder / FORM])}
    assert rule == "semver"


def test_broken_json_is_one_finding_at_its_place(folder):
    path = folder / FORM
    _edit(path, '"status": "active",', '"status": "active",,')
    (f,) = validate([folder])
    assert (f.rule, f.line) == ("json-syntax", _line(path, '"status"'))
    with pytest.raises(SourceError) as exc:
        build_all(folder)
    assert exc.value.exit_code == ExitCode.SOURCE


def test_json_that_is_not_a_questionnaire_is_refused(folder):
    (folder / "notes.json").write_text('{"resourceType": "Patient"}', encoding="utf-8")
    (folder / "_settings.json").write_text("{}", encoding="utf-8")  # not a form: ignored
    (f,) = validate([folder])
    assert f.rule == "form-not-questionnaire" and "'Patient'" in f.message


def test_id_and_name_follow_the_file_name(folder):
    _edit(folder / FORM, '"id": "weekly-check-in"', '"id": "12345"')
    shutil.copy(QUESTIONNAIRES / "future-focus.yaml", folder / "weekly-check-in.yaml")
    found = {f.rule: f for f in validate([folder])}
    assert found["id-file"].severity == "warning"
    assert found["duplicate-name"].severity == "error"
    (folder / "weekly-check-in.yaml").unlink()
    result, _ = build_all(folder)
    assert result.questionnaires[0]["id"] == "weekly-check-in"


def test_base_url_moves_only_forms_under_the_project_base(folder):
    other = json.loads((folder / FORM).read_text(encoding="utf-8"))
    other["url"] = "http://ig.example.org/fhir/Questionnaire/check-in"
    (folder / "ig-check-in.json").write_text(json.dumps(other), encoding="utf-8")
    result, _ = build_all(folder, base_url="https://clinic.example/fhir")
    assert {q["id"]: q["url"] for q in result.questionnaires} == {
        "weekly-check-in": "https://clinic.example/fhir/Questionnaire/weekly-check-in",
        "ig-check-in": "http://ig.example.org/fhir/Questionnaire/check-in",
    }


def test_version_guard_compares_forms_like_worksheets(tmp_path, monkeypatch):
    monkeypatch.delenv("RFHIR_AGAINST", raising=False)
    repo = ContentRepo(tmp_path / "content")
    path = repo.path(FORM)
    _edit(path, "how many hours did you sleep?", "how many hours did you sleep, roughly?")
    repo.commit("reworded a question of the form")
    code, found = repo.guard_json("--against", "HEAD~1")
    assert code == ExitCode.VERSION_GUARD
    (f,) = found
    assert f["rule"] == "version-unchanged" and f["file"] == f"questionnaires/{FORM}"
    assert f["line"] == _line(path, "how many hours did you sleep, roughly?")  # the text
    assert f["message"].endswith("set version: 1.1.0")
    _edit(path, '"version": "1.0.0"', '"version": "1.1.0"')
    repo.commit("bumped")
    code, found = repo.guard_json("--against", "HEAD~2")
    assert code == 0 and [f["rule"] for f in found] == ["version-change"]


def test_a_new_form_is_new_to_the_guard(tmp_path, monkeypatch):
    monkeypatch.delenv("RFHIR_AGAINST", raising=False)
    repo = ContentRepo(tmp_path / "content")
    form = json.loads(repo.path(FORM).read_text(encoding="utf-8"))
    form["url"] = form["url"].replace("weekly-check-in", "monthly-check-in")
    form["name"] = "MonthlyCheckIn"
    del form["id"]
    repo.path("monthly-check-in.json").write_text(json.dumps(form, indent=2), encoding="utf-8")
    repo.commit("a form from the NLM Form Builder")
    code, found = repo.guard_json("--against", "HEAD~1")
    assert code == 0
    assert [(f["rule"], Path(str(f["file"])).name) for f in found] == [
        ("worksheet-new", "monthly-check-in.json")
    ]


def test_nan_is_not_json_even_if_python_reads_it(folder):
    path = folder / FORM
    _edit(path, '"valueDecimal": 24', '"valueDecimal": NaN')
    (f,) = validate([folder])
    assert (f.rule, f.line) == ("json-syntax", _line(path, "NaN"))
    assert "NaN is not a JSON number" in f.message


def test_every_value_of_every_built_resource_has_a_position(built):
    def paths(value, path=()):
        yield path
        if isinstance(value, dict):
            for key, child in value.items():
                yield from paths(child, (*path, key))
        elif isinstance(value, list):
            for i, child in enumerate(value):
                yield from paths(child, (*path, i))

    for resource in [*built.resources, built.bundle()]:
        for text in (json.dumps(resource, indent=2, ensure_ascii=False), json.dumps(resource)):
            positions = foreign.json_positions(text)
            assert set(paths(resource)) == set(positions)
            lines = text.splitlines()
            for path, (line, column) in positions.items():
                if path and isinstance(path[-1], str):  # a key: the line shows it there
                    assert lines[line - 1][column - 1 :].startswith(json.dumps(path[-1])[:-1])


def test_a_response_to_the_form_is_summarised_by_the_generic_engine(built):
    from rejection_fhir.response.render import render_text
    from rejection_fhir.response.summary import summarize

    form = next(q for q in built.questionnaires if q["id"] == "weekly-check-in")
    response = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{form['url']}|{form['version']}",
        "status": "completed",
        "item": [
            {"linkId": "mood", "answer": [{"valueCoding": {"code": "low"}}]},
            {"linkId": "sleep-hours", "answer": [{"valueDecimal": 6}]},
            {"linkId": "tried-strategy", "answer": [{"valueBoolean": False}]},
        ],
    }
    text = render_text(summarize(response, form))
    assert "Weekly check-in" in text
    assert "Low" in text and "6" in text  # the display from the form's own options


def test_show_reads_a_form_whose_group_has_no_text(folder, capsys):
    from rejection_fhir.cli import main

    form = json.loads((folder / FORM).read_text(encoding="utf-8"))
    form["item"] = [{"linkId": "week", "type": "group", "item": form["item"]}]
    (folder / FORM).write_text(json.dumps(form, indent=2), encoding="utf-8")
    assert [f for f in validate([folder]) if f.severity == "error"] == []
    with pytest.raises(SystemExit) as caught:
        main(["show", "weekly-check-in", "--worksheets", str(folder)])
        raise SystemExit(0)
    assert caught.value.code in (0, None)
    assert "  week (group): \n    mood (choice)" in capsys.readouterr().out
