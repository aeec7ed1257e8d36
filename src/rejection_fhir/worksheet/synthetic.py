"""Synthetic QuestionnaireResponses for demos, tests and benchmarks: realistic, valid, seeded.

For any Questionnaire, a response that a careful client could have entered: required items
answered, enableWhen honoured, options picked from the answerOption list, numbers within
min/max, repeating groups filled one to three times.  Free text comes from phrase banks
written for the project's worksheets (never from real clients), or a neutral fallback.
The same seed always gives the same responses.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.worksheet.build import MAX_VALUE, MIN_VALUE

PHRASES: dict[str, tuple[str, ...]] = {
    "what-happened": (
        "My partner ended things over text after two years.",
        "I wasn't invited to a colleague's leaving drinks that the whole team went to.",
        "I was turned down for the promotion I had worked towards all year.",
        "My sister didn't reply when I told her my news.",
        "A friend cancelled our plans for the third time this month.",
    ),
    "kind-other": ("Rejected by my running club's committee",),
    "emotion.other": ("Left out", "Numb"),
    "feeling.other": ("Betrayed", "Restless"),
    "body-other": ("Jaw",),
    "what-mattered": (
        "Feeling that I belong with them.",
        "Being seen for the work I put in.",
        "Trust.",
    ),
    "kind-sentence": (
        "It makes sense that I feel hurt, because this friendship matters to me.",
        "Of course this stings; I cared.",
    ),
    "situation": ("Not getting the job.", "Being left out of the trip.", "The breakup."),
    "values-aligned": (
        "Partly. I wanted the title more than the work itself.",
        "Not really; the team's values weren't mine.",
    ),
    "guiding-toward": (
        "Maybe towards a role where I can teach.",
        "Towards friends who make time for me.",
    ),
    "learned": (
        "That I keep going even when it hurts.",
        "That I need to ask for feedback earlier.",
    ),
    "possible-now": (
        "Applying for the mentoring programme.",
        "Spending more time with people who show up.",
    ),
    "friend": (
        "You are worth so much more than this one 'no'.",
        "Anyone would be lucky to have you as a friend.",
    ),
    "self-talk": (
        "I'm allowed to be sad. This doesn't decide my worth.",
        "Dear me, you did your best and that is enough.",
    ),
    "practice-other": ("Walking without my phone",),
    "belief-other": ("Nobody ever chooses me",),
    "echoes": ("Being picked last at school.", "My dad never coming to my games."),
    "evidence-for": ("They didn't invite me.", "I was turned down again."),
    "evidence-against": (
        "Two friends called this week.",
        "My manager asked me to lead the next project.",
    ),
    "alternative": (
        "Sometimes I'm left out, and I'm often included too.",
        "One rejection says more about fit than about me.",
    ),
    "values": ("Honesty, kindness and creative work.", "Family, learning and being outdoors."),
    "fit.relationships": ("People who reply and make plans with me.",),
    "fit.work": ("A team that gives feedback openly.",),
    "fit.goals": ("Finish my certificate by summer.",),
    "insights": (
        "I can say no to people who keep cancelling.",
        "I deserve feedback, and can ask for it.",
    ),
    "next-step.action": ("Call Sam and suggest a walk.", "Ask my manager for a development plan."),
}


def _extension(item: Mapping[str, Any], url: str) -> Any:
    for ext in item.get("extension", []) or []:
        if ext.get("url") == url:
            return next((v for k, v in ext.items() if k.startswith("value")), None)
    return None


def _enabled(item: Mapping[str, Any], answers: Mapping[str, list[JsonDict]]) -> bool:
    conditions = item.get("enableWhen") or []
    if not conditions:
        return True
    results = []
    for condition in conditions:
        given = answers.get(condition["question"], [])
        if condition["operator"] == "exists":
            results.append(bool(given) == condition.get("answerBoolean"))
            continue
        expected = next((v for k, v in condition.items() if k.startswith("answer")), None)
        values = [next(iter(a.values())) for a in given]
        if isinstance(expected, Mapping):
            hit = any(
                isinstance(v, Mapping) and v.get("code") == expected.get("code") for v in values
            )
        else:
            hit = expected in values
        results.append(
            hit
            if condition["operator"] == "="
            else not hit
            if condition["operator"] == "!="
            else True
        )
    return all(results) if item.get("enableBehavior", "all") == "all" else any(results)


class ResponseFactory:
    def __init__(self, seed: int = 0, *, start: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.start = start or datetime(2026, 9, 1, 9, 0, tzinfo=UTC)

    def _answer(self, item: Mapping[str, Any]) -> list[JsonDict]:
        rng = self.rng
        item_type = item["type"]
        link_id = item["linkId"]
        if item_type in {"choice", "open-choice"}:
            options = [o["valueCoding"] for o in item.get("answerOption", []) if "valueCoding" in o]
            if not options:
                return []
            # "other" is picked now and then, so the specify paths get exercised too.
            weights = [0.3 if o.get("code") == "other" else 1.0 for o in options]
            count = rng.randint(1, min(3, len(options))) if item.get("repeats") else 1
            picked: list[JsonDict] = []
            while len(picked) < count:
                choice = rng.choices(options, weights)[0]
                if choice not in picked:
                    picked.append(choice)
            return [
                {"valueCoding": {k: v for k, v in c.items() if k != "extension"}} for c in picked
            ]
        if item_type in {"integer", "decimal"}:
            low = _extension(item, MIN_VALUE)
            high = _extension(item, MAX_VALUE)
            low = 0 if low is None else low
            high = 10 if high is None else high
            step = 5 if high - low >= 50 else 1
            value = rng.randrange(int(low), int(high) + 1, step)
            return [
                {"valueInteger": value}
                if item_type == "integer"
                else {"valueDecimal": float(value)}
            ]
        if item_type in {"string", "text"}:
            bank = PHRASES.get(link_id) or (
                "I'd rather talk about this in session.",
                "Still thinking about it.",
            )
            text = rng.choice(bank)
            limit = item.get("maxLength")
            return [{"valueString": text[:limit] if isinstance(limit, int) else text}]
        if item_type == "date":
            return [
                {
                    "valueDate": (
                        self.start.date() + timedelta(days=rng.randint(-20, 30))
                    ).isoformat()
                }
            ]
        if item_type == "dateTime":
            return [{"valueDateTime": self.start.isoformat()}]
        if item_type == "boolean":
            return [{"valueBoolean": rng.random() < 0.5}]
        return []

    def _items(
        self, items: Sequence[Mapping[str, Any]], answers: dict[str, list[JsonDict]]
    ) -> list[JsonDict]:
        out: list[JsonDict] = []
        for item in items:
            if item.get("readOnly") or item["type"] == "display" or not _enabled(item, answers):
                continue
            if item["type"] == "group":
                repeats = self.rng.randint(1, 3) if item.get("repeats") else 1
                for _ in range(repeats):
                    scope = dict(answers)  # enableWhen inside a repeat looks at its own siblings
                    children = self._items(item.get("item", []), scope)
                    if children:
                        out.append({"linkId": item["linkId"], "item": children})
                continue
            if not item.get("required") and self.rng.random() < 0.15:
                continue  # clients skip optional questions sometimes
            given = self._answer(item)
            if not given:
                continue
            answers[item["linkId"]] = given
            entry: JsonDict = {"linkId": item["linkId"], "answer": given}
            children = [c for c in item.get("item", []) if c.get("type") != "display"]
            if children:
                nested = self._items(children, answers)
                if nested:
                    entry["answer"][0]["item"] = nested
            out.append(entry)
        return out

    def response(
        self,
        questionnaire: Mapping[str, Any],
        *,
        subject: str,
        authored: datetime | None = None,
        response_id: str | None = None,
    ) -> JsonDict:
        when = authored or self.start + timedelta(hours=self.rng.randint(0, 24 * 60))
        qr: JsonDict = {"resourceType": "QuestionnaireResponse"}
        if response_id is not None:
            qr["id"] = response_id
        qr.update(
            {
                "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
                "status": "completed",
                "subject": {"reference": subject},
                "authored": when.isoformat(timespec="seconds"),
                "author": {"reference": subject},
                "item": self._items(questionnaire.get("item", []), {}),
            }
        )
        return qr

    def many(
        self, questionnaires: Sequence[Mapping[str, Any]], subjects: Sequence[str], count: int
    ) -> Iterator[JsonDict]:
        for i in range(count):
            yield self.response(
                questionnaires[i % len(questionnaires)], subject=subjects[i % len(subjects)]
            )


def patient(identifier: str, *, family: str = "Example", given: str = "Sam") -> JsonDict:
    """A synthetic Patient for demos and tests, identified so it can be found again."""
    return {
        "resourceType": "Patient",
        "identifier": [
            {"system": "https://rejection-fhir.org/fhir/sid/synthetic-patient", "value": identifier}
        ],
        "name": [{"family": family, "given": [given]}],
        "meta": {
            "tag": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": "HTEST",
                    "display": "test health data",
                }
            ]
        },
    }


def encounter(subject: str, start: datetime) -> JsonDict:
    """A finished ambulatory visit for *subject*: EHRs that file notes against a visit need one."""
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory",
        },
        "subject": {"reference": subject},
        "period": {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
        "meta": {
            "tag": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": "HTEST",
                    "display": "test health data",
                }
            ]
        },
    }
