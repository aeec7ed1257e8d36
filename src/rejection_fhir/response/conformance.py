"""Check a QuestionnaireResponse against its Questionnaire, as the HL7 FHIR validator does.

:func:`validate_response` never raises on bad input: a response that is not even a JSON
object comes back as a finding.  Findings name linkId paths (see
:mod:`rejection_fhir.response.answers` for the path syntax; ``""`` is the response itself),
codes and numbers, never a client's free-text answer, so they are safe to log.

Codes (stable, for scripts and tests):

========================  ===========  =================================================
code                      severity     meaning
========================  ===========  =================================================
not-an-object             error        the response is not a JSON object
wrong-resource-type       error        resourceType is not QuestionnaireResponse
missing-status            error        status is absent
invalid-status            error        status is not an R4 code
entered-in-error          information  status says the response was entered in error
questionnaire-missing     error        no ``questionnaire`` canonical in the response
questionnaire-not-found   error        no Questionnaire to check against
questionnaire-invalid     error        what was passed is not a Questionnaire
questionnaire-mismatch    error        the response names another url or version
questionnaire-relative    warning      ``questionnaire`` is ``Questionnaire/id``, not a canonical url
invalid-authored          error        authored is not a FHIR dateTime
authored-in-future        warning      authored lies after ``now``
outside-effective-period  warning      authored outside Questionnaire.effectivePeriod
malformed                 error        wrong JSON shape (item not a list, ...)
empty-list                error        ``item: []`` or ``answer: []`` (leave it out instead)
missing-linkid            error        an item without linkId (what it holds is still checked)
unknown-linkid            error        a linkId the Questionnaire does not have
misplaced-item            error        a known linkId at the wrong level
item-order                error        item out of Questionnaire order (fewest moves)
too-many-items            error        a non-repeating item appears more than once
disabled-item             error        an item disabled by enableWhen carries answers
required-missing          error        required item unanswered (completed/amended)
too-many-answers          error        several answers to a non-repeating question
text-mismatch             warning      item.text differs from the Questionnaire's
group-has-answer          error        a group item carries answer[]
display-has-answer        error        a display item carries answer[]
display-has-items         error        a display item carries item[]
question-has-items        error        a question nests items outside its answers
answer-missing-value      error        an answer without value[x]
answer-multiple-values    error        an answer with more than one value[x]
answer-type               error        value[x] type does not fit the item type
answer-invalid-value      error        value[x] is not a valid value of its type
answer-not-in-options     error        not one of answerOption (open-choice: free text is fine)
answer-not-in-valueset    error        code not in answerValueSet (open-choice: free text is fine)
coding-system-missing     warning      a Coding matched an option by code only
valueset-not-found        warning      answerValueSet could not be resolved
valueset-not-enumerable   information  answerValueSet cannot be expanded here
below-min-value           error        below the minValue extension
above-max-value           error        above the maxValue extension
too-long                  error        longer than maxLength
too-short                 error        shorter than the minLength extension
enable-when-expression    information  enableWhenExpression not evaluated here
========================  ===========  =================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from rejection_fhir.errors import RejectionFhirError
from rejection_fhir.fhir import r4
from rejection_fhir.findings import Severity, has_errors
from rejection_fhir.response.enablewhen import root_chain
from rejection_fhir.response.itemcheck import Checker, ResponseFinding, _quote
from rejection_fhir.response.questionnaire import (
    CompiledQuestionnaire,
    compile_questionnaire,
)
from rejection_fhir.response.values import (
    compare_temporal,
    now_utc,
    parse_temporal,
    problem_with_value,
)

__all__ = [
    "ResponseFinding",
    "Severity",
    "answer_findings",
    "has_errors",
    "validate_response",
]

_STATUSES: Final = frozenset(r4.QUESTIONNAIRE_RESPONSE_STATUS)
_REQUIRED_WHEN: Final = frozenset({"completed", "amended"})
_CLOCK_SKEW: Final = timedelta(minutes=5)


def validate_response(
    response: object,
    questionnaire: Mapping[str, Any] | CompiledQuestionnaire | None,
    *,
    now: datetime | None = None,
    terminology: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ResponseFinding]:
    """Every conformance problem of ``response`` against ``questionnaire``, in document order.

    ``questionnaire`` None means it could not be resolved (an error), unless the response
    names a contained Questionnaire (``#id``).  ``now`` (aware datetime; default the
    current time) dates "authored in the future".  ``terminology`` maps canonical urls to
    ValueSet/CodeSystem resources for non-contained ``answerValueSet`` references.
    """
    findings: list[ResponseFinding] = []
    if not isinstance(response, dict):
        findings.append(
            ResponseFinding(
                "error", "", "The QuestionnaireResponse is not a JSON object.", "not-an-object"
            )
        )
        return findings
    kind = response.get("resourceType")
    if kind != "QuestionnaireResponse":
        findings.append(
            ResponseFinding(
                "error",
                "",
                f"resourceType is {_quote(kind)}, expected 'QuestionnaireResponse'.",
                "wrong-resource-type",
            )
        )
        return findings

    status = response.get("status")
    if not isinstance(status, str) and status is not None:
        status = repr(status)  # reported as invalid below, quoted safely
    if status is None:
        findings.append(ResponseFinding("error", "", "status is missing.", "missing-status"))
    elif status not in _STATUSES:
        findings.append(
            ResponseFinding(
                "error",
                "",
                f"status {_quote(status)} is not one of {', '.join(sorted(_STATUSES))}.",
                "invalid-status",
            )
        )
    elif status == "entered-in-error":
        findings.append(
            ResponseFinding(
                "information",
                "",
                "status is entered-in-error: this response should not be used.",
                "entered-in-error",
            )
        )

    compiled = _questionnaire_for(response, questionnaire, findings)
    _check_authored(response, compiled, now, findings)
    if compiled is None:
        return findings

    checker = Checker(compiled, terminology, status in _REQUIRED_WHEN, findings)
    checker.empty(response, "", "the response")
    checker.items(
        response.get("item"), compiled.items, compiled.root_index, root_chain(response), ""
    )
    return findings


def answer_findings(
    response: Mapping[str, Any], questionnaire: Mapping[str, Any] | CompiledQuestionnaire
) -> list[ResponseFinding]:
    """The answer checks of :func:`validate_response` alone, for readers of a summary.

    Every answer is checked against its item's definition (found by linkId anywhere in
    the Questionnaire): type, value, options, minValue/maxValue, lengths; items without
    a linkId or with an unknown one are reported.  Structure, order, enableWhen and
    required-ness are not: this is what ``summarize`` warns about beside a summary, at a
    fraction of a full validation's cost.  Paths are the ones validate_response gives.
    """
    findings: list[ResponseFinding] = []
    compiled = compile_questionnaire(questionnaire)
    checker = Checker(compiled, None, False, findings)
    checker.answers_only(response.get("item"), compiled.root_index, "")
    return findings


# ---------------------------------------------------------------------- resource level


def _questionnaire_for(
    response: Mapping[str, Any],
    questionnaire: Mapping[str, Any] | CompiledQuestionnaire | None,
    findings: list[ResponseFinding],
) -> CompiledQuestionnaire | None:
    canonical = response.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        findings.append(
            ResponseFinding(
                "error",
                "",
                "The response does not name its Questionnaire (questionnaire is missing).",
                "questionnaire-missing",
            )
        )
        canonical = None
    if questionnaire is None and canonical is not None and canonical.startswith("#"):
        contained = response.get("contained")
        for resource in contained if isinstance(contained, list) else []:
            if (
                isinstance(resource, dict)
                and resource.get("resourceType") == "Questionnaire"
                and resource.get("id") == canonical[1:]
            ):
                questionnaire = resource
                break
    if questionnaire is None:
        findings.append(
            ResponseFinding(
                "error",
                "",
                f"The Questionnaire {_quote(canonical)} could not be found; "
                "publish it or pass it in before validating."
                if canonical
                else "No Questionnaire to validate against.",
                "questionnaire-not-found",
            )
        )
        return None
    try:
        compiled = compile_questionnaire(questionnaire)
    except RejectionFhirError:
        findings.append(
            ResponseFinding(
                "error",
                "",
                "What was passed as the Questionnaire is not a Questionnaire resource.",
                "questionnaire-invalid",
            )
        )
        return None
    if canonical is not None:
        if canonical.startswith("#"):
            matches = compiled.source.get("id") == canonical[1:]
        elif ":" not in canonical.partition("|")[0]:
            # Resolved like a canonical (QuestionnaireIndex does), but servers and the HL7
            # validator require an absolute url here: say so, and carry on.
            matches = compiled.matches(canonical)
            findings.append(
                ResponseFinding(
                    "warning",
                    "",
                    f"questionnaire {_quote(canonical)} is a relative reference; FHIR wants the "
                    "Questionnaire's canonical url (url|version) there.",
                    "questionnaire-relative",
                )
            )
        else:
            matches = compiled.matches(canonical)
        if not matches:
            findings.append(
                ResponseFinding(
                    "error", "", _mismatch(canonical, compiled), "questionnaire-mismatch"
                )
            )
    return compiled


def _mismatch(named: str, compiled: CompiledQuestionnaire) -> str:
    """Which Questionnaire the response names and which it is checked against, with the part
    that differs in full: two long canonicals cut at the same length would read alike."""
    against = compiled.canonical or compiled.reference
    url, _, version = named.partition("|")
    if against is None:
        return (
            f"The response names Questionnaire {_quote_part(named, 0)} but is being checked "
            "against a Questionnaire without url or id."
        )
    if url == compiled.url and version:
        return (
            f"The response names version {_quote(version)} of {_quote_tail(url)} but is being "
            f"checked against version {_quote(compiled.version)}."
        )
    start = _first_difference(named, against)
    return (
        f"The response names Questionnaire {_quote_part(named, start)} but is being checked "
        f"against {_quote_part(against, start)}."
    )


def _first_difference(a: str, b: str) -> int:
    for n, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return n
    return min(len(a), len(b))


def _quote_part(text: str, start: int, limit: int = 80) -> str:
    """``text`` quoted, bounded, but always showing what follows ``start`` (where it differs)."""
    if len(text) <= limit:
        return _quote(text, limit)
    if len(text) - start <= limit - 1:
        return repr("…" + text[-(limit - 1) :])  # the difference lies in the end: show it
    keep_from = max(0, start - 20)
    shown = text[keep_from : keep_from + limit - 2]
    return repr(("…" if keep_from else "") + shown + "…")


def _quote_tail(text: str, limit: int = 100) -> str:
    """A long url quoted by its end, where a Questionnaire's name is."""
    return repr(text) if len(text) <= limit else repr("…" + text[-(limit - 1) :])


