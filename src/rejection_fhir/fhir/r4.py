"""FHIR R4 tables: Questionnaire item types, the extension URLs we read and write, and the
status codes of required bindings.

One home for facts of the specification (R4 4.0.1, SDC 3.0.0), so that the builder, the
rules, the version guard and the response engine cannot drift apart.  Pure constants.
"""

from __future__ import annotations

from typing import Final

# --- Codes of required bindings ---------------------------------------------------------------

#: Questionnaire.status (PublicationStatus).
PUBLICATION_STATUS: Final = ("draft", "active", "retired", "unknown")
#: QuestionnaireResponse.status.
QUESTIONNAIRE_RESPONSE_STATUS: Final = (
    "in-progress",
    "completed",
    "amended",
    "entered-in-error",
    "stopped",
)
#: Questionnaire.item.type (QuestionnaireItemType), in the specification's order.
ITEM_TYPES: Final = (
    "group",
    "display",
    "question",
    "boolean",
    "decimal",
    "integer",
    "date",
    "dateTime",
    "time",
    "string",
    "text",
    "url",
    "choice",
    "open-choice",
    "attachment",
    "reference",
    "quantity",
)
#: Questionnaire.item.enableWhen.operator.
ENABLE_WHEN_OPERATORS: Final = ("exists", "=", "!=", ">", "<", ">=", "<=")
#: Questionnaire.item.enableBehavior.
ENABLE_BEHAVIORS: Final = ("all", "any")

# --- Item types --------------------------------------------------------------------------------

#: What enableWhen.answer[x] may be for each type of the item it looks at (R4 semantics).
ENABLE_WHEN_ANSWER: Final[dict[str, frozenset[str]]] = {
    "boolean": frozenset({"answerBoolean"}),
    "decimal": frozenset({"answerDecimal", "answerInteger"}),
    "integer": frozenset({"answerInteger"}),
    "date": frozenset({"answerDate"}),
    "dateTime": frozenset({"answerDateTime"}),
    "time": frozenset({"answerTime"}),
    "string": frozenset({"answerString"}),
    "text": frozenset({"answerString"}),
    "url": frozenset({"answerString"}),
    "choice": frozenset({"answerCoding"}),
    "open-choice": frozenset({"answerCoding", "answerString"}),
    "quantity": frozenset({"answerQuantity"}),
    "reference": frozenset({"answerReference"}),
    "attachment": frozenset(),
}
#: Item types that may carry maxLength (que-10).
TYPES_WITH_MAX_LENGTH: Final = frozenset(
    {"boolean", "decimal", "integer", "string", "text", "url", "open-choice"}
)
#: Item types that may carry answerOption or answerValueSet (que-5).
ANSWER_OPTION_TYPES: Final = frozenset(
    {
        "choice",
        "open-choice",
        "decimal",
        "integer",
        "date",
        "dateTime",
        "time",
        "string",
        "quantity",
    }
)

# --- Extension URLs ----------------------------------------------------------------------------

EXT: Final = "http://hl7.org/fhir/StructureDefinition"
SDC_EXT: Final = "http://hl7.org/fhir/uv/sdc/StructureDefinition"

ITEM_CONTROL: Final = f"{EXT}/questionnaire-itemControl"
ITEM_CONTROL_SYSTEM: Final = "http://hl7.org/fhir/questionnaire-item-control"
MIN_VALUE: Final = f"{EXT}/minValue"
MAX_VALUE: Final = f"{EXT}/maxValue"
MIN_LENGTH: Final = f"{EXT}/minLength"
SLIDER_STEP: Final = f"{EXT}/questionnaire-sliderStepValue"
UNIT: Final = f"{EXT}/questionnaire-unit"
ENTRY_FORMAT: Final = f"{EXT}/entryFormat"
#: Option scores: R5's name, R4's name, the pre-R4 name.
ITEM_WEIGHT: Final = f"{EXT}/itemWeight"
ORDINAL_VALUE: Final = f"{EXT}/ordinalValue"
CO_VALUE: Final = f"{EXT}/iso21090-CO-value"
OBSERVATION_EXTRACT: Final = f"{SDC_EXT}/sdc-questionnaire-observationExtract"
CALCULATED_EXPRESSION: Final = f"{SDC_EXT}/sdc-questionnaire-calculatedExpression"
ENABLE_WHEN_EXPRESSION: Final = f"{SDC_EXT}/sdc-questionnaire-enableWhenExpression"
#: SDC: options computed at run time, which count as options.
ANSWER_EXPRESSION: Final = f"{SDC_EXT}/sdc-questionnaire-answerExpression"
CANDIDATE_EXPRESSION: Final = f"{SDC_EXT}/sdc-questionnaire-candidateExpression"
#: Not claimed in meta.profile: most EHR servers carry no SDC package, and HAPI's $validate
#: reports a profile it cannot resolve as an error.  The SDC extensions are used all the same.
SDC_QUESTIONNAIRE_PROFILE: Final = f"{SDC_EXT}/sdc-questionnaire|3.0.0"

#: Code systems.
UCUM: Final = "http://unitsofmeasure.org"
