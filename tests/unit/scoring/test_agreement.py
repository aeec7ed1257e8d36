"""The Python scorer and the Questionnaires' FHIRPath must give the same total, always.

Many seeded random responses, shaped the way real ones go wrong: items skipped, an item
sent with no answer, a code from nowhere, a LOINC code without its system, items out of
order, and the form's own stale total sent back.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from rejection_fhir.scoring import GAD7, PHQ9, score_response
from tests.unit.scoring.conftest import FREQUENCY, LOINC, fhirpath_total

SEED = 20261126
RESPONSES = 150


def random_response(rng: random.Random, prefix: str, count: int) -> tuple[dict, int, int]:
    """A response plus (sum of valid weights, number of valid answers), kept by hand.

    How many items go wrong is drawn first, so that complete, prorated and unscorable
    responses all turn up often; then which items, and how each goes wrong.
    """
    broken = set(rng.sample(range(1, count + 1), rng.choice([0, 0, 1, 1, 2, 2, 3, 4, count])))
    items = []
    total = answered = 0
    for i in range(1, count + 1):
        link_id = f"{prefix}-{i}"
        if i in broken:
            how = rng.randrange(4)
            if how == 0:
                continue  # skipped: no item at all
            if how == 1:
                items.append({"linkId": link_id})  # present, no answer
            elif how == 2:
                code = {"system": LOINC, "code": "LA0000-0"}  # a code from nowhere
                items.append({"linkId": link_id, "answer": [{"valueCoding": code}]})
            else:
                code = {"code": rng.choice(FREQUENCY)}  # a LOINC code without its system
                items.append({"linkId": link_id, "answer": [{"valueCoding": code}]})
            continue
        weight = rng.randrange(4)
        total += weight
        answered += 1
        coding = {"system": LOINC, "code": FREQUENCY[weight]}
        if rng.random() < 0.5:
            coding["display"] = ["Not at all", "Several days", "More than half", "Nearly"][weight]
        items.append({"linkId": link_id, "answer": [{"valueCoding": coding}]})
    rng.shuffle(items)
    if rng.random() < 0.3:
        items.append({"linkId": f"{prefix}-total", "answer": [{"valueDecimal": 42}]})
    qr = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": items}
    return qr, total, answered


@pytest.mark.parametrize(
    ("key", "instrument", "prefix"), [("phq-9", PHQ9, "phq9"), ("gad-7", GAD7, "gad7")]
)
def test_python_and_fhirpath_agree_on_many_random_responses(built, key, instrument, prefix):
    q = next(q for q in built.questionnaires if q["id"] == key)
    rng = random.Random(f"{SEED}-{key}")
    count = len(instrument.items)
    outcomes = {"complete": 0, "prorated": 0, "not scorable": 0}
    for _ in range(RESPONSES):
        qr, raw, answered = random_response(rng, prefix, count)
        (score,) = score_response(qr, q)
        live = fhirpath_total(q, qr)
        assert score.value == live, (qr, score, live)
        assert score.items_answered == answered
        if answered == count:
            outcomes["complete"] += 1
            assert score.value == raw
        elif count - answered <= instrument.max_prorated:
            outcomes["prorated"] += 1
            # Rounded to a whole number, halves up (docs/instruments.md).
            assert abs(score.value - Decimal(raw) * count / answered) <= Decimal("0.5")
            assert score.value == score.value.to_integral_value()
        else:
            outcomes["not scorable"] += 1
            assert score.value is None
    # The generator must exercise every branch, or agreement proves little.
    assert outcomes["complete"] >= 20 and outcomes["not scorable"] >= 20
    if instrument.max_prorated:
        assert outcomes["prorated"] >= 30
