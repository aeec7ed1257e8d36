"""Compiled Questionnaires (built once, cached) and the index that finds one by canonical."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from rejection_fhir.errors import ExitCode, InputError, VersionConflictError
from rejection_fhir.response import QuestionnaireIndex, compile_questionnaire, split_canonical
from tests.unit.response.helpers import CANONICAL, tiny_questionnaire

Json = dict[str, Any]


def test_compiled_items_in_questionnaire_order(questionnaire: Json) -> None:
    compiled = compile_questionnaire(questionnaire)
    walked = [item.link_id for item in compiled.walk()]
    assert walked[:6] == [
        "intro",
        "event",
        "event-date",
        "event-time",
        "event-logged",
        "event-what",
    ]
    assert [item.order for item in compiled.walk()] == list(range(len(walked)))
    assert set(compiled.by_link_id) == set(walked)
    intensity = compiled.by_link_id["intensity"]
    assert (intensity.ancestors, intensity.position, intensity.parent.link_id) == (  # type: ignore[union-attr]
        ("emotions",),
        1,
        "emotions",
    )
    assert (intensity.min_value, intensity.max_value, intensity.unit) == (
        ("valueInteger", 0),
        ("valueInteger", 10),
        "points",
    )
    assert compiled.by_link_id["emotions"].indexed is True
    assert compiled.by_link_id["thoughts"].indexed is False  # a repeating question: answers repeat
    assert (compiled.canonical, compiled.title) == (
        f"{CANONICAL}|1.2.0",
        "Looking back at a rejection",
    )


def test_options_carry_display_and_weight(questionnaire: Json) -> None:
    compiled = compile_questionnaire(questionnaire)
    emotion = compiled.by_link_id["emotion"]
    assert [(o.code, o.display, o.weight) for o in emotion.options] == [
        ("sad", "Sad", Decimal(1)),
        ("angry", "Angry", Decimal(2)),
        ("ashamed", "Ashamed", Decimal(3)),
    ]
    mood = compiled.by_link_id["mood"]
    assert [o.weight for o in mood.options] == [Decimal(0), Decimal(1), Decimal("2.5")]
    rating = compiled.by_link_id["rating"]
    assert rating.value_keys == {"valueCoding", "valueInteger"}
    assert [o.display for o in rating.options] == ["1", "2", "3", "4", "5"]


def test_item_label_includes_the_prefix() -> None:
    compiled = compile_questionnaire(
        tiny_questionnaire({"linkId": "q1", "type": "string", "prefix": "1.", "text": "Name"})
    )
    assert compiled.by_link_id["q1"].label == "1. Name"


def test_compiling_is_cached_per_questionnaire_object(questionnaire: Json) -> None:
    assert compile_questionnaire(questionnaire) is compile_questionnaire(questionnaire)
    twin = copy.deepcopy(questionnaire)
    assert compile_questionnaire(twin) is not compile_questionnaire(questionnaire)
    compiled = compile_questionnaire(twin)
    assert compile_questionnaire(compiled) is compiled


@pytest.mark.parametrize("not_a_questionnaire", [None, [], {"resourceType": "ValueSet"}])
def test_only_questionnaires_compile(not_a_questionnaire: Any) -> None:
    with pytest.raises(InputError) as raised:
        compile_questionnaire(not_a_questionnaire)
    assert raised.value.exit_code is ExitCode.INPUT


def test_duplicate_link_ids_are_noted_and_the_first_kept() -> None:
    compiled = compile_questionnaire(
        tiny_questionnaire(
            {"linkId": "a", "type": "string", "text": "first"},
            {"linkId": "a", "type": "integer", "text": "second"},
        )
    )
    assert compiled.duplicate_link_ids == {"a"}
    assert compiled.by_link_id["a"].text == "first"


# ---------------------------------------------------------------------- value sets


def test_contained_value_sets(questionnaire: Json) -> None:
    compiled = compile_questionnaire(questionnaire)
    channels = compiled.code_list("#channels")
    assert channels is not None and channels.complete
    assert channels.find("http://clinic.test/fhir/CodeSystem/channel", "social").weight == Decimal(
        2
    )  # type: ignore[union-attr]
    assert channels.find(None, "text").display == "Text message"  # type: ignore[union-attr]
    assert channels.find("http://other.test", "text") is None
    supports = compiled.code_list("#supports")
    assert supports is not None and supports.complete
    assert {c.code for c in supports.by_system_code.values()} == {"friend", "family", "therapist"}
    places = compiled.code_list("#places")
    assert places is not None and not places.complete
    assert compiled.code_list("#missing") is None
    assert compiled.code_list("http://clinic.test/ValueSet/elsewhere") is None


def test_a_paged_expansion_is_incomplete() -> None:
    q = tiny_questionnaire({"linkId": "c", "type": "choice", "answerValueSet": "#vs"})
    q["contained"] = [
        {
            "resourceType": "ValueSet",
            "id": "vs",
            "expansion": {"total": 40, "contains": [{"system": "s", "code": "a"}]},
        }
    ]
    codes = compile_questionnaire(q).code_list("#vs")
    assert codes is not None and not codes.complete and codes.find("s", "a") is not None


# ---------------------------------------------------------------------- index


def version(v: str | None, date: str | None = None, title: str = "") -> Json:
    q = tiny_questionnaire(url=CANONICAL)
    if v is None:
        del q["version"]
    else:
        q["version"] = v
    if date:
        q["date"] = date
    q["title"] = title or f"v{v}"
    q["id"] = f"ks-{v}"
    return q


def titles(index: QuestionnaireIndex, canonical: str) -> str | None:
    compiled = index.compiled(canonical)
    return compiled.title if compiled is not None else None


def test_exact_version_first() -> None:
    index = QuestionnaireIndex([version("1.0.0"), version("1.2.0"), version("1.10.0")])
    assert titles(index, f"{CANONICAL}|1.2.0") == "v1.2.0"
    assert titles(index, f"{CANONICAL}|1.3.0") is None  # never another version instead
    assert titles(index, CANONICAL) == "v1.10.0"  # semantic, not string, order
    assert len(index) == 3
    assert f"{CANONICAL}|1.0.0" in index and f"{CANONICAL}|9" not in index


def test_latest_follows_semantic_version_precedence() -> None:
    index = QuestionnaireIndex(
        [version("1.10.0"), version("2.0.0-beta.2"), version("2.0.0-beta.10")]
    )
    assert titles(index, CANONICAL) == "v2.0.0-beta.10"
    index.add(version("2.0.0"))
    assert titles(index, CANONICAL) == "v2.0.0"
    index.add(version("2.0.0-rc.1"))
    assert titles(index, CANONICAL) == "v2.0.0"


def test_versions_that_are_not_semantic_rank_by_date() -> None:
    index = QuestionnaireIndex([version("spring", "2024-03-01"), version("autumn", "2024-09-01")])
    assert titles(index, CANONICAL) == "vautumn"
    index.add(version("0.1.0", "2020-01-01"))
    assert titles(index, CANONICAL) == "v0.1.0"  # any semantic version outranks them


def test_get_returns_the_resource_and_ids_resolve(questionnaire: Json) -> None:
    index = QuestionnaireIndex([questionnaire])
    assert index.get(f"{CANONICAL}|1.2.0") is questionnaire
    assert index.get("Questionnaire/kitchen-sink") is questionnaire
    assert index.get("http://clinic.test/other") is None
    assert index.get("") is None


def test_the_same_version_with_other_content_is_a_conflict(questionnaire: Json) -> None:
    index = QuestionnaireIndex([questionnaire])
    index.add(copy.deepcopy(questionnaire))  # identical content: fine
    changed = copy.deepcopy(questionnaire)
    changed["title"] = "Changed"
    with pytest.raises(VersionConflictError) as raised:
        index.add(changed)
    assert f"{CANONICAL}|1.2.0" in str(raised.value)
    assert raised.value.exit_code is ExitCode.VERSION_CONFLICT


def test_a_questionnaire_without_url_or_id_cannot_be_indexed() -> None:
    anonymous = tiny_questionnaire()
    del anonymous["url"]
    with pytest.raises(InputError):
        QuestionnaireIndex([anonymous])


def test_for_response_finds_contained_and_indexed(questionnaire: Json, response: Json) -> None:
    index = QuestionnaireIndex([questionnaire])
    assert index.for_response(response) is index.compiled(CANONICAL)
    contained = dict(copy.deepcopy(questionnaire), id="inline")
    response["contained"] = [contained]
    response["questionnaire"] = "#inline"
    found = index.for_response(response)
    assert found is not None and found.source is contained
    response["questionnaire"] = "#absent"
    assert index.for_response(response) is None


@pytest.mark.parametrize(
    ("canonical", "parts"),
    [
        ("http://a/Q/x", ("http://a/Q/x", None)),
        ("http://a/Q/x|1.0.0", ("http://a/Q/x", "1.0.0")),
        ("http://a/Q/x|", ("http://a/Q/x", None)),
    ],
)
def test_split_canonical(canonical: str, parts: tuple[str, str | None]) -> None:
    assert split_canonical(canonical) == parts
