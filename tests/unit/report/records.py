"""What the EHR holds after a sync, made by the sync's own code (not hand-written JSON).

:class:`Clinic` takes QuestionnaireResponses to the built worksheets and instruments and
runs them through the same steps as ``sync.prepare.Preparer.prepare``: clinical summary, Markdown
and XHTML note, extracted values, score Observations and safety Flags.  The report then
reads exactly the shapes the sync writes.  :func:`course_of_care` is a ten-week course
for one client, used by the unit, command and browser tests.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

from rejection_fhir.ehr.entries import ResponseVersion
from rejection_fhir.ehr.extract import observation_values
from rejection_fhir.ehr.flag import safety_entries
from rejection_fhir.ehr.note import Note, render_note
from rejection_fhir.ehr.observations import score_entries
from rejection_fhir.ehr.restrict import restrict_plan
from rejection_fhir.ehr.writeback import plan_writes
from rejection_fhir.response.answers import resolve_response
from rejection_fhir.response.questionnaire import QuestionnaireIndex
from rejection_fhir.response.render import render_markdown, render_xhtml
from rejection_fhir.scoring.clinical import clinical_summary
from rejection_fhir.worksheet.catalog import Catalog

SOURCE = "http://127.0.0.1:9999/fhir"
CANON = "https://rejection-fhir.org/fhir/Questionnaire"
CODES = "https://rejection-fhir.org/fhir/CodeSystem/coping-with-rejection"
LOINC = "http://loinc.org"
#: LOINC answer list LL358-3, indexed by weight.
FREQUENCY = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
KEPT = ("Observation", "DocumentReference", "Flag")

JsonDict = dict[str, Any]


def code(value: str, display: str | None = None) -> JsonDict:
    coding: JsonDict = {"system": CODES, "code": value}
    if display:
        coding["display"] = display
    return {"valueCoding": coding}


def answer(link_id: str, *values: JsonDict) -> JsonDict:
    return {"linkId": link_id, "answer": list(values)}


def text(link_id: str, value: str) -> JsonDict:
    return answer(link_id, {"valueString": value})


def integer(link_id: str, value: int) -> JsonDict:
    return answer(link_id, {"valueInteger": value})


def spread(total: int, items: int) -> list[int]:
    """Item weights (0-3 each) adding up to ``total``, as even as they come."""
    assert 0 <= total <= 3 * items
    return [total // items + (1 if i < total % items else 0) for i in range(items)]


class Clinic:
    """Responses in, the EHR's resources out (with server-assigned ids)."""

    def __init__(
        self,
        catalog: Catalog,
        patient: str = "p1",
        *,
        writable: tuple[str, ...] | None = None,
        note_types: tuple[str, ...] | None = None,
    ) -> None:
        #: What the EHR takes, as the sync's strategy says (None: everything), and the
        #: note's content types it takes (None: not stated): an EHR such as Epic.
        self.writable = writable
        self.note_types = note_types
        self.index = QuestionnaireIndex(catalog.questionnaires)
        self.catalog = catalog
        #: Worksheet name -> its url, whatever canonical base it was built with.
        self.urls = {q["url"].rsplit("/", 1)[1]: q["url"] for q in catalog.questionnaires}
        self.patient = patient
        self.ids = itertools.count(1)
        self.resources: list[JsonDict] = []

    def respond(self, name: str, authored: str, items: list[JsonDict]) -> list[JsonDict]:
        rid = f"qr-{next(self.ids)}"
        qr: JsonDict = {
            "resourceType": "QuestionnaireResponse",
            "id": rid,
            "meta": {"versionId": "1", "lastUpdated": authored},
            # The version as built: a worksheet's version moves with its content.
            "questionnaire": self.index.compiled(self.urls[name]).canonical,
            "status": "completed",
            "subject": {"reference": f"Patient/{self.patient}"},
            "author": {"reference": f"Patient/{self.patient}"},
            "authored": authored,
            "item": items,
        }
        compiled = self.index.for_response(qr)
        assert compiled is not None, name
        clinical = clinical_summary(qr, compiled, summarizers=self.catalog.summarizers)
        summary = clinical.summary
        ref = ResponseVersion(SOURCE, rid, "1")
        title = summary.title + f" ({authored[:10]})"
        note = Note(title, render_markdown(summary), render_xhtml(summary))
        if self.note_types is not None:
            note = render_note(summary, self.note_types)
        plan = plan_writes(
            qr,
            ref,
            note,
            observation_values(resolve_response(qr, compiled)),
            recorded="2026-12-01T00:00:00Z",
            extra=[
                *score_entries(qr, ref, clinical.scores),
                *safety_entries(qr, ref, clinical.alerts),
            ],
        )
        if self.writable is not None:
            plan, _ = restrict_plan(plan, self.writable)
        made = []
        for entry in plan.entries:
            resource = copy.deepcopy(entry["resource"])
            if resource["resourceType"] not in KEPT:
                continue
            resource["id"] = f"{resource['resourceType'][:3].lower()}-{next(self.ids)}"
            resource["meta"] = {"versionId": "1", "lastUpdated": authored}
            made.append(resource)
        self.resources.extend(made)
        return made

    # -- instruments and worksheets ---------------------------------------------------

    def phq9(self, authored: str, total: int, *, item9: int = 0) -> list[JsonDict]:
        return self._instrument("phq-9", "phq9", authored, [*spread(total - item9, 8), item9])

    def gad7(self, authored: str, total: int) -> list[JsonDict]:
        return self._instrument("gad-7", "gad7", authored, spread(total, 7))

    def _instrument(
        self, name: str, prefix: str, authored: str, weights: list[int]
    ) -> list[JsonDict]:
        items = [
            answer(f"{prefix}-{i}", {"valueCoding": {"system": LOINC, "code": FREQUENCY[w]}})
            for i, w in enumerate(weights, start=1)
        ]
        return self.respond(name, authored, items)

    def rejection_log(
        self, authored: str, what: str, worth: int, emotions: Sequence[tuple[str, int]]
    ) -> list[JsonDict]:
        groups = [
            {
                "linkId": "emotion",
                "item": [
                    answer("emotion.name", code(name, name.capitalize())),
                    integer("emotion.intensity", intensity),
                ],
            }
            for name, intensity in emotions
        ]
        items = [
            text("what-happened", what),
            answer("kind", code("social", "Social")),
            *groups,
            answer("reactions", code("rumination"), code("low-mood")),
            integer("worth-impact", worth),
        ]
        return self.respond("rejection-log", authored, items)

    def core_beliefs(
        self, authored: str, before: int, after: int, alternative: str
    ) -> list[JsonDict]:
        items = [
            text("situation", "Not asked to the wedding"),
            answer("belief", code("never-good-enough", "I'll never be good enough")),
            integer("strength-before", before),
            answer("evidence-for", {"valueString": "They did not call"}),
            answer("evidence-against", {"valueString": "Two friends checked in this week"}),
            answer("alternative", {"valueString": alternative}),
            integer("strength-after", after),
        ]
        return self.respond("core-beliefs", authored, items)

    def reframe(self, authored: str, hopefulness: int) -> list[JsonDict]:
        items = [
            text("situation", "Turned down for the team lead role"),
            answer("learned", {"valueString": "I want more say in planning"}),
            answer("possible-now", {"valueString": "Ask for a mentor"}),
            integer("hopefulness", hopefulness),
        ]
        return self.respond("reframe-redirection", authored, items)

    def self_compassion(self, authored: str, kindness: int) -> list[JsonDict]:
        items = [
            text("situation", "Friend cancelled again"),
            answer("friend", {"valueString": "It is not your fault, you matter"}),
            answer("practice", code("journaling", "Journaling")),
            answer("frequency", code("daily", "Every day")),
            integer("self-kindness", kindness),
        ]
        return self.respond("self-compassion", authored, items)


