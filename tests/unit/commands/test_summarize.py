"""summarize: JSON, NDJSON (streamed) and Bundles; bad lines reported, good ones kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rejection_fhir.cli import main
from rejection_fhir.worksheet.synthetic import ResponseFactory

DATA = Path(__file__).parents[2] / "data"


def run(capsys, *args):
    with pytest.raises(SystemExit) as caught:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


def test_ndjson_bundle_and_single_file(capsys, tmp_path, built, repo):
    qrs = list(ResponseFactory(3).many(built.questionnaires, ["Patient/a"], 12))
    ndjson = tmp_path / "r.ndjson"
    ndjson.write_text("\n".join(json.dumps(q) for q in qrs) + "\n")
    bundle = tmp_path / "b.json"
    bundle.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": q} for q in qrs[:3]],
            }
        )
    )
    code, out, err = run(
        capsys,
        "summarize",
        "--worksheets",
        str(repo / "questionnaires"),
        "--format",
        "json",
        str(ndjson),
        str(bundle),
        str(DATA / "qr-rejection-log.json"),
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(lines) == 12 + 3 + 1
    assert "summarised 16 response(s)" in err


def test_bad_ndjson_line_is_named_and_the_rest_is_summarised(capsys, tmp_path, repo):
    qr = (DATA / "qr-rejection-log.json").read_text()
    path = tmp_path / "r.ndjson"
    path.write_text(
        json.dumps(json.loads(qr)) + "\n{not json\n" + json.dumps(json.loads(qr)) + "\n"
    )
    code, out, err = run(
        capsys, "summarize", "--worksheets", str(repo / "questionnaires"), str(path)
    )
    assert code == 10
    assert f"{path}:2: not valid JSON" in err
    assert out.count("Rejection log\n=====") == 2
    assert "Traceback" not in err


def test_unknown_questionnaire_gets_a_generic_summary_and_a_warning(capsys, tmp_path, repo):
    qr = json.loads((DATA / "qr-rejection-log.json").read_text())
    qr["questionnaire"] = "http://elsewhere.example/Questionnaire/intake|2"
    path = tmp_path / "q.json"
    path.write_text(json.dumps(qr))
    code, out, err = run(
        capsys,
        "summarize",
        "--worksheets",
        str(repo / "questionnaires"),
        "--format",
        "markdown",
        str(path),
    )
    assert code == 0
    assert "Questionnaire http://elsewhere.example/Questionnaire/intake|2 not found" in err
    assert "What happened?" in out  # the response's own item text


def test_markup_in_answers_is_escaped_in_xhtml(capsys, repo):
    code, out, _ = run(
        capsys,
        "summarize",
        "--worksheets",
        str(repo / "questionnaires"),
        "--format",
        "xhtml",
        str(DATA / "qr-rejection-log.json"),
    )
    assert code == 0
    assert "<b>ouch</b>" not in out and "&lt;b&gt;ouch&lt;/b&gt;" in out


FOREIGN_Q = {
    "resourceType": "Questionnaire",
    "url": "http://elsewhere.example/Questionnaire/mood",
    "version": "3",
    "status": "active",
    "item": [
        {
            "linkId": "rating",
            "type": "integer",
            "text": "Rate your mood",
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 0},
                {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 10},
            ],
        },
        {"linkId": "note", "type": "string", "text": "Anything else?"},
    ],
}


def _foreign_response(*items):
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://elsewhere.example/Questionnaire/mood|3",
        "status": "completed",
        "item": list(items),
    }


def test_out_of_range_and_wrong_type_answers_warn_but_are_summarised(capsys, tmp_path, repo):
    q = tmp_path / "mood.json"
    q.write_text(json.dumps(FOREIGN_Q))
    responses = tmp_path / "r.ndjson"
    responses.write_text(
        json.dumps(
            _foreign_response(
                {"linkId": "rating", "answer": [{"valueInteger": 42}]},
                {"linkId": "note", "answer": [{"valueInteger": 7}]},
                {"item": [{"linkId": "note", "answer": [{"valueString": "my words"}]}]},
            )
        )
        + "\n"
    )
    code, out, err = run(
        capsys, "summarize", "--worksheets", str(repo / "questionnaires"),
        "--questionnaire", str(q), str(responses),
    )  # fmt: skip
    assert code == 0, err
    assert "Rate your mood: 42" in out and "Anything else? 7" in out
    assert f"{responses}:1: rating: Answer 42 to 'rating' is above maxValue 10." in err
    assert "[above-max-value]" in err and "note: " in err and "[answer-type]" in err
    assert "[missing-linkid]" in err and "Group without a linkId" in out
    assert "my words" in out and "my words" not in err
    assert str(q) not in err  # the file was used


def test_a_questionnaire_file_no_response_uses_is_named(capsys, tmp_path, repo):
    q = tmp_path / "mood.json"
    q.write_text(json.dumps({**FOREIGN_Q, "version": "2"}))
    responses = tmp_path / "r.json"
    responses.write_text(json.dumps(_foreign_response()))
    code, _, err = run(
        capsys, "summarize", "--worksheets", str(repo / "questionnaires"),
        "--questionnaire", str(q), str(responses),
    )  # fmt: skip
    assert code == 0
    assert (
        f"warning: {q}: no response named its Questionnaire "
        "(http://elsewhere.example/Questionnaire/mood|2); the file was not used" in err
    )


def _json_summaries(capsys, tmp_path, qrs, *extra):
    ndjson = tmp_path / "many.ndjson"
    ndjson.write_text("\n".join(json.dumps(q) for q in qrs) + "\n")
    code, out, err = run(capsys, "summarize", str(ndjson), "--format", "json", *extra)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_json_summaries_follow_the_published_schema(capsys, tmp_path, built, repo):
    """Every worksheet's responses, and PHQ-9s in every shape the safety rule reads."""
    import random

    from jsonschema import Draft202012Validator

    from tests.unit.scoring.safety_cases import make_case

    schema = json.loads((repo / "schemas" / "summary.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    phq9 = next(q for q in built.questionnaires if q["id"] == "phq-9")
    qrs = list(ResponseFactory(7).many(built.questionnaires, ["Patient/a"], 60))
    qrs += [make_case(random.Random(seed), phq9).qr for seed in range(120)]
    summaries = _json_summaries(capsys, tmp_path, qrs)
    assert len(summaries) == len(qrs)
    for summary in summaries:
        errors = sorted(validator.iter_errors(summary), key=str)
        assert not errors, (errors[0].message, list(errors[0].absolute_path), summary)
    kinds = {a["kind"] for s in summaries for a in s["alerts"]}
    assert {"phq9-item9-positive", "phq9-item9-unreadable"} <= kinds
    assert any(s["scores"] and s["scores"][0]["prorated"] for s in summaries)


def test_json_scores_and_alerts_are_data(capsys, tmp_path, built):
    """A prorated PHQ-9 with item 9 unanswered, and one with item 9 sent as an integer."""
    phq9 = next(q for q in built.questionnaires if q["id"] == "phq-9")
    loinc = "http://loinc.org"
    canonical = f"{phq9['url']}|{phq9['version']}"
    unanswered = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical,
        "status": "completed",
        "item": [
            {
                "linkId": f"phq9-{i}",
                "answer": [{"valueCoding": {"system": loinc, "code": "LA6570-1"}}],
            }
            for i in range(1, 9)
        ],
    }
    integer = json.loads(json.dumps(unanswered))
    integer["questionnaire"] = f"{phq9['url']}|2024.2"  # a version nobody has
    integer["item"].append({"linkId": "/44249-1/44260-8", "answer": [{"valueInteger": 2}]})
    first, second = _json_summaries(capsys, tmp_path, [unanswered, integer])

    (score,) = first["scores"]
    assert score["instrument"] == "PHQ-9" and score["value"] == 18 and score["prorated"] is True
    assert score["code"]["code"] == "44261-6" and score["panel"] == "44249-1"
    assert score["band"]["code"] == "moderately-severe" and score["band"]["system"]
    assert score["itemsMissing"] == ["phq9-9"] and score["item9Missing"] == "phq9-9"
    (alert,) = first["alerts"]
    assert alert["kind"] == "phq9-item9-unreadable" and alert["linkId"] == "phq9-9"
    assert alert["severity"] == "high" and alert["text"].startswith("SAFETY: could not check")
    line = first["highlights"][0]["values"][0]
    assert "estimated" in line and "item 9 (self-harm) was not answered" in line

    (alert,) = second["alerts"]
    assert alert["kind"] == "phq9-item9-positive" and alert["linkId"] == "/44249-1/44260-8"
    assert alert["answer"] == {"valueInteger": 2} and alert["weight"] == 2


def test_the_exit_code_follows_what_was_unreadable_not_the_wording_of_a_warning(
    capsys, tmp_path, repo
):
    """Issue 14: the command chose its exit code by looking for "not valid JSON" in the
    warnings, so a readable response whose (unknown) Questionnaire url holds those words
    made it fail.  Only input that could not be read does."""
    qr = json.loads((DATA / "qr-rejection-log.json").read_text())
    qr["questionnaire"] = "http://elsewhere.example/Questionnaire/not valid JSON|2"
    other = dict(qr, questionnaire="http://elsewhere.example/expected a FHIR resource")
    path = tmp_path / "q.ndjson"
    path.write_text(json.dumps(qr) + "\n" + json.dumps(other) + "\n")
    code, _, err = run(capsys, "summarize", "--source", str(repo / "questionnaires"), str(path))
    assert "not valid JSON|2 not found" in err and "summarised 2 response(s)" in err
    assert code == 0, err
    path.write_text(json.dumps(qr) + "\n[1]\n")  # an array of a number: no resource in it
    code, _, err = run(capsys, "summarize", "--source", str(repo / "questionnaires"), str(path))
    assert code == 10 and "expected a FHIR resource (a JSON object)" in err


def test_the_report_counts_unreadable_input_by_kind(tmp_path, catalog):
    from rejection_fhir.commands.summarize import ProblemKind, summarize_files

    qr = (DATA / "qr-rejection-log.json").read_text()
    path = tmp_path / "r.ndjson"
    path.write_text(json.dumps(json.loads(qr)) + "\n{not json\n[2]\n")
    report = summarize_files([path], catalog, lambda text: None)
    assert report.summarised == 1 and report.unreadable == 2
    assert [p.kind for p in report.problems] == [ProblemKind.UNREADABLE, ProblemKind.UNREADABLE]
