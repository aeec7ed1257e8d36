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


def _bands(*bands: tuple[int, str, str]) -> tuple[Band, ...]:
    return tuple(Band(Decimal(low), Interpretation(code, display)) for low, code, display in bands)


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
    # Kroenke et al. (2001): scores of 5, 10, 15 and 20 mark mild, moderate, moderately
    # severe and severe depression.
    bands=_bands(
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
    # Spitzer et al. (2006): cut-points 5, 10 and 15 for mild, moderate and severe anxiety.
    bands=_bands(
        (0, "minimal", "Minimal anxiety (0-4)"),
        (5, "mild", "Mild anxiety (5-9)"),
        (10, "moderate", "Moderate anxiety (10-14)"),
        (15, "severe", "Severe anxiety (15-21)"),
    ),
    source="cut-points: Spitzer et al. 2006; no published rule for unanswered items",
)

INSTRUMENTS: tuple[Instrument, ...] = (PHQ9, GAD7)

#: PHQ-9 item 9, "Thoughts that you would be better off dead or of hurting yourself".
PHQ9_ITEM9 = "44260-8"
PHQ9_ITEM9_LINK_ID = "phq9-9"
