"""summarize: JSON, NDJSON (streamed) and Bundles; bad lines reported, good ones kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rejection_fhir.cli import main
from rejection_fhir.synthetic import ResponseFactory

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
        "--source",
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
    code, out, err = run(capsys, "summarize", "--source", str(repo / "questionnaires"), str(path))
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
        "--source",
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
        "--source",
        str(repo / "questionnaires"),
        "--format",
        "xhtml",
        str(DATA / "qr-rejection-log.json"),
    )
    assert code == 0
    assert "<b>ouch</b>" not in out and "&lt;b&gt;ouch&lt;/b&gt;" in out
