"""The summary a clinician reads, with scores and safety answers folded in.

Every rendering (``summarize``, the sync's note, the report) goes through
:func:`clinical_summary`, so a safety answer is always the first thing shown and a score
always appears with its band, whatever the output format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rejection_fhir.response.answers import ResolvedResponse, resolve_response
from rejection_fhir.response.questionnaire import CompiledQuestionnaire
from rejection_fhir.response.summary import Line, Summarizers, Summary, summarize_resolved
from rejection_fhir.scoring.model import SafetyAlert, Score
from rejection_fhir.scoring.score import assess, score_and_alert
from rejection_fhir.scoring.tables import QuestionnaireTable, ValueSets, questionnaire_table


@dataclass(slots=True)
class ClinicalSummary:
    """Treat as read-only (not frozen: one is built per response, see scoring.model)."""

    summary: Summary
    scores: tuple[Score, ...]
    alerts: tuple[SafetyAlert, ...]
    #: The response as resolved for the summary: its answers (typed, displayed) for
    #: whatever else reads them (the Observations), without resolving it again.
    resolved: ResolvedResponse


def score_line(score: Score) -> Line:
    """A score as a clinician reads it: the number, "estimated" when prorated, its band,
    and a missing item 9 named whatever the outcome."""
    if score.value is None or not score.scorable:
        method = score.method
        text = method if method.startswith("not scorable") else "not scorable: " + method
        return Line(f"{score.instrument} score", (text,))
    value = score.value
    whole = int(value)  # a whole score (nearly all) without Decimal rounding
    text = str(whole) if whole == value else f"{value.normalize():f}"
    if score.prorated:
        missing = ", ".join(score.missing_link_ids)
        text += f" (estimated: prorated, {len(score.missing_link_ids)} unanswered: {missing})"
    if score.interpretation is not None:
        text += f" ({score.interpretation.display})"
    if score.item9_missing is not None:
        text += "; item 9 (self-harm) was not answered: ask about it directly"
    return Line(f"{score.instrument} score", (text,))


def clinical_summary(
    qr: Mapping[str, Any],
    questionnaire: Mapping[str, Any] | CompiledQuestionnaire | None,
    *,
    fallback: Mapping[str, Any] | CompiledQuestionnaire | None = None,
    summarizers: Summarizers | None = None,
    value_sets: ValueSets | None = None,
) -> ClinicalSummary:
    """The summary with scores and the item 9 rule folded in, alerts first.

    Without its Questionnaire (``None``) the response is read on its own signals, and
    ``fallback``, another version of the same Questionnaire when one is known, lends the
    items it defines (docs/instruments.md, "Safety").  ``summarizers`` give worksheets
    their own summaries, ``value_sets`` weights from ValueSets a Questionnaire does not
    contain (both: ``worksheet.catalog.Catalog``)."""
    # One walk of the response: the summary's records give the answers the scores and the
    # item 9 rule read (issue 14), unless a summarizer skipped the generic walk.
    resolved = resolve_response(qr, questionnaire)
    summary = summarize_resolved(resolved, summarizers)
    if questionnaire is None:
        if isinstance(fallback, CompiledQuestionnaire):
            fallback = fallback.source
        found = assess(qr, None, fallback=fallback, value_sets=value_sets)
    else:
        table = _table(questionnaire, value_sets)
        if not table.scored_link_ids and not table.phq9_signal:
            # Nothing to score and not a PHQ-9 on any sign of its Questionnaire (most
            # worksheets): what score_and_alert finds, without building it.
            return ClinicalSummary(summary, (), (), resolved)
        found = score_and_alert(qr, table, answers=resolved.recorded_answers(table.scored_link_ids))
    scores, alerts = tuple(found[0]), tuple(found[1])
    if scores or alerts:
        # A new Summary rather than dataclasses.replace, which costs several times more.
        summary = Summary(
            summary.title,
            summary.questionnaire,
            summary.authored,
            summary.subject,
            summary.status,
            tuple([a.message for a in alerts]) + summary.alerts,
            tuple([score_line(s) for s in scores]) + summary.highlights,
            summary.sections,
            scores + summary.scores,
            alerts + summary.alert_data,
        )
    return ClinicalSummary(summary, scores, alerts, resolved)


def _table(
    questionnaire: Mapping[str, Any] | CompiledQuestionnaire, value_sets: ValueSets | None
) -> QuestionnaireTable:
    """The scoring table, kept on the compiled Questionnaire like its resolver (unless it
    takes weights from ValueSets outside it, which another caller may give otherwise)."""
    if not isinstance(questionnaire, CompiledQuestionnaire):
        return questionnaire_table(questionnaire, value_sets)
    table = questionnaire.extras.get("scoring")
    if not isinstance(table, QuestionnaireTable):
        table = questionnaire_table(questionnaire.source, value_sets)
        if not table.external:
            questionnaire.extras["scoring"] = table
    return table
