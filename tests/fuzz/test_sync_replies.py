"""`rejection-fhir sync` against a source whose QuestionnaireResponses arrive mutated (and a
target that accepts whatever is written): each response is written or rejected, the run
ends with a documented exit code, never a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import responses

from rejection_fhir.worksheet.synthetic import ResponseFactory
from tests.conftest import QUESTIONNAIRES
from tests.fuzz.conftest import SEED, assert_clean_exit, count, rng_for, run_cli, tag
from tests.fuzz.mutator import Mutator

BASE = "http://127.0.0.1:9999/fhir"
CASES = 60


@pytest.fixture(scope="module")
def originals(built: Any) -> list[dict[str, Any]]:
    factory = ResponseFactory(SEED + 2)
    made = []
    for i, q in enumerate(built.questionnaires):
        qr = factory.response(q, subject="Patient/p1", response_id=f"r{i}")
        qr["meta"] = {"versionId": "1", "lastUpdated": f"2026-11-20T10:{i:02d}:00Z"}
        made.append(qr)
    return made


class Source:
    def __init__(self, mock: responses.RequestsMock, qrs: list[Any]) -> None:
        self.qrs = qrs
        capability = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
        mock.get(f"{BASE}/metadata", json=capability)
        mock.add_callback(responses.GET, f"{BASE}/QuestionnaireResponse", callback=self.search)
        mock.get(f"{BASE}/Questionnaire", json={"resourceType": "Bundle", "type": "searchset"})
        mock.add_callback(responses.POST, BASE, callback=self.write)

    def search(self, request: Any) -> tuple[int, dict[str, str], str]:
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": qr, "search": {"mode": "match"}} for qr in self.qrs],
        }
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)

    def write(self, request: Any) -> tuple[int, dict[str, str], str]:
        sent = json.loads(request.body)
        entries = [
            {"response": {"status": "201 Created", "location": f"X/{i}/_history/1"}}
            for i, _ in enumerate(sent.get("entry") or [])
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)


def _is_json(value: Any) -> bool:
    """Whether a server could have sent it: no NaN, no lone surrogates (the client's own
    fuzz covers bodies that are not JSON)."""
    try:
        orjson.loads(json.dumps(value, allow_nan=False))
    except (ValueError, RecursionError):
        return False
    return True


def test_sync_with_mutated_responses(
    tmp_path: Path, built: Any, originals: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "cli/sync"
    monkeypatch.setenv("RFHIR_RETRIES", "0")
    for case in range(CASES):
        rng = rng_for(name, case)
        mutator = Mutator(rng, max_huge=20_000)
        qrs: list[Any] = []
        for qr in originals:
            mutated = mutator.mutate(qr) if rng.random() < 0.5 else qr
            if isinstance(mutated, dict) and _is_json(mutated):
                qrs.append(mutated)  # a search only yields valid JSON objects
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            Source(mock, qrs)
            result = run_cli(
                [
                    "sync",
                    "--source-server",
                    BASE,
                    "--state",
                    str(tmp_path / f"state{case}.sqlite3"),
                    "--worksheets",
                    str(QUESTIONNAIRES),
                    "--since",
                    "2026-11-01T00:00:00Z",
                ]
            )
        assert_clean_exit(result, tag(name, case), allowed={0, 1, 5, 10})
        count(name)
