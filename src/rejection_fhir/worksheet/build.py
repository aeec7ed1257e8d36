"""Building: worksheet sources → FHIR R4 Questionnaire, CodeSystem, ValueSet and Bundle.

Pure functions from plain source data to plain FHIR JSON dicts: no I/O, no clock, so the
same sources always give byte-identical output.  Key order is chosen here, once, to make
the JSON read naturally (resourceType, id, url, version, …) for reviewers of diffs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rejection_fhir import FHIR_VERSION
from rejection_fhir.fhir import bundle
from rejection_fhir.fhir.json import JsonDict

# The extension URLs live in the bottom layer (one home); re-exported for callers that
# import them from here.
from rejection_fhir.fhir.r4 import CALCULATED_EXPRESSION as CALCULATED_EXPRESSION
from rejection_fhir.fhir.r4 import ENTRY_FORMAT as ENTRY_FORMAT
from rejection_fhir.fhir.r4 import ITEM_CONTROL as ITEM_CONTROL
from rejection_fhir.fhir.r4 import ITEM_CONTROL_SYSTEM as ITEM_CONTROL_SYSTEM
from rejection_fhir.fhir.r4 import MAX_VALUE as MAX_VALUE
from rejection_fhir.fhir.r4 import MIN_VALUE as MIN_VALUE
from rejection_fhir.fhir.r4 import OBSERVATION_EXTRACT as OBSERVATION_EXTRACT
from rejection_fhir.fhir.r4 import ORDINAL_VALUE as ORDINAL_VALUE
from rejection_fhir.fhir.r4 import SLIDER_STEP as SLIDER_STEP
from rejection_fhir.fhir.r4 import UCUM as UCUM
from rejection_fhir.fhir.r4 import UNIT as UNIT

M49 = "http://unstats.un.org/unsd/methods/m49/m49.htm"

#: enableWhen.answer[x] for each type of the item the condition looks at.
ANSWER_FIELD = {
    "boolean": "answerBoolean",
    "decimal": "answerDecimal",
    "integer": "answerInteger",
    "date": "answerDate",
    "dateTime": "answerDateTime",
    "time": "answerTime",
    "string": "answerString",
    "text": "answerString",
    "url": "answerString",
    "choice": "answerCoding",
    "open-choice": "answerCoding",
    "quantity": "answerQuantity",
    "reference": "answerReference",
}

#: Stable namespace for the deterministic transaction fullUrls.
_BUNDLE_NS = uuid.UUID("5b7c0f2e-1f0e-4a4e-9d59-6a1f3f0c2b11")


def pascal_case(name: str) -> str:
    """``core-beliefs`` → ``CoreBeliefs``: FHIR wants a computer-friendly name (que-0)."""
    return "".join(part[:1].upper() + part[1:] for part in name.replace(".", "-").split("-"))


@dataclass(frozen=True)
class Terminology:
    """The project's CodeSystem as the builder needs it."""

    system: str
    version: str
    displays: Mapping[str, str]
    value_sets: Mapping[str, Sequence[str]]

    @classmethod
    def from_project(cls, project: Mapping[str, Any], base_url: str) -> Terminology:
        cs = project["codeSystem"]
        return cls(
            system=f"{base_url}/CodeSystem/{cs['name']}",
            version=cs["version"],
            displays={c["code"]: c["display"] for c in project["concepts"]},
            value_sets={vs["name"]: list(vs["codes"]) for vs in project["valueSets"]},
        )

    def coding(self, code: str) -> JsonDict:
        return {"system": self.system, "code": code, "display": self.displays.get(code, code)}


def canonical_base(project: Mapping[str, Any], override: str | None) -> str:
    return (override or project["canonicalBase"]).rstrip("/")


def _copyright(project: Mapping[str, Any], worksheet: Mapping[str, Any]) -> str:
    attribution = worksheet.get("attribution") or project["attribution"]
    own = worksheet.get("copyright") or project["copyright"]
    text = f"{own}\n\n{attribution['source']}"
    if attribution["references"]:
        refs = "\n".join(f"- {ref}" for ref in attribution["references"])
        text += f"\n\nReferences:\n\n{refs}"
    return text


