"""What scoring hands back: scores and safety alerts, as small immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Interpretation:
    """A severity band: a code of the instrument's band CodeSystem (``system``, see
    :mod:`rejection_fhir.scoring.instruments`) and its display."""

    code: str
    display: str
    system: str | None = None


# Score and SafetyAlert: treat as read-only.  Not frozen, like response.summary.Line:
# a frozen dataclass sets each field through object.__setattr__, which made building the
# one or two of them each PHQ-9/GAD-7 response gets cost more than scoring it (issue 13).
@dataclass(slots=True)
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
    #: An estimate: unanswered items were filled in from the mean of the answered ones.
    prorated: bool = False
    #: Standard instruments: the LOINC code of the instrument's panel (e.g. 44249-1).
    panel_code: str | None = None
    #: The linkId of PHQ-9 item 9 when it was left unanswered (or unreadable), else None.
    item9_missing: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The score for programs: numbers as numbers, the band as a code, what is missing."""
        quantity = self.quantity()
        band = self.interpretation
        return {
            "instrument": self.instrument,
            "code": dict(self.code) if self.code else None,
            "panel": self.panel_code,
            "value": quantity["value"] if quantity is not None else None,
            "unit": "{score}",
            "scorable": self.scorable,
            "prorated": self.prorated,
            "band": (
                {"system": band.system, "code": band.code, "display": band.display}
                if band is not None
                else None
            ),
            "itemsAnswered": self.items_answered,
            "itemsMissing": list(self.missing_link_ids),
            "item9Missing": self.item9_missing,
            "method": self.method,
        }

    def quantity(self) -> dict[str, Any] | None:
        """The value as a FHIR Quantity in UCUM ``{score}``, or None when not scorable."""
        if self.value is None:
            return None
        number: int | float = (
            int(self.value) if self.value == self.value.to_integral_value() else float(self.value)
        )
        return {"value": number, "unit": "{score}", "system": UCUM, "code": "{score}"}


@dataclass(slots=True)
class SafetyAlert:
    """An answer that needs a clinician's attention.  Never carries free text."""

    #: Stable identifier of the rule, e.g. ``phq-9-item-9``; keys the Flag the sync writes.
    rule: str
    instrument: str
    #: The item's linkId; None when no item could be identified as the one to check.
    link_id: str | None
    #: The answer as read: a Coding (system, code, display from the instrument, not the
    #: client) or a value (``valueInteger``...); empty when there was none to show.
    answer: dict[str, Any]
    #: The answer's weight on the instrument's scale (1-3 for PHQ-9 item 9); None when
    #: the answer could not be read.
    weight: Decimal | None
    message: str
    severity: str = "high"
    #: ``phq9-item9-positive`` or ``phq9-item9-unreadable``.
    kind: str = "phq9-item9-positive"

    def as_json(self) -> dict[str, Any]:
        weight = self.weight
        return {
            "kind": self.kind,
            "rule": self.rule,
            "severity": self.severity,
            "instrument": self.instrument,
            "linkId": self.link_id,
            "answer": dict(self.answer) if self.answer else None,
            "weight": (
                None
                if weight is None
                else int(weight)
                if weight == weight.to_integral_value()
                else float(weight)
            ),
            "text": self.message,
        }
