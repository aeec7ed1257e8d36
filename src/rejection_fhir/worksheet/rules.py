"""Checks on a built FHIR R4 Questionnaire: structure, que-* invariants, SDC and our own rules.

The rules read the FHIR JSON, not the YAML, so the same checks serve authored worksheets
and Questionnaires built elsewhere.  Each problem is an :class:`Issue` naming the linkId;
the caller maps it back to a file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from rejection_fhir.fhir.r4 import (
    ANSWER_EXPRESSION,
    ANSWER_OPTION_TYPES,
    CALCULATED_EXPRESSION,
    CANDIDATE_EXPRESSION,
    ENABLE_WHEN_ANSWER,
    ENTRY_FORMAT,
    ITEM_CONTROL,
    MAX_VALUE,
    MIN_VALUE,
    OBSERVATION_EXTRACT,
    SLIDER_STEP,
    TYPES_WITH_MAX_LENGTH,
    UNIT,
)
from rejection_fhir.fhir.semver import is_semver
from rejection_fhir.findings import Severity
from rejection_fhir.worksheet.core_rules import check_core
from rejection_fhir.worksheet.issue import Issue as Issue
from rejection_fhir.worksheet.issue import link_id_at as link_id_at

CHOICE_CONTROLS = {"radio-button", "check-box", "drop-down", "autocomplete", "list", "lookup"}
NUMERIC_CONTROLS = {"slider", "spinner"}
_NAME_RE = re.compile(r"^[A-Z]([A-Za-z0-9_]){0,254}$")


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _walk(items: Any, path: str = "item") -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        here = f"{path}[{i}]"
        yield here, item
        yield from _walk(item.get("item"), f"{here}.item")


def _ext(item: Mapping[str, Any], url: str) -> Mapping[str, Any] | None:
    for ext in item.get("extension", []) or []:
        if isinstance(ext, Mapping) and ext.get("url") == url:
            return ext
    return None


def _value(ext: Mapping[str, Any] | None) -> Any:
    if ext is None:
        return None
    for key, value in ext.items():
        if key.startswith("value"):
            return value
    return None


def _item_control(item: Mapping[str, Any]) -> str | None:
    concept = _value(_ext(item, ITEM_CONTROL))
    if isinstance(concept, Mapping):
        codings = concept.get("coding")
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                return str(coding["code"])
    return None


# --- Structure ---------------------------------------------------------------------------


@cache
def _r4b_questionnaire() -> Any:
    from fhir.resources.R4B.questionnaire import Questionnaire  # slow import: only when validating

    return Questionnaire


def _pydantic_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def check_structure(resource: Mapping[str, Any]) -> list[Issue]:
    """Structural validation against the fhir.resources R4B model (same shape as R4 here)."""
    if resource.get("resourceType") != "Questionnaire":
        return [
            Issue(
                "structure",
                "error",
                f"expected a Questionnaire, found resourceType {resource.get('resourceType')!r}",
            )
        ]
    from pydantic import ValidationError

    # What the models let through (codes of required bindings, empty arrays, URIs, ext-1).
    issues = check_core(resource)
    try:
        _r4b_questionnaire().model_validate(dict(resource))
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error.get("loc", ()))
            path = _pydantic_path(loc)
            link_id = link_id_at(resource, loc)
            issues.append(
                Issue(
                    "structure", "error", f"{path or 'resource'}: {error.get('msg')}", link_id, path
                )
            )
    return issues


# --- Rules -------------------------------------------------------------------------------


def check_questionnaire(
    q: Mapping[str, Any], code_systems: Mapping[str, set[str]] | None = None
) -> list[Issue]:
    """que-* invariants, SDC rules and the project's own rules.

    ``code_systems`` maps a CodeSystem url to its codes; codings in other systems are not
    checked (we cannot know LOINC's content offline).
    """
    code_systems = code_systems or {}
    issues: list[Issue] = []
    add = issues.append

    name = q.get("name")
    if isinstance(name, str) and not _NAME_RE.match(name):
        add(
            Issue(
                "que-0",
                "warning",
                f"name '{name}' should be usable as an identifier: start with a capital letter, then letters, digits or _",
            )
        )
    if not q.get("url"):
        add(
            Issue(
                "canonical-url",
                "error",
                "the Questionnaire has no canonical url; give it one so responses can point at it",
            )
        )
    version = q.get("version")
    if not is_semver(version):
        add(
            Issue(
                "semver",
                "error",
                f"version {version!r} is not a semantic version MAJOR.MINOR.PATCH",
            )
        )
    if not q.get("item"):
        add(Issue("no-items", "error", "the Questionnaire has no items"))

    seen: dict[str, str] = {}
    order: dict[str, int] = {}
    by_link: dict[str, Mapping[str, Any]] = {}
    for index, (path, item) in enumerate(_walk(q.get("item"))):
        link_id = item.get("linkId")
        if not isinstance(link_id, str):
            continue
        if link_id in seen:
            add(
                Issue(
                    "que-2",
                    "error",
                    f"linkId '{link_id}' is used twice (first at {seen[link_id]}); every linkId must be unique",
                    link_id,
                    path,
                )
            )
        else:
            seen[link_id] = path
            order[link_id] = index
            by_link[link_id] = item

    for path, item in _walk(q.get("item")):
        link_id = item.get("linkId") if isinstance(item.get("linkId"), str) else None
        _check_item(item, path, link_id, by_link, order, code_systems, add)
    return issues


#: Fields the rules below walk, and the JSON type each must have.
_SHAPES: tuple[tuple[str, type], ...] = (
    ("type", str),
    ("item", list),
    ("enableWhen", list),
    ("answerOption", list),
    ("code", list),
    ("initial", list),
    ("extension", list),
)


def _shape_problem(item: Mapping[str, Any]) -> str | None:
    """The first walked field holding the wrong JSON type (a list where text belongs...)."""
    for key, kind in _SHAPES:
        if key in item and item[key] is not None and not isinstance(item[key], kind):
            return key
    return None


def _check_item(
    item: Mapping[str, Any],
    path: str,
    link_id: str | None,
    by_link: Mapping[str, Mapping[str, Any]],
    order: Mapping[str, int],
    code_systems: Mapping[str, set[str]],
    add: Any,
) -> None:
    wrong = _shape_problem(item)
    if wrong is not None:
        # The structure check names the exact problem; the rules cannot read such an item.
        add(
            Issue(
                "structure",
                "error",
                f"'{wrong}' has the wrong JSON type ({type(item[wrong]).__name__}); fix the "
                "item's structure before its other rules can be checked",
                link_id,
                f"{path}.{wrong}",
            )
        )
        return
    item_type = item.get("type")
    children = item.get("item") or []
    control = _item_control(item)

    def issue(rule: str, message: str, severity: Severity = "error", at: str = path) -> None:
        add(Issue(rule, severity, message, link_id, at))

    if item_type == "group" and not children:
        issue("que-1", "a group must contain items; add items or change the type")
    if item_type == "display":
        if children:
            issue("que-1", "a display item cannot contain items")
        if item.get("code"):
            issue("que-3", "a display item cannot carry a code")
        if item.get("required") or item.get("repeats"):
            issue("que-6", "a display item takes no answer, so it cannot be required or repeat")
        if item.get("readOnly"):
            issue("que-9", "a display item cannot be read-only")
        if (
            item.get("answerOption")
            or item.get("answerValueSet")
            or any(k.startswith("initial") for k in item)
        ):
            issue(
                "display-answers",
                "a display item takes no answers: remove its options and initial values",
            )
    if item.get("answerOption") and item.get("answerValueSet"):
        issue("que-4", "give either answerOption or answerValueSet, not both")
    if (
        (item.get("answerOption") or item.get("answerValueSet"))
        and item_type not in ANSWER_OPTION_TYPES
        and item_type != "display"
    ):
        issue("que-5", f"{_a(str(item_type))} item cannot have answer options")
    if (
        item_type in {"choice", "open-choice"}
        and not item.get("answerOption")
        and not item.get("answerValueSet")
        and _ext(item, ANSWER_EXPRESSION) is None
        and _ext(item, CANDIDATE_EXPRESSION) is None
    ):
        # Nothing to choose from: a renderer shows an empty list (open-choice, a bare box).
        issue(
            "no-options",
            f"{item_type} item '{link_id}' has nothing to choose from: add answerOption or "
            "answerValueSet",
            at=f"{path}.type",
        )
    if item_type in {"group", "display"} and any(k.startswith("initial") for k in item):
        issue("que-8", "groups and display items cannot have initial values")
    if "maxLength" in item and item_type not in TYPES_WITH_MAX_LENGTH:
        issue(
            "que-10",
            f"maxLength is only allowed on simple text and number items, not on {item_type}",
        )
    if item.get("answerOption") and item.get("initial"):
        issue(
            "que-11", "with answerOption, mark the default with initialSelected instead of initial"
        )
    if len(item.get("initial") or []) > 1 and not item.get("repeats"):
        issue("que-13", "only a repeating item can have several initial values")

    conditions = item.get("enableWhen") or []
    if len(conditions) > 1 and "enableBehavior" not in item:
        issue("que-12", "with more than one enableWhen, say enableBehavior: all or any")
    for i, condition in enumerate(conditions):
        _check_enable_when(condition, f"{path}.enableWhen[{i}]", link_id, by_link, order, issue)

    for i, option in enumerate(item.get("answerOption") or []):
        coding = option.get("valueCoding") if isinstance(option, Mapping) else None
        if isinstance(coding, Mapping):
            _check_code(coding, f"{path}.answerOption[{i}]", code_systems, issue)
    for i, coding in enumerate(item.get("code") or []):
        if isinstance(coding, Mapping):
            _check_code(coding, f"{path}.code[{i}]", code_systems, issue)

    # SDC rendering and extraction rules.
    if control in CHOICE_CONTROLS and item_type not in {"choice", "open-choice"}:
        issue("sdc-item-control", f"itemControl '{control}' is for choice items, not {item_type}")
    if control in NUMERIC_CONTROLS and item_type not in {"integer", "decimal"}:
        issue(
            "sdc-item-control",
            f"itemControl '{control}' is for integer or decimal items, not {item_type}",
        )
    if control == "check-box" and not item.get("repeats"):
        issue(
            "sdc-item-control",
            "check-boxes let a person tick several answers: add repeats: true, or use radio-button",
            "warning",
        )
    if control == "slider" and (_ext(item, MIN_VALUE) is None or _ext(item, MAX_VALUE) is None):
        issue("sdc-slider-range", "a slider needs both min and max")
    low, high = _value(_ext(item, MIN_VALUE)), _value(_ext(item, MAX_VALUE))
    for url, bound in ((MIN_VALUE, low), (MAX_VALUE, high)):
        ext = _ext(item, url)
        if ext is not None and item_type not in {
            "integer",
            "decimal",
            "date",
            "dateTime",
            "time",
            "quantity",
        }:
            issue("sdc-min-max", f"min/max do not apply to a {item_type} item")
            break  # once for the item, not once per bound
        elif ext is not None and item_type == "integer" and "valueInteger" not in ext:
            issue("sdc-min-max", "min/max of an integer item must be whole numbers")
        del bound
    if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
        issue("sdc-min-max", f"min ({low}) is greater than max ({high})")
    if _ext(item, SLIDER_STEP) is not None and control != "slider":
        issue("sdc-slider-step", "a slider step only makes sense with control: slider", "warning")
    if _ext(item, UNIT) is not None and item_type not in {"integer", "decimal", "quantity"}:
        issue("sdc-unit", f"a unit only applies to number items, not {item_type}")
    if _ext(item, ENTRY_FORMAT) is not None and item_type in {"group", "display"}:
        issue("sdc-entry-format", "a placeholder only applies to items that take an answer")
    if _value(_ext(item, OBSERVATION_EXTRACT)) is True and not item.get("code"):
        issue("sdc-observation-code", "observation extraction needs a code on the item: add code:")
    expression = _value(_ext(item, CALCULATED_EXPRESSION))
    if isinstance(expression, Mapping):
        _check_fhirpath(expression.get("expression"), issue)


def _check_enable_when(
    condition: Any,
    path: str,
    link_id: str | None,
    by_link: Mapping[str, Mapping[str, Any]],
    order: Mapping[str, int],
    issue: Any,
) -> None:
    if not isinstance(condition, Mapping):
        issue("structure", "enableWhen entries must be objects", at=path)
        return
    question = condition.get("question")
    target = by_link.get(question) if isinstance(question, str) else None
    if target is None:
        issue(
            "enablewhen-unknown",
            f"enableWhen points to '{question}', which is not an item of this Questionnaire; fix the linkId",
            at=path,
        )
        return
    if question == link_id:
        issue("enablewhen-self", "an item cannot depend on its own answer", at=path)
        return
    if link_id is not None and order.get(str(question), -1) >= order.get(link_id, -1):
        issue(
            "enablewhen-order",
            f"enableWhen looks at '{question}', which comes later; a question can only depend on one asked before it",
            at=path,
        )
    answers = [k for k in condition if k.startswith("answer")]
    operator = condition.get("operator")
    operator = operator if isinstance(operator, str) else None  # the structure check reports it
    if operator == "exists":
        if answers != ["answerBoolean"]:
            issue("que-7", "with operator 'exists' the answer must be true or false", at=path)
        return
    target_type = str(target.get("type"))
    allowed = ENABLE_WHEN_ANSWER.get(target_type, frozenset[str]())
    if target_type in {"group", "display"}:
        issue(
            "enablewhen-type",
            f"'{question}' is {_a(target_type)} and has no answer to compare with",
            at=path,
        )
    elif answers and answers[0] not in allowed:
        want = " or ".join(sorted(allowed)) or "nothing"
        issue(
            "enablewhen-type",
            f"'{question}' is {_a(target_type)} item, so the answer must be {want}, not {answers[0]}",
            at=path,
        )
    elif answers and answers[0] == "answerCoding":
        coding = condition.get("answerCoding")
        coding = coding if isinstance(coding, Mapping) else {}
        options = target.get("answerOption")
        codes = {
            (str(o["valueCoding"].get("system")), str(o["valueCoding"].get("code")))
            for o in (options if isinstance(options, list) else [])
            if isinstance(o, Mapping) and isinstance(o.get("valueCoding"), Mapping)
        }
        if codes and (str(coding.get("system")), str(coding.get("code"))) not in codes:
            issue(
                "enablewhen-code",
                f"'{coding.get('code')}' is not one of the options of '{question}'",
                at=path,
            )
    if operator in {">", "<", ">=", "<="} and target_type in {
        "choice",
        "open-choice",
        "boolean",
        "string",
        "text",
    }:
        issue(
            "enablewhen-type",
            f"operator {operator} cannot compare {_a(target_type)} answer",
            at=path,
        )


def _check_code(
    coding: Mapping[str, Any], path: str, code_systems: Mapping[str, set[str]], issue: Any
) -> None:
    system = coding.get("system")
    codes = code_systems.get(str(system)) if isinstance(system, str) else None
    code = coding.get("code")
    if codes is not None and (not isinstance(code, str) or code not in codes):
        issue(
            "unknown-code",
            f"code '{coding.get('code')}' is not in the CodeSystem {system}; add it to _project.yaml or fix the spelling",
            at=path,
        )


def _check_fhirpath(expression: Any, issue: Any) -> None:
    if not isinstance(expression, str) or not expression.strip():
        issue("fhirpath", "calculated needs a FHIRPath expression")
        return
    from rejection_fhir.fhirpath import syntax_error

    if (error := syntax_error(expression)) is not None:
        issue("fhirpath", f"the FHIRPath expression does not parse ({error})")