def _common_metadata(project: Mapping[str, Any]) -> JsonDict:
    meta: JsonDict = {"publisher": project["publisher"]}
    if "contact" in project:
        contact = project["contact"]
        meta["contact"] = [
            {"name": contact["name"], "telecom": [{"system": "url", "value": contact["url"]}]}
        ]
    return meta


def _jurisdiction(project: Mapping[str, Any]) -> list[JsonDict]:
    if "jurisdiction" not in project:
        return []
    return [{"coding": [{"system": M49, "code": project["jurisdiction"]}]}]


def _value_ext(url: str, item_type: str, value: float) -> JsonDict:
    if item_type == "integer":
        return {"url": url, "valueInteger": int(value)}
    return {"url": url, "valueDecimal": value}


def _options(item: Mapping[str, Any], terminology: Terminology) -> list[JsonDict]:
    if "valueSet" in item:
        codes = terminology.value_sets.get(item["valueSet"], [])
        return [{"valueCoding": terminology.coding(code)} for code in codes]
    options = []
    for option in item.get("options", []):
        coding: JsonDict = {
            "system": option.get("system", terminology.system),
            "code": option["code"],
            "display": option["display"],
        }
        if "weight" in option:
            coding["extension"] = [{"url": ORDINAL_VALUE, "valueDecimal": option["weight"]}]
        options.append({"valueCoding": coding})
    return options


def _enable_when(
    condition: Mapping[str, Any], types: Mapping[str, str], terminology: Terminology
) -> JsonDict:
    """The answer[x] field follows the YAML value, read in the light of the target's type,
    so that a mismatch stays visible to the rules instead of being coerced away."""
    target_type = types.get(condition["question"], "string")
    answer = condition["answer"]
    out: JsonDict = {"question": condition["question"], "operator": condition["operator"]}
    if isinstance(answer, bool):
        out["answerBoolean"] = answer
    elif isinstance(answer, int) and target_type != "decimal":
        out["answerInteger"] = answer
    elif isinstance(answer, int | float):
        out["answerDecimal"] = answer
    elif target_type in {"choice", "open-choice"}:
        out["answerCoding"] = {"system": terminology.system, "code": answer}
    elif target_type in {"date", "dateTime", "time"}:
        out[ANSWER_FIELD[target_type]] = answer
    else:
        out["answerString"] = answer
    return out


