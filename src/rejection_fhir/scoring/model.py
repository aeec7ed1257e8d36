"""What scoring hands back: scores and safety alerts, as small immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Interpretation:
    """A severity band.  ``system`` is None: the bands are the instruments' own words, not
    codes from a published terminology."""

    code: str
    display: str
    system: str | None = None


@dataclass(frozen=True)
class Score:
    #: Short instrument name (``PHQ-9``), or the Questionnaire's title for a generic score.
    instrument: str
    #: The score's code (LOINC total-score code for standard instruments), or None.
    code: dict[str, str] | None
    #: None when the response is not scorable.
    value: Decimal | None
    interpretation: Interpretation | None
    items_answered: int
    items_missing: int
    scorable: bool
    #: How the value was reached, in words a clinician can check (rule and source).
    method: str
    #: linkIds of the scored items left unanswered, in Questionnaire order.
    missing_link_ids: tuple[str, ...] = field(default=())

    def quantity(self) -> dict[str, Any] | None:
        """The value as a FHIR Quantity in UCUM ``{score}``, or None when not scorable."""
        if self.value is None:
            return None
        number: int | float = (
            int(self.value) if self.value == self.value.to_integral_value() else float(self.value)
        )
        return {"value": number, "unit": "{score}", "system": UCUM, "code": "{score}"}


@dataclass(frozen=True)
class SafetyAlert:
    """An answer that needs a clinician's attention.  Never carries free text."""

    #: Stable identifier of the rule, e.g. ``phq-9-item-9``.
    rule: str
    instrument: str
    link_id: str
    #: The answer's coding (system, code, display from the instrument, not the client).
    answer: dict[str, str]
    #: The answer's weight on the instrument's scale (1-3 for PHQ-9 item 9).
    weight: Decimal
    message: str
    severity: str = "high"
