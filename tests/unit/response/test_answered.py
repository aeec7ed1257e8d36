"""Answer lookups for summaries: what the summary's walk records equals what resolving says."""

from __future__ import annotations

import copy

import pytest

from rejection_fhir.response.answers import NO_VALUE, resolve_response, value_of
from rejection_fhir.response.summary import generic_summary
from rejection_fhir.worksheet.synthetic import ResponseFactory


def _link_ids(items, found=None):
    found = [] if found is None else found
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("linkId"), str):
            found.append(item["linkId"])
            for answer in item.get("answer") or []:
                if isinstance(answer, dict):
                    _link_ids(answer.get("item"), found)
            _link_ids(item.get("item"), found)
    return list(dict.fromkeys(found))


def _expected(resolved, link_id):
    """From the fully resolved items: (path, displays, first raw answer) per answered instance."""
    out = []
    for item in resolved.find(link_id):
        if item.answers:
            raw = next(
                a for a in _raw_item(resolved.source, item.path)["answer"] if isinstance(a, dict)
            )
            out.append((item.path, item.displays, raw))
    return out


def _raw_item(response, path):
    """The raw item at a path such as ``emotion[1]/emotion.name`` or ``q[0]/child``."""
    container = response
    for step in path.split("/"):
        link_id, _, rest = step.partition("[")
        index = int(rest[:-1]) if rest else 0
        matches = [i for i in container.get("item") or [] if i.get("linkId") == link_id]
        if not matches:  # a question under an answer: the index is the answer's
            answers = container.get("answer") or []
            container = answers[index] if index < len(answers) else answers[0]
            matches = [i for i in container.get("item") or [] if i.get("linkId") == link_id]
            index = 0
        container = matches[index] if index < len(matches) else matches[0]
    return container


def _check_same(response, questionnaire):
    walked = resolve_response(response, questionnaire)
    assert walked.needs_answers
    generic_summary(walked)
    assert not walked.needs_answers
    fresh = resolve_response(response, questionnaire)  # no walk: resolves on demand
    assert walked.firsts == fresh.firsts
    assert set(walked.firsts) == {
        link_id for link_id in _link_ids(response.get("item")) if _expected(fresh, link_id)
    }
    for link_id in _link_ids(response.get("item")):
        expected = _expected(fresh, link_id)
        assert walked.answered(link_id) == expected, link_id
        assert fresh.answered(link_id) == expected, link_id
        first = fresh.first_answer(link_id)
        for resolved in (walked, fresh):
            assert resolved.first_display(link_id) == (first.display if first else None)
            assert resolved.first_value(link_id) == (first.value if first else None)
            assert resolved.displays(link_id) == tuple(a.display for a in fresh.answers(link_id))


def test_the_walk_records_what_resolving_finds_in_every_structure(questionnaire, response):
    _check_same(response, questionnaire)


@pytest.mark.parametrize("seed", range(5))
def test_the_walk_records_what_resolving_finds_in_the_worksheets(built, seed):
    factory = ResponseFactory(seed)
    for q in built.questionnaires:
        for _ in range(5):
            _check_same(factory.response(q, subject="Patient/1"), q)


def test_answers_without_a_value_show_no_value_and_repeats_keep_their_order(built):
    q = next(q for q in built.questionnaires if q["url"].endswith("/rejection-log"))
    response = ResponseFactory(1).response(q, subject="Patient/1")
    emotion = next(i for i in response["item"] if i["linkId"] == "emotion")
    second = copy.deepcopy(emotion)
    for child in second["item"]:
        if child["linkId"] == "emotion.intensity":
            child["answer"] = [{"extension": []}, {"valueInteger": 3}]
    response["item"].append(second)
    _check_same(response, q)
    walked = resolve_response(response, q)
    generic_summary(walked)
    last_path, shown, raw = walked.answered("emotion.intensity")[-1]
    assert shown == (NO_VALUE, "3") and raw == {"extension": []}
    assert last_path.endswith("/emotion.intensity")
    assert value_of(raw) == (None, None)


def test_nothing_answered_is_nothing_found(questionnaire, response):
    walked = resolve_response(response, questionnaire)
    generic_summary(walked)
    assert walked.answered("no-such-item") == []
    assert walked.first_display("no-such-item") is None
    assert walked.first_value("no-such-item") is None
    assert walked.displays("no-such-item") == ()