def course_of_care(catalog: Catalog, patient: str = "p1") -> Clinic:
    """Ten weeks of one client's work: scores falling, PHQ-9 item 9 answered in week 5."""
    clinic = Clinic(catalog, patient)
    start = dt.datetime(2026, 9, 7, 9, 10, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    for fortnight, (phq, gad) in enumerate(
        [(18, 15), (16, 14), (14, 11), (13, 10), (11, 8), (9, 6)]
    ):
        when = start + dt.timedelta(days=14 * fortnight, minutes=fortnight)
        clinic.phq9(when.isoformat(), phq, item9=1 if fortnight == 2 else 0)
        clinic.gad7((when + dt.timedelta(minutes=20)).isoformat(), gad)
    clinic.rejection_log(
        "2026-09-14T18:02:00+01:00",
        "Friends planned a trip & didn't invite me.",
        8,
        [("hurt", 9), ("shame", 7)],
    )
    clinic.rejection_log(
        "2026-10-12T20:45:00+01:00",
        "My sister did not reply to my birthday message.",
        6,
        [("hurt", 7), ("sadness", 6)],
    )
    clinic.rejection_log(
        "2026-11-09T19:30:00+00:00",
        "Left out of the group chat again.",
        4,
        [("hurt", 5), ("shame", 3)],
    )
    clinic.core_beliefs("2026-09-28T17:00:00+01:00", 85, 60, "I was left out once, not always")
    clinic.core_beliefs("2026-10-26T17:00:00+00:00", 70, 45, "Some people do want me around")
    clinic.reframe("2026-10-05T12:00:00+01:00", 3)
    clinic.reframe("2026-11-02T12:00:00+00:00", 6)
    clinic.self_compassion("2026-10-19T21:00:00+01:00", 4)
    clinic.self_compassion("2026-11-16T21:00:00+00:00", 7)
    return clinic


def survey_observation(
    code: JsonDict, value: int, when: str = "2026-11-01T10:00:00Z", **extra: Any
) -> JsonDict:
    """A trended-answer Observation as the sync writes it, for one patient (p1)."""
    return {
        "resourceType": "Observation",
        "id": f"o-{code['code']}-{when}-{value}",
        "identifier": [{"system": "https://rejection-fhir.org/fhir/sid/derived", "value": when}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [code], "text": extra.pop("text", code.get("display", ""))},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "valueInteger": value,
        **extra,
    }


def of_type(resources: Sequence[JsonDict], resource_type: str) -> list[JsonDict]:
    return [r for r in resources if r["resourceType"] == resource_type]
