"""The generic QuestionnaireResponse engine: answers, conformance, summaries, renderers.

Pure functions on plain dicts; no I/O.  Works for any FHIR R4 Questionnaire:

* :func:`compile_questionnaire` / :class:`QuestionnaireIndex` - prepare Questionnaires once
  and find the one a response names (``url`` or ``url|version``).
* :func:`resolve_response` - every answer with its typed value, display, unit and weight.
* :func:`validate_response` - conformance findings, as the HL7 validator checks them.
* :func:`summarize` + ``render_*`` - the clinician summary, generic or worksheet-specific.
"""

from rejection_fhir.response.answers import (
    ResolvedAnswer,
    ResolvedItem,
    ResolvedResponse,
    resolve_response,
)
from rejection_fhir.response.conformance import (
    ResponseFinding,
    Severity,
    has_errors,
    validate_response,
)
from rejection_fhir.response.enablewhen import EnableWhenEvaluator
from rejection_fhir.response.questionnaire import (
    CodeList,
    CompiledQuestionnaire,
    Concept,
    EnableWhen,
    ItemDef,
    OptionDef,
    QuestionnaireIndex,
    compile_questionnaire,
    split_canonical,
)
from rejection_fhir.response.render import (
    narrative,
    render_json,
    render_markdown,
    render_text,
    render_xhtml,
)
from rejection_fhir.response.summary import (
    Entry,
    Line,
    Section,
    Summarizer,
    Summarizers,
    Summary,
    generic_summary,
    summarize,
    summarizer_for,
)

__all__ = [
    "CodeList",
    "CompiledQuestionnaire",
    "Concept",
    "EnableWhen",
    "EnableWhenEvaluator",
    "Entry",
    "ItemDef",
    "Line",
    "OptionDef",
    "QuestionnaireIndex",
    "ResolvedAnswer",
    "ResolvedItem",
    "ResolvedResponse",
    "ResponseFinding",
    "Section",
    "Severity",
    "Summarizer",
    "Summarizers",
    "Summary",
    "compile_questionnaire",
    "generic_summary",
    "has_errors",
    "narrative",
    "render_json",
    "render_markdown",
    "render_text",
    "render_xhtml",
    "resolve_response",
    "split_canonical",
    "summarize",
    "summarizer_for",
    "validate_response",
]
