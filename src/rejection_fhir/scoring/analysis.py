"""One analysis of a response, computed once and passed on (issue 14).

An :class:`Analysis` holds everything the sync and the ``summarize`` command read from a
QuestionnaireResponse: its conformance findings, its resolved answers, the clinician
summary, the scores and the safety alerts.  It is made by :func:`analyse`, once per
response; the note, the Observations and the Flag are planned from it, so the response is
resolved once (it used to be resolved again for the Observations).

It lives in ``scoring`` rather than ``response``: scores and safety alerts are scoring's,
and the generic engine (``response``) does not import the layer above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rejection_fhir.response.answers import ResolvedResponse
from rejection_fhir.response.conformance import (
    ResponseFinding,
    answer_findings,
    validate_response,
)
from rejection_fhir.response.questionnaire import CompiledQuestionnaire
from rejection_fhir.response.summary import Summarizers, Summary
from rejection_fhir.scoring.clinical import ClinicalSummary, clinical_summary
from rejection_fhir.scoring.model import SafetyAlert, Score
from rejection_fhir.scoring.tables import ValueSets


@dataclass(slots=True)
class Analysis:
    """Treat as read-only (not frozen: one is built per response, see scoring.model)."""

    response: Mapping[str, Any]
    #: The Questionnaire it was read against (None: not resolved).
    compiled: CompiledQuestionnaire | None
    #: Every conformance finding (:func:`validate_response`, or only the answer checks,
    #: :func:`answer_findings`, when asked for), in document order.
    findings: tuple[ResponseFinding, ...]
    clinical: ClinicalSummary

    @property
    def errors(self) -> tuple[ResponseFinding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def summary(self) -> Summary:
        return self.clinical.summary

    @property
    def scores(self) -> tuple[Score, ...]:
        return self.clinical.scores

    @property
    def alerts(self) -> tuple[SafetyAlert, ...]:
        return self.clinical.alerts

    @property
    def resolved(self) -> ResolvedResponse:
        return self.clinical.resolved


def analyse(
    qr: Mapping[str, Any],
    compiled: CompiledQuestionnaire | None,
    *,
    fallback: CompiledQuestionnaire | Mapping[str, Any] | None = None,
    summarizers: Summarizers | None = None,
    value_sets: ValueSets | None = None,
    answers_only: bool = False,
) -> Analysis:
    """Resolve, summarise, score, check safety and validate, once.

    ``fallback`` (another version of the same Questionnaire) lends its items to the scores
    and the item 9 rule when ``compiled`` is None (see :func:`clinical_summary`).
    ``answers_only``: the answer checks alone (what ``summarize`` warns about beside a
    summary; none without a Questionnaire), not the whole validation the sync needs.
    Raises :class:`~rejection_fhir.errors.InputError` when ``qr`` is not a
    QuestionnaireResponse (as :func:`clinical_summary` does)."""
    clinical = clinical_summary(
        qr,
        compiled,
        fallback=fallback if compiled is None else None,
        summarizers=summarizers,
        value_sets=value_sets,
    )
    if not answers_only:
        findings = tuple(validate_response(qr, compiled))
    elif compiled is not None:
        findings = tuple(answer_findings(qr, compiled))
    else:
        findings = ()
    return Analysis(qr, compiled, findings, clinical)
