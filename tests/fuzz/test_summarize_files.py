"""`rejection-fhir summarize` on mutated JSON, NDJSON and Bundle files, null bytes, deep
nesting and a 50 MB body: exit 0 or 10 with one clear message, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rejection_fhir.worksheet.synthetic import ResponseFactory
from tests.fuzz.conftest import SEED, assert_clean_exit, count, rng_for, run_cli, tag
from tests.fuzz.mutator import Mutator, dumps
from tests.unit.response.conftest import load

CLI_CASES = 140
FORMATS = ["text", "markdown", "json", "xhtml"]


@pytest.fixture(scope="module")
def responses_(built: Any) -> list[dict[str, Any]]:
    factory = ResponseFactory(SEED + 1)
    made = [factory.response(q, subject="Patient/fuzz") for q in built.questionnaires]
    return [*made, load("kitchen-sink.response.json")]


def _bundle(entries: list[Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": e, "fullUrl": f"urn:uuid:{i}"} for i, e in enumerate(entries)],
    }


def test_summarize_mutated_files(tmp_path: Path, responses_: list[dict[str, Any]]) -> None:
    name = "cli/summarize"
    for case in range(CLI_CASES):
        rng = rng_for(name, case)
        mutator = Mutator(rng, max_huge=100_000)
        shape = rng.choice(["json", "bundle", "array", "ndjson"])
        picked = [rng.choice(responses_) for _ in range(rng.randint(1, 4))]
        if shape == "ndjson":
            lines = [
                mutator.mutate_json_text(r) if rng.random() < 0.5 else dumps(r) for r in picked
            ]
            data = b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"
            path = tmp_path / f"case{case}.ndjson"
        else:
            document: Any = (
                picked[0] if shape == "json" else _bundle(picked) if shape == "bundle" else picked
            )
            data = mutator.mutate_json_text(document)
            path = tmp_path / f"case{case}.json"
        path.write_bytes(data)
        result = run_cli(["summarize", "--format", rng.choice(FORMATS), str(path)])
        assert_clean_exit(result, tag(name, case), allowed={0, 10})
        path.unlink()
        count(name)


def test_summarize_mutated_questionnaire_files(
    tmp_path: Path, responses_: list[dict[str, Any]]
) -> None:
    name = "cli/summarize-questionnaire"
    questionnaire = load("kitchen-sink.questionnaire.json")
    response = tmp_path / "qr.json"
    response.write_text(json.dumps(load("kitchen-sink.response.json")))
    for case in range(40):
        rng = rng_for(name, case)
        given = tmp_path / "q.json"
        specials = [
            b"[1, 2]",
            b"null",
            b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            b'"Questionnaire"',
        ]
        data = (
            specials[case] if case < len(specials) else Mutator(rng).mutate_json_text(questionnaire)
        )
        given.write_bytes(data)
        result = run_cli(["summarize", "--questionnaire", str(given), str(response)])
        assert_clean_exit(result, tag(name, case), allowed={0, 10})
        count(name)


def _special_files(tmp: Path, response: dict[str, Any]) -> dict[str, bytes]:
    huge_answer = json.loads(json.dumps(response))
    huge_answer["item"] = [{"linkId": "x", "answer": [{"valueString": "é" * 25_000_000}]}]
    return {
        "nul.json": dumps(response).replace(b'"completed"', b'"comp\x00leted"'),
        "raw-nul.json": b"\x00" * 1000,
        "nul-line.ndjson": dumps(response) + b"\n\x00\x00\x00\n" + dumps(response) + b"\n",
        "deep-array.json": b"[" * 200_000 + b"]" * 200_000,
        "deep-object.json": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        "deep-items.json": dumps(
            {**response, "item": [json.loads('{"linkId":"a","item":' * 400 + "[]" + "}" * 400)]}
        ),
        "deep-line.ndjson": b"[" * 100_000 + b"\n" + dumps(response) + b"\n",
        "fifty-mb-answer.json": dumps(huge_answer),
        "fifty-mb-garbage.json": b"{" + b"x" * 50_000_000,
        "fifty-mb-line.ndjson": b'"' + b"a" * 50_000_000 + b'"\n',
        "bom.json": b"\xef\xbb\xbf" + dumps(response),
        "latin1.json": dumps(response).replace(b"completed", "complété".encode("latin-1")),
        "empty.json": b"",
        "empty.ndjson": b"",
        "number.json": b"42",
        "nan.json": b'{"resourceType": "QuestionnaireResponse", "status": NaN}',
    }


def test_summarize_special_files(tmp_path: Path, responses_: list[dict[str, Any]]) -> None:
    name = "cli/summarize-special"
    for file_name, data in _special_files(tmp_path, responses_[0]).items():
        path = tmp_path / file_name
        path.write_bytes(data)
        del data
        for fmt in ("text", "xhtml"):
            result = run_cli(["summarize", "--format", fmt, str(path)])
            where = tag(name, f"{file_name}/{fmt}")
            assert_clean_exit(result, where, allowed={0, 10})
            assert len(result.err) < 10_000, f"{where} stderr of {len(result.err)} chars"
            count(name)
        path.unlink()
