"""The summary a clinician reads, with scores and safety answers folded in.

Every rendering (``summarize``, the sync's note, the report) goes through
:func:`clinical_summary`, so a safety answer is always the first thing shown and a score
always appears with its band, whatever the output format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rejection_fhir.response.questionnaire import CompiledQuestionnaire
from rejection_fhir.response.summary import Line, Summary, summarize
from rejection_fhir.scoring.model import SafetyAlert, Score
from rejection_fhir.scoring.score import safety_alerts, score_and_alert
from rejection_fhir.scoring.tables import QuestionnaireTable, questionnaire_table


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
    summary = summarize(qr, questionnaire)
    if questionnaire is None:
        scores: tuple[Score, ...] = ()
        alerts = tuple(safety_alerts(qr, None))
    else:
        found = score_and_alert(qr, _table(questionnaire))
        scores, alerts = tuple(found[0]), tuple(found[1])
    if scores or alerts:
        # A new Summary rather than dataclasses.replace, which costs several times more.
        summary = Summary(
            summary.title,
            summary.questionnaire,
            summary.authored,
            summary.subject,
            summary.status,
            tuple(a.message for a in alerts) + summary.alerts,
            tuple(score_line(s) for s in scores) + summary.highlights,
            summary.sections,
        )
    return ClinicalSummary(summary, scores, alerts)


def _table(questionnaire: Mapping[str, Any] | CompiledQuestionnaire) -> QuestionnaireTable:
    """The scoring table, kept on the compiled Questionnaire like its resolver."""
    if not isinstance(questionnaire, CompiledQuestionnaire):
        return questionnaire_table(questionnaire)
    table = questionnaire.extras.get("scoring")
    if not isinstance(table, QuestionnaireTable):
        table = questionnaire.extras["scoring"] = questionnaire_table(questionnaire.source)
    return table
