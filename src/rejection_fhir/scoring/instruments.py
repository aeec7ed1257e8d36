"""Standard instruments the scorer recognises by their LOINC item and answer codes.

Each definition states only what the cited sources say; docs/instruments.md lists the
sources and the licence of each instrument.  The same rules are written a second time as
FHIRPath in questionnaires/<name>.yaml (``calculated:``) so that forms show live totals;
tests/unit/scoring checks that both give the same number on many generated responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rejection_fhir.scoring.model import Interpretation

LOINC = "http://loinc.org"

#: LOINC answer list LL358-3 (PHQ frequency): code → (display, weight 0-3).
FREQUENCY_LL358_3: dict[str, tuple[str, int]] = {
    "LA6568-5": ("Not at all", 0),
    "LA6569-3": ("Several days", 1),
    "LA6570-1": ("More than half the days", 2),
    "LA6571-9": ("Nearly every day", 3),
}


@dataclass(frozen=True)
class Band:
    """Scores from ``low`` (inclusive) up to the next band's ``low`` fall in this band."""

    low: Decimal
    interpretation: Interpretation


@dataclass(frozen=True)
class Instrument:
    key: str
    name: str
    panel: dict[str, str]
    total: dict[str, str]
    #: LOINC codes of the scored items, in the instrument's order.
    items: tuple[str, ...]
    #: Our own linkIds for the same items (questionnaires/<key>.yaml), same order.
    link_ids: tuple[str, ...]
    #: (system, code) of each answer → weight.
    answers: dict[tuple[str, str], int]
    answer_displays: dict[tuple[str, str], str]
    max_weight: int
    #: Up to this many unanswered items are prorated from the mean of the answered ones.
    max_prorated: int
    #: Decimal places of a prorated total: 0 gives a whole number, like a complete total.
    prorated_places: int
    bands: tuple[Band, ...]
    #: The rule in words, with its source, for Score.method.
    source: str

    def interpret(self, value: Decimal) -> Interpretation:
        chosen = self.bands[0].interpretation
        for band in self.bands:
            if value >= band.low:
                chosen = band.interpretation
        return chosen


def _frequency() -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], str]]:
    weights = {(LOINC, code): weight for code, (_, weight) in FREQUENCY_LL358_3.items()}
    displays = {(LOINC, code): display for code, (display, _) in FREQUENCY_LL358_3.items()}
    return weights, displays


#: The severity bands' CodeSystems.  No published terminology codes a PHQ-9 or GAD-7
#: screening band: LOINC has the total score (44261-6, 70274-6) but no answer list for its
#: bands, HL7's ObservationInterpretation codes mean high/low/abnormal, and SNOMED CT's
#: "Moderate depression" and the like are diagnoses, which a screening score is not.  So
#: the bands are the project's own codes, one CodeSystem per instrument (a "moderate" PHQ-9
#: and a "moderate" GAD-7 are different concepts), under the project's fixed namespace
#: (the same as its identifier systems, rejection_fhir.ehr.writeback.DERIVED_SYSTEM), with
#: the cut-points and wording of the cited sources.
BAND_SYSTEM_BASE = "https://rejection-fhir.org/fhir/CodeSystem/"


def _bands(key: str, *bands: tuple[int, str, str]) -> tuple[Band, ...]:
    system = f"{BAND_SYSTEM_BASE}{key}-severity"
    return tuple(
        Band(Decimal(low), Interpretation(code, display, system)) for low, code, display in bands
    )


_WEIGHTS, _DISPLAYS = _frequency()

