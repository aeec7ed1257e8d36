"""Which answers become Observations: SDC observation-based extraction on resolved answers.

An item is extracted when it (or an enclosing group, or the Questionnaire) carries
``sdc-questionnaire-observationExtract = true`` and the item has a code.  Inside a repeating
group the coded sibling answer names the instance ("Hurt"), so a trend line can tell the
intensity of hurt from the intensity of shame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rejection_fhir.response.answers import ResolvedItem, ResolvedResponse
from rejection_fhir.worksheet.build import OBSERVATION_EXTRACT

#: value[x] types an Observation can carry, keyed by the answer's FHIR type.
OBSERVATION_VALUE = {
    "integer": "valueInteger",
    "decimal": "valueQuantity",
    "Quantity": "valueQuantity",
    "Coding": "valueCodeableConcept",
    "boolean": "valueBoolean",
    "string": "valueString",
    "dateTime": "valueDateTime",
    "date": "valueDateTime",
    "time": "valueTime",
}


@dataclass(frozen=True)
class ExtractedValue:
    path: str
    code: Mapping[str, Any]
    #: Observation.code.text: the item's meaning plus the instance it belongs to.
    label: str
    value_key: str
    value: Any


def _extract_flag(source: Mapping[str, Any]) -> bool | None:
    for ext in source.get("extension", []) or []:
        if isinstance(ext, Mapping) and ext.get("url") == OBSERVATION_EXTRACT:
            value = ext.get("valueBoolean")
            return value if isinstance(value, bool) else None
    return None


def _extracted(item: ResolvedItem, questionnaire_default: bool) -> bool:
    definition = item.definition
    while definition is not None:
        flag = _extract_flag(definition.source)
        if flag is not None:
            return flag
        definition = definition.parent
    return questionnaire_default


def _instance_label(group: ResolvedItem | None) -> str | None:
    """What names one instance of a repeating group: its coded answer, or, when that is
    "other", the words the client gave for it (so two typed emotions trend apart)."""
    if group is None:
        return None
    coded = next(
        (a for child in group.items for a in child.answers if a.value_type == "Coding"), None
    )
    if coded is None:
        return None
    if coded.code == "other":
        specified = next(
            (
                a.display
                for child in group.items
                for a in child.answers
                if a.value_type == "string" and a.display
            ),
            None,
        )
        if specified is not None:
            return specified
    return coded.display


def _value(answer_type: str, value: Any, unit: str | None) -> tuple[str, Any] | None:
    key = OBSERVATION_VALUE.get(answer_type)
    if key is None:
        return None
    if answer_type == "decimal":
        quantity: dict[str, Any] = {"value": value}
        if unit:
            quantity.update({"unit": unit, "system": "http://unitsofmeasure.org", "code": unit})
        return key, quantity
    if answer_type == "integer" and unit:
        return "valueQuantity", {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        }
    if answer_type == "Coding":
        return key, {"coding": [value]}
    return key, value


def observation_values(resolved: ResolvedResponse) -> list[ExtractedValue]:
    default = False
    if resolved.compiled is not None:
        default = bool(_extract_flag(resolved.compiled.source))
    out: list[ExtractedValue] = []

    def visit(items: tuple[ResolvedItem, ...], group: ResolvedItem | None) -> None:
        for item in items:
            definition = item.definition
            codes = definition.source.get("code") if definition is not None else None
            if item.answers and codes and _extracted(item, default):
                code = codes[0]
                label = str(code.get("display") or item.label)
                if (instance := _instance_label(group)) is not None:
                    label = f"{label}: {instance}"
                for answer in item.answers:
                    value = _value(answer.value_type, answer.value, answer.unit)
                    if value is not None:
                        out.append(ExtractedValue(answer.path, code, label, value[0], value[1]))
            for answer in item.answers:
                visit(answer.items, group)
            visit(item.items, item if item.type == "group" else group)

    visit(resolved.items, None)
    return out