def _item(item: Mapping[str, Any], types: Mapping[str, str], terminology: Terminology) -> JsonDict:
    item_type = item["type"]
    out: JsonDict = {}
    extensions: list[JsonDict] = []
    if "control" in item:
        extensions.append(
            {
                "url": ITEM_CONTROL,
                "valueCodeableConcept": {
                    "coding": [{"system": ITEM_CONTROL_SYSTEM, "code": item["control"]}]
                },
            }
        )
    if "min" in item:
        extensions.append(_value_ext(MIN_VALUE, item_type, item["min"]))
    if "max" in item:
        extensions.append(_value_ext(MAX_VALUE, item_type, item["max"]))
    if "step" in item:
        extensions.append(
            _value_ext(
                SLIDER_STEP, "integer" if item_type == "integer" else item_type, item["step"]
            )
        )
    if "unit" in item:
        extensions.append(
            {
                "url": UNIT,
                "valueCoding": {"system": UCUM, "code": item["unit"], "display": item["unit"]},
            }
        )
    if "placeholder" in item:
        extensions.append({"url": ENTRY_FORMAT, "valueString": item["placeholder"]})
    if item.get("observation"):
        extensions.append({"url": OBSERVATION_EXTRACT, "valueBoolean": True})
    if "calculated" in item:
        extensions.append(
            {
                "url": CALCULATED_EXPRESSION,
                "valueExpression": {"language": "text/fhirpath", "expression": item["calculated"]},
            }
        )
    if extensions:
        out["extension"] = extensions
    out["linkId"] = item["linkId"]
    if "code" in item:
        code = item["code"]
        out["code"] = [terminology.coding(code) if isinstance(code, str) else dict(code)]
    if "prefix" in item:
        out["prefix"] = item["prefix"]
    out["text"] = item["text"]
    out["type"] = item_type
    if "enableWhen" in item:
        out["enableWhen"] = [_enable_when(c, types, terminology) for c in item["enableWhen"]]
        if "enableBehavior" in item:
            out["enableBehavior"] = item["enableBehavior"]
        elif len(item["enableWhen"]) > 1:
            out["enableBehavior"] = "all"  # que-12; "all" is what a reader of a bare list expects
    for flag in ("required", "repeats", "readOnly"):
        if item.get(flag):
            out[flag] = True
    if "maxLength" in item:
        out["maxLength"] = item["maxLength"]
    # An unknown value set builds no options: validate reports the name, not an empty list.
    if ("valueSet" in item or "options" in item) and (options := _options(item, terminology)):
        out["answerOption"] = options
    children = [_item(child, types, terminology) for child in item.get("items", [])]
    if "help" in item:
        # SDC help: a display child with itemControl "help", shown as a tooltip or info icon.
        children.insert(
            0,
            {
                "extension": [
                    {
                        "url": ITEM_CONTROL,
                        "valueCodeableConcept": {
                            "coding": [{"system": ITEM_CONTROL_SYSTEM, "code": "help"}]
                        },
                    }
                ],
                "linkId": f"{item['linkId']}.help",
                "text": item["help"],
                "type": "display",
            },
        )
    if children:
        out["item"] = children
    return out


def item_types(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """linkId → type for every item, however deeply nested.

    A linkId used twice maps to its first item in document order, as the rules read it:
    the duplicate is then the one finding (que-2), not an enableWhen answer typed after
    the wrong item."""
    types: dict[str, str] = {}
    stack = list(reversed(list(items)))
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping) and isinstance(item.get("linkId"), str):
            types.setdefault(item["linkId"], str(item.get("type")))
            stack.extend(reversed(item.get("items", []) or []))
    return types


def build_questionnaire(
    project: Mapping[str, Any], worksheet: Mapping[str, Any], *, base_url: str | None = None
) -> JsonDict:
    base = canonical_base(project, base_url)
    terminology = Terminology.from_project(project, base)
    types = item_types(worksheet["items"])
    q: JsonDict = {
        "resourceType": "Questionnaire",
        "id": worksheet["name"],
        "url": f"{base}/Questionnaire/{worksheet['name']}",
        "version": worksheet["version"],
        "name": pascal_case(worksheet["name"]),
        "title": worksheet["title"],
        "status": worksheet["status"],
    }
    if "experimental" in worksheet:
        q["experimental"] = worksheet["experimental"]
    if "code" in worksheet:
        q["code"] = [dict(c) for c in worksheet["code"]]
    q["subjectType"] = ["Patient"]
    q["date"] = worksheet["date"]
    q.update(_common_metadata(project))
    q["description"] = worksheet["description"]
    if jurisdiction := _jurisdiction(project):
        q["jurisdiction"] = jurisdiction
    q["purpose"] = worksheet["purpose"]
    q["copyright"] = _copyright(project, worksheet)
    q["item"] = [_item(item, types, terminology) for item in worksheet["items"]]
    # FHIR orders text right after id; a resource without a narrative triggers dom-6.
    return {"resourceType": q.pop("resourceType"), "id": q.pop("id"), "text": narrative(q), **q}


