"""The version guard's classifier: each class of change, and the version rules."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rejection_fhir.fhir.r4 import MAX_VALUE, MIN_VALUE, ORDINAL_VALUE, UNIT
from rejection_fhir.worksheet import versioning
from rejection_fhir.worksheet.versioning import classify, next_version, parse_version


@pytest.fixture(scope="module")
def questionnaires(built) -> dict[str, dict[str, Any]]:
    return {q["id"]: q for q in built.questionnaires}


def _walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("item", []))


def item(q: dict[str, Any], link_id: str) -> dict[str, Any]:
    return next(i for i in _walk(q["item"]) if i["linkId"] == link_id)


def siblings_of(q: dict[str, Any], link_id: str) -> list[dict[str, Any]]:
    for parent in [q, *_walk(q["item"])]:
        kids = parent.get("item", [])
        if any(k["linkId"] == link_id for k in kids):
            return kids
    raise KeyError(link_id)


def remove(q: dict[str, Any], link_id: str) -> None:
    kids = siblings_of(q, link_id)
    kids[:] = [k for k in kids if k["linkId"] != link_id]


def set_ext(i: dict[str, Any], url: str, value: Any) -> None:
    exts = [e for e in i.get("extension", []) if e["url"] != url]
    if value is not None:
        exts.append({"url": url, "valueInteger": value})
    i["extension"] = exts


Mutation = Callable[[dict[str, Any]], None]

# (kind, linkId the reason must name (None: the Questionnaire), mutation of rejection-log)
CASES: list[tuple[str, versioning.Kind, str | None, Mutation]] = [
    ("description", "compatible", None, lambda q: q.update(description="New words.")),
    ("publisher", "compatible", None, lambda q: q.update(publisher="Another clinic")),
    ("copyright", "compatible", None, lambda q: q.update(copyright="© someone else")),
    ("purpose", "compatible", None, lambda q: q.update(purpose="Another purpose.")),
    ("status", "compatible", None, lambda q: q.update(status="retired")),
    ("title", "compatible", None, lambda q: q.update(title="A log")),
    ("date", "compatible", None, lambda q: q.update(date="2027-01-01")),
    ("prefix", "compatible", "when", lambda q: item(q, "when").update(prefix="3.")),
    (
        "item control",
        "compatible",
        "kind",
        lambda q: item(q, "kind")["extension"][0]["valueCodeableConcept"]["coding"][0].update(
            code="drop-down"
        ),
    ),
    (
        "option order",
        "compatible",
        "kind",
        lambda q: item(q, "kind")["answerOption"].reverse(),
    ),
    ("reworded text", "needs-new-version", "when", lambda q: item(q, "when").update(text="When?")),
    (
        "reworded help",
        "needs-new-version",
        "what-happened.help",
        lambda q: item(q, "what-happened.help").update(text="Briefly."),
    ),
    (
        "added optional item",
        "needs-new-version",
        "where",
        lambda q: q["item"].insert(4, {"linkId": "where", "type": "string", "text": "Where?"}),
    ),
    (
        "added option",
        "needs-new-version",
        "kind",
        lambda q: item(q, "kind")["answerOption"].append(
            {"valueCoding": {"system": "urn:x", "code": "online", "display": "Online"}}
        ),
    ),
    (
        "reworded option",
        "needs-new-version",
        "kind",
        lambda q: item(q, "kind")["answerOption"][3]["valueCoding"].update(display="Familial"),
    ),
    (
        "required dropped",
        "compatible",
        "kind",
        lambda q: item(q, "kind").pop("required"),
    ),
    (
        "repeats allowed",
        "needs-new-version",
        "when",
        lambda q: item(q, "when").update(repeats=True),
    ),
    (
        "maxLength widened",
        "compatible",
        "kind-other",
        lambda q: item(q, "kind-other").update(maxLength=500),
    ),
    (
        "max widened",
        "compatible",
        "worth-impact",
        lambda q: set_ext(item(q, "worth-impact"), MAX_VALUE, 100),
    ),
    (
        "enableWhen on an optional item",
        "needs-new-version",
        "when",
        lambda q: item(q, "when").update(
            enableWhen=[{"question": "what-happened", "operator": "exists", "answerBoolean": True}]
        ),
    ),
    (
        "help added",
        "needs-new-version",
        "when.help",
        lambda q: item(q, "when").update(
            item=[{"linkId": "when.help", "type": "display", "text": "Roughly is fine."}]
        ),
    ),
    ("removed item", "breaking", "when", lambda q: remove(q, "when")),
    ("removed group", "breaking", "emotion", lambda q: remove(q, "emotion")),
    ("changed linkId", "breaking", "when", lambda q: item(q, "when").update(linkId="when2")),
    ("changed type", "breaking", "when", lambda q: item(q, "when").update(type="dateTime")),
    (
        "removed option",
        "breaking",
        "kind",
        lambda q: item(q, "kind")["answerOption"].pop(1),
    ),
    (
        "recoded option",
        "breaking",
        "kind",
        lambda q: item(q, "kind")["answerOption"][3]["valueCoding"].update(code="family"),
    ),
    (
        "required added",
        "breaking",
        "when",
        lambda q: item(q, "when").update(required=True),
    ),
    (
        "new required item",
        "breaking",
        "where",
        lambda q: q["item"].append(
            {"linkId": "where", "type": "string", "text": "Where?", "required": True}
        ),
    ),
    (
        "repeats dropped",
        "breaking",
        "emotion",
        lambda q: item(q, "emotion").pop("repeats"),
    ),
    (
        "maxLength narrowed",
        "breaking",
        "kind-other",
        lambda q: item(q, "kind-other").update(maxLength=20),
    ),
    (
        "max narrowed",
        "breaking",
        "worth-impact",
        lambda q: set_ext(item(q, "worth-impact"), MAX_VALUE, 5),
    ),
    (
        "min raised",
        "breaking",
        "worth-impact",
        lambda q: set_ext(item(q, "worth-impact"), MIN_VALUE, 1),
    ),
    (
        "unit added",
        "needs-new-version",
        "worth-impact",
        lambda q: item(q, "worth-impact")["extension"].append(
            {"url": UNIT, "valueCoding": {"system": "http://unitsofmeasure.org", "code": "{score}"}}
        ),
    ),
    (
        "items reordered",
        "breaking",
        None,
        lambda q: q["item"].insert(0, q["item"].pop(3)),
    ),
    (
        "item moved into a group",
        "breaking",
        "when",
        lambda q: (
            item(q, "emotion")["item"].append(copy.deepcopy(item(q, "when"))),
            remove(q, "when"),
        ),
    ),
    (
        "enableWhen on a required item",
        "breaking",
        "kind-other",
        lambda q: item(q, "kind-other")["enableWhen"][0]["answerCoding"].update(code="social"),
    ),
    (
        "item code removed",
        "breaking",
        "worth-impact",
        lambda q: item(q, "worth-impact").pop("code"),
    ),
    (
        "canonical url",
        "breaking",
        None,
        lambda q: q.update(url="https://elsewhere.example/Questionnaire/rejection-log"),
    ),
]


@pytest.mark.parametrize(("what", "kind", "link_id", "mutate"), CASES, ids=[c[0] for c in CASES])
def test_each_class_of_change(questionnaires, what, kind, link_id, mutate):
    old = questionnaires["rejection-log"]
    new = copy.deepcopy(old)
    mutate(new)
    change = classify(old, new)
    assert change.kind == kind, change.reasons
    worst = [r for r in change.reasons if r.kind == kind]
    assert any(r.link_id == link_id for r in worst), worst
    for r in worst:
        if r.link_id is not None:
            assert f"'{r.link_id}'" in r.message or r.link_id.endswith(".help")


def test_identical_content_is_none_whatever_the_server_adds(questionnaires):
    old = questionnaires["future-focus"]
    held = copy.deepcopy(old)
    held.update(id="42", meta={"versionId": "3", "lastUpdated": "2026-11-26T00:00:00Z"})
    held["text"] = {"status": "generated", "div": "<div>…</div>"}
    change = classify(held, old)
    assert change.kind == "none"
    assert change.reasons == ()
    assert change.ok
    assert change.suggested_version == old["version"]


def test_server_decimal_round_trip_is_no_change(questionnaires):
    old = questionnaires["rejection-log"]
    held = copy.deepcopy(old)
    for ext in item(held, "worth-impact")["extension"]:
        if "valueInteger" in ext:
            ext["valueInteger"] = float(ext["valueInteger"])
    assert classify(held, old).kind == "none"


def test_a_removed_group_is_one_reason_naming_what_it_held(questionnaires):
    old = questionnaires["rejection-log"]
    new = copy.deepcopy(old)
    remove(new, "emotion")
    reasons = classify(old, new).reasons
    assert [r.link_id for r in reasons] == ["emotion"]
    assert "with 3 items inside" in reasons[0].message
    assert reasons[0].anchor is None  # nothing left to point at but the Questionnaire


def test_a_removed_child_points_at_its_surviving_parent(questionnaires):
    old = questionnaires["rejection-log"]
    new = copy.deepcopy(old)
    remove(new, "emotion.other")
    (reason,) = [r for r in classify(old, new).reasons if r.kind == "breaking"]
    assert reason.link_id == "emotion.other"
    assert reason.anchor == "emotion"


def test_a_new_required_item_inside_a_new_optional_group_is_not_breaking(questionnaires):
    old = questionnaires["rejection-log"]
    new = copy.deepcopy(old)
    new["item"].append(
        {
            "linkId": "support",
            "type": "group",
            "text": "Support",
            "item": [{"linkId": "support.who", "type": "string", "text": "Who?", "required": True}],
        }
    )
    change = classify(old, new)
    assert change.kind == "needs-new-version"
    assert [r.link_id for r in change.reasons] == ["support"]


def test_a_changed_unit_changes_what_numbers_mean(questionnaires):
    old = copy.deepcopy(questionnaires["rejection-log"])
    ucum = "http://unitsofmeasure.org"
    item(old, "worth-impact")["extension"].append(
        {"url": UNIT, "valueCoding": {"system": ucum, "code": "{score}"}}
    )
    new = copy.deepcopy(old)
    item(new, "worth-impact")["extension"][-1]["valueCoding"]["code"] = "%"
    change = classify(old, new)
    assert change.kind == "breaking"
    assert change.reasons[0].message.startswith(
        "item 'worth-impact': unit changed from {score} to %"
    )


def test_a_changed_weight_changes_scores(questionnaires):
    old = questionnaires["phq-9"]
    new = copy.deepcopy(old)
    scored = next(i for i in _walk(new["item"]) if i.get("answerOption"))
    coding = scored["answerOption"][1]["valueCoding"]
    for ext in coding.get("extension", []):
        if ext["url"] == ORDINAL_VALUE:
            ext["valueDecimal"] = 7
    change = classify(old, new)
    assert change.kind == "breaking"
    assert "weight" in change.reasons[0].message


# --- versions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("1.2.3", (1, 2, 3, ())),
        ("0.0.1-rc.2", (0, 0, 1, ("rc", 2))),
        ("10.0.0+build.7", (10, 0, 0, ())),
    ],
)
def test_parse_version(text, parsed):
    v = parse_version(text)
    assert v is not None
    assert (v.major, v.minor, v.patch, v.prerelease) == parsed


@pytest.mark.parametrize("text", ["1.0", "01.0.0", "v1.0.0", "", None, "1.0.0.0"])
def test_not_a_semantic_version(text):
    assert parse_version(text) is None


def test_semver_precedence():
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    order += ["1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"]
    parsed = [parse_version(v) for v in order]
    assert sorted(parsed) == parsed  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("old", "kind", "suggested"),
    [
        ("1.4.2", "compatible", "1.4.3"),
        ("1.4.2", "needs-new-version", "1.5.0"),
        ("1.4.2", "breaking", "2.0.0"),
        ("0.3.1", "breaking", "0.4.0"),
        ("0.3.1", "needs-new-version", "0.3.2"),
        ("2.0.0-rc.1", "breaking", "2.0.0-rc.2"),
        ("2.0.0-beta", "breaking", "2.0.0"),
    ],
)
def test_next_version(old, kind, suggested):
    v = parse_version(old)
    assert v is not None
    assert str(next_version(v, kind)) == suggested


def _versioned(q: dict[str, Any], old: str, new: str, mutate: Mutation) -> versioning.Change:
    a, b = copy.deepcopy(q), copy.deepcopy(q)
    a["version"], b["version"] = old, new
    mutate(b)
    return classify(a, b)


def _reword(q: dict[str, Any]) -> None:
    item(q, "when").update(text="When was it?")


def _drop(q: dict[str, Any]) -> None:
    remove(q, "when")


@pytest.mark.parametrize(
    ("old", "new", "mutate", "problem", "suggested"),
    [
        ("1.0.0", "1.0.0", lambda q: None, None, "1.0.0"),
        ("1.0.0", "1.0.1", lambda q: None, None, "1.0.0"),
        ("1.0.0", "1.0.0", _reword, "unchanged", "1.1.0"),
        ("1.0.0", "1.0.1", _reword, "too-small", "1.1.0"),
        ("1.0.0", "1.1.0", _reword, None, "1.1.0"),
        ("1.0.0", "2.0.0", _reword, None, "1.1.0"),
        ("1.0.0", "1.9.0", _drop, "too-small", "2.0.0"),
        ("1.0.0", "2.0.0", _drop, None, "2.0.0"),
        ("1.0.0", "2.0.0-rc.1", _drop, None, "2.0.0"),
        ("1.2.0", "1.1.9", lambda q: None, "backwards", "1.2.0"),
        ("1.2.0", "1.1.9", _drop, "backwards", "2.0.0"),
        ("0.4.0", "0.5.0", _drop, None, "0.5.0"),
        ("0.4.0", "0.4.1", _drop, "too-small", "0.5.0"),
        ("2.0.0-rc.1", "2.0.0-rc.2", _drop, None, "2.0.0-rc.2"),
        ("draft", "draft", _reword, "unchanged", "a new version"),
        ("draft", "1.0.0", _reword, "unreadable", "a new version"),
    ],
)
def test_version_rules(questionnaires, old, new, mutate, problem, suggested):
    change = _versioned(questionnaires["rejection-log"], old, new, mutate)
    assert change.problem == problem
    assert change.suggested_version == suggested


def test_only_the_reasons_a_small_bump_does_not_cover_are_reported(questionnaires):
    def both(q: dict[str, Any]) -> None:
        _reword(q)
        q.update(description="Also new.")
        remove(q, "kind-other")

    change = _versioned(questionnaires["rejection-log"], "1.0.0", "1.1.0", both)
    assert change.kind == "breaking"
    assert [r.link_id for r in change.reasons_needing_more()] == ["kind-other"]
    unchanged = _versioned(questionnaires["rejection-log"], "1.0.0", "1.0.0", both)
    assert len(unchanged.reasons_needing_more()) == len(unchanged.reasons) == 3


def test_malformed_content_from_a_server_is_compared_not_crashed_on(questionnaires):
    old = copy.deepcopy(questionnaires["rejection-log"])
    held = copy.deepcopy(old)
    broken = item(held, "kind")
    broken.update(answerOption=5, code="x", extension="y", item={"linkId": 3})
    held["item"].append("not an item")
    change = classify(held, old)
    assert change.kind == "needs-new-version"  # broken options read as none: ours are added
    assert {r.link_id for r in change.reasons} >= {"kind"}