def _check_authored(
    response: Mapping[str, Any],
    compiled: CompiledQuestionnaire | None,
    now: datetime | None,
    findings: list[ResponseFinding],
) -> None:
    authored = response.get("authored")
    if authored is None:
        return
    if problem_with_value("valueDateTime", authored) is not None:
        findings.append(
            ResponseFinding("error", "", "authored is not a FHIR dateTime.", "invalid-authored")
        )
        return
    moment = parse_temporal(authored)
    if moment is None:
        return
    current = now if now is not None else now_utc()
    if moment.lo > current + _CLOCK_SKEW:
        findings.append(
            ResponseFinding(
                "warning",
                "",
                "authored lies in the future; check the device clock that sent it.",
                "authored-in-future",
            )
        )
    if compiled is None:
        return
    start = parse_temporal(compiled.effective_start) if compiled.effective_start else None
    if start is not None and compare_temporal(moment, start) == -1:
        findings.append(
            ResponseFinding(
                "warning",
                "",
                f"authored lies before the Questionnaire's effectivePeriod.start "
                f"{compiled.effective_start}.",
                "outside-effective-period",
            )
        )
    end = parse_temporal(compiled.effective_end) if compiled.effective_end else None
    if end is not None and compare_temporal(moment, end) == 1:
        findings.append(
            ResponseFinding(
                "warning",
                "",
                f"authored lies after the Questionnaire's effectivePeriod.end "
                f"{compiled.effective_end}.",
                "outside-effective-period",
            )
        )