def narrative(q: Mapping[str, Any]) -> JsonDict:
    """A generated narrative (dom-6): the title, version and every item's text, in order,
    nested as the items are, with each choice item's options.  The version guard and
    ``publish`` set ``text`` aside, so changing how it is generated needs no new version."""
    from functools import partial
    from html import escape as html_escape

    escape = partial(html_escape, quote=False)  # element content: only &, < and > matter

    def items(children: Any) -> str:
        rows = []
        for item in children if isinstance(children, list) else []:
            if not isinstance(item, Mapping):
                continue
            label = escape(" ".join(str(item.get(k)) for k in ("prefix", "text") if item.get(k)))
            if item.get("required"):
                label += " <i>(required)</i>"
            options = [
                escape(str(o["valueCoding"].get("display") or o["valueCoding"].get("code")))
                for o in item.get("answerOption", []) or []
                if isinstance(o, Mapping) and isinstance(o.get("valueCoding"), Mapping)
            ]
            if options:
                label += f": {', '.join(options)}"
            rows.append(f"<li>{label}{items(item.get('item'))}</li>")
        return f"<ol>{''.join(rows)}</ol>" if rows else ""

    title = escape(str(q.get("title") or q.get("name") or "Questionnaire"))
    version = f" <span>(version {escape(str(q['version']))})</span>" if q.get("version") else ""
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><h3>{title}{version}</h3>'
        f"{items(q.get('item'))}</div>",
    }


def build_codesystem(project: Mapping[str, Any], *, base_url: str | None = None) -> JsonDict:
    base = canonical_base(project, base_url)
    cs = project["codeSystem"]
    concepts = []
    for concept in project["concepts"]:
        entry = {"code": concept["code"], "display": concept["display"]}
        if "definition" in concept:
            entry["definition"] = concept["definition"]
        concepts.append(entry)
    resource: JsonDict = {
        "resourceType": "CodeSystem",
        "id": cs["name"],
        "url": f"{base}/CodeSystem/{cs['name']}",
        "version": cs["version"],
        "name": pascal_case(cs["name"]),
        "title": cs["title"],
        "status": "active",
        "date": cs["date"],
        **_common_metadata(project),
        "description": cs["description"],
    }
    if jurisdiction := _jurisdiction(project):
        resource["jurisdiction"] = jurisdiction
    resource.update(
        {
            "copyright": project["copyright"],
            "caseSensitive": True,
            "content": "complete",
            "count": len(concepts),
            "concept": concepts,
        }
    )
    return resource


def build_valuesets(project: Mapping[str, Any], *, base_url: str | None = None) -> list[JsonDict]:
    base = canonical_base(project, base_url)
    terminology = Terminology.from_project(project, base)
    cs = project["codeSystem"]
    out = []
    for vs in project["valueSets"]:
        resource: JsonDict = {
            "resourceType": "ValueSet",
            "id": vs["name"],
            "url": f"{base}/ValueSet/{vs['name']}",
            "version": cs["version"],
            "name": pascal_case(vs["name"]),
            "title": vs["title"],
            "status": "active",
            "date": cs["date"],
            **_common_metadata(project),
        }
        if "description" in vs:
            resource["description"] = vs["description"]
        resource["copyright"] = project["copyright"]
        resource["compose"] = {
            "include": [
                {
                    "system": terminology.system,
                    "version": terminology.version,
                    "concept": [
                        {"code": code, "display": terminology.displays.get(code, code)}
                        for code in vs["codes"]
                    ],
                }
            ]
        }
        out.append(resource)
    return out


def transaction_bundle(resources: Sequence[Mapping[str, Any]]) -> JsonDict:
    """One transaction of conditional creates keyed on url+version: a rerun changes nothing."""
    entries = []
    for resource in resources:
        key = f"{resource['url']}|{resource['version']}"
        entries.append(
            bundle.conditional_create(
                f"urn:uuid:{uuid.uuid5(_BUNDLE_NS, key)}",
                dict(resource),
                {"url": resource["url"], "version": resource["version"]},
            )
        )
    return bundle.transaction(entries)


def file_name(resource: Mapping[str, Any]) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


__all__ = [
    "FHIR_VERSION",
    "Terminology",
    "build_codesystem",
    "build_questionnaire",
    "build_valuesets",
    "file_name",
    "transaction_bundle",
]
