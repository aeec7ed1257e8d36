"""The item 9 rule holds on PHQ-9s of every shape, in every output and in the sync's Flags.

Hypothesis draws responses from tests/unit/scoring/safety_cases.py: codings with and
without their system, by display only, an EHR's own codes with weights on the response's
Coding, integers, decimals, strings; our linkIds, LOINC linkIds, paths such as
``/44249-1/44260-8``, foreign linkIds known only by their wording; our Questionnaire, none,
an unknown version of ours, another EHR's with item codes or with wording only; items left
unanswered (prorated or not scorable).  A positive item 9 must alert, and an unreadable or
missing one must warn, first, in 100% of them; item 9 = 0 must stay quiet.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.scoring.safety_cases import make_case, outcomes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_item9_alerts_or_warns_first_in_every_output(built, seed):
    phq9 = next(q for q in built.questionnaires if q["id"] == "phq-9")
    case = make_case(random.Random(seed), phq9)
    result = outcomes(case)
    failed = [output for output, ok in result.items() if not ok]
    assert not failed, (failed, case.variant, case.qr)
