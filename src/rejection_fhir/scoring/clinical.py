"""The summary a clinician reads, with scores and safety answers folded in.

Every rendering (``summarize``, the sync's note, the report) goes through
:func:`clinical_summary`, so a safety answer is always the first thing shown and a score
always appears with its band, whatever the output format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rejection_fhir.response.questionnaire import CompiledQuestionnaire
from rejection_fhir.response.summary import Line, Summary, summarize
from rejection_fhir.scoring.model import SafetyAlert, Score
from rejection_fhir.scoring.score import safety_alerts, score_response


@dataclass(frozen=True)
class ClinicalSummary:
    summary: Summary
    scores: tuple[Score, ...]
    alerts: tuple[SafetyAlert, ...]


def score_line(score: Score) -> Line:
    if score.value is None or not score.scorable:
        return Line(f"{score.instrument} score", ("not scorable: " + score.method,))
    number = score.value.normalize()
    text = f"{number:f}"
    if score.interpretation is not None:
        text += f" ({score.interpretation.display})"
    return Line(f"{score.instrument} score", (text,))


def clinical_summary(
    qr: Mapping[str, Any], questionnaire: Mapping[str, Any] | CompiledQuestionnaire | None
) -> ClinicalSummary:
    source = (
        questionnaire.source if isinstance(questionnaire, CompiledQuestionnaire) else questionnaire
    )
    summary = summarize(qr, questionnaire)
    scores = tuple(score_response(qr, source)) if source is not None else ()
    alerts = tuple(safety_alerts(qr, source))
    if scores or alerts:
        summary = replace(
            summary,
            alerts=tuple(a.message for a in alerts) + summary.alerts,
            highlights=tuple(score_line(s) for s in scores) + summary.highlights,
        )
    return ClinicalSummary(summary, scores, alerts)
