from __future__ import annotations

from rejection_fhir.response.conformance import validate_response
from rejection_fhir.worksheet.synthetic import ResponseFactory


def test_synthetic_responses_are_valid_and_cover_every_questionnaire(built):
    seen = set()
    for seed in range(3):
        for qr in ResponseFactory(seed).many(built.questionnaires, ["Patient/a", "Patient/b"], 60):
            q = next(
                q
                for q in built.questionnaires
                if qr["questionnaire"] == f"{q['url']}|{q['version']}"
            )
            seen.add(q["id"])
            assert [f for f in validate_response(qr, q) if f.severity == "error"] == [], q["id"]
    assert seen == {q["id"] for q in built.questionnaires}


def test_same_seed_same_responses(built):
    a = list(ResponseFactory(7).many(built.questionnaires, ["Patient/a"], 20))
    b = list(ResponseFactory(7).many(built.questionnaires, ["Patient/a"], 20))
    c = list(ResponseFactory(8).many(built.questionnaires, ["Patient/a"], 20))
    assert a == b and a != c