PHQ9 = Instrument(
    key="phq-9",
    name="PHQ-9",
    panel={
        "system": LOINC,
        "code": "44249-1",
        "display": "PHQ-9 quick depression assessment panel",
    },
    total={
        "system": LOINC,
        "code": "44261-6",
        "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    },
    items=(
        "44250-9",
        "44255-8",
        "44259-0",
        "44254-1",
        "44251-7",
        "44258-2",
        "44252-5",
        "44253-3",
        "44260-8",
    ),
    link_ids=tuple(f"phq9-{i}" for i in range(1, 10)),
    answers=_WEIGHTS,
    answer_displays=_DISPLAYS,
    max_weight=3,
    max_prorated=2,
    # PHQ-9 totals are whole numbers 0-27 and the bands are drawn on them (Kroenke et al.
    # 2001): an estimate is rounded to the nearest whole number, halves up, so it falls in
    # a band the source defines.
    prorated_places=0,
    # Kroenke et al. (2001): scores of 5, 10, 15 and 20 mark mild, moderate, moderately
    # severe and severe depression.
    bands=_bands(
        "phq-9",
        (0, "minimal", "Minimal depression (0-4)"),
        (5, "mild", "Mild depression (5-9)"),
        (10, "moderate", "Moderate depression (10-14)"),
        (15, "moderately-severe", "Moderately severe depression (15-19)"),
        (20, "severe", "Severe depression (20-27)"),
    ),
    source="bands: Kroenke et al. 2001; up to 2 unanswered items prorated: Arrieta et al. 2017",
)

GAD7 = Instrument(
    key="gad-7",
    name="GAD-7",
    panel={
        "system": LOINC,
        "code": "69737-5",
        "display": "Generalized anxiety disorder 7 item (GAD-7)",
    },
    total={
        "system": LOINC,
        "code": "70274-6",
        "display": "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
    },
    items=("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"),
    link_ids=tuple(f"gad7-{i}" for i in range(1, 8)),
    answers=_WEIGHTS,
    answer_displays=_DISPLAYS,
    max_weight=3,
    max_prorated=0,
    prorated_places=0,
    # Spitzer et al. (2006): cut-points 5, 10 and 15 for mild, moderate and severe anxiety.
    bands=_bands(
        "gad-7",
        (0, "minimal", "Minimal anxiety (0-4)"),
        (5, "mild", "Mild anxiety (5-9)"),
        (10, "moderate", "Moderate anxiety (10-14)"),
        (15, "severe", "Severe anxiety (15-21)"),
    ),
    source="cut-points: Spitzer et al. 2006; no published rule for unanswered items",
)

INSTRUMENTS: tuple[Instrument, ...] = (PHQ9, GAD7)

# ---------------------------------------------------------------------- PHQ-9 item 9
# The one home of what identifies PHQ-9 and its item 9 (self-harm): rejection_fhir.scoring
# (tables, safety) and the sync's writes read these and nothing else.

#: PHQ-9 item 9, "Thoughts that you would be better off dead, or of hurting yourself in
#: some way" (LOINC 44260-8), and our own linkId for it (questionnaires/phq-9.yaml).
PHQ9_ITEM9 = PHQ9.items[8]
PHQ9_ITEM9_LINK_ID = PHQ9.link_ids[8]
#: The PHQ-9 panel code and its item codes: any of them in a Questionnaire's codes, a
#: linkId or a path segment (``/44249-1/44260-8``) marks a PHQ-9.
PHQ9_CODES: frozenset[str] = frozenset((PHQ9.panel["code"], *PHQ9.items))
GAD7_CODES: frozenset[str] = frozenset((GAD7.panel["code"], *GAD7.items))

#: The nine items' wording as in the Pfizer form (US Core phq-9-example), normalised by
#: :func:`normalise_text`: lower case, every run of non-letters one space.  An item whose
#: normalised text contains one of an item's fragments is that item.  Item 9 has two
#: fragments because forms shorten it either way.
PHQ9_TEXTS: tuple[tuple[str, ...], ...] = (
    ("little interest or pleasure in doing things",),
    ("feeling down depressed or hopeless",),
    ("trouble falling or staying asleep",),
    ("feeling tired or having little energy",),
    ("poor appetite or overeating",),
    ("feeling bad about yourself",),
    ("trouble concentrating on things",),
    ("moving or speaking so slowly",),
    ("better off dead", "hurting yourself in some way"),
)
GAD7_TEXTS: tuple[tuple[str, ...], ...] = (
    ("feeling nervous anxious or on edge",),
    ("not being able to stop or control worrying",),
    ("worrying too much about different things",),
    ("trouble relaxing",),
    ("being so restless that it is hard to sit still",),
    ("becoming easily annoyed or irritable",),
    ("feeling afraid as if something awful might happen",),
)

#: LL358-3 displays, normalised, → weight: "Nearly every day" read from a display or a
#: text answer.
FREQUENCY_BY_DISPLAY: dict[str, int] = {
    " ".join(display.lower().split()): weight for display, weight in FREQUENCY_LL358_3.values()
}


def normalise_text(text: str) -> str:
    """Lower case, letters and digits only, single spaces: how item texts are compared."""
    out = []
    word = False
    for char in text.lower():
        if char.isalnum():
            out.append(char)
            word = True
        elif word:
            out.append(" ")
            word = False
    return "".join(out).strip()


def phq9_item_by_text(text: str) -> int | None:
    """The PHQ-9 item number (1-9) whose wording ``text`` carries, or None."""
    normal = normalise_text(text)
    for number, fragments in enumerate(PHQ9_TEXTS, start=1):
        for fragment in fragments:
            if fragment in normal:
                return number
    return None


def gad7_item_by_text(text: str) -> int | None:
    normal = normalise_text(text)
    for number, fragments in enumerate(GAD7_TEXTS, start=1):
        for fragment in fragments:
            if fragment in normal:
                return number
    return None
