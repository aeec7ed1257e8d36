"""PHQ-9 item 9 (self-harm): one rule, read on every signal, never silent.

The rule (docs/instruments.md, "Safety"): when a response looks like a PHQ-9 (the form's
codes, a LOINC code in a linkId or path, the items' wording, or the PHQ answer codes) and
item 9 is answered above "Not at all" on any reading, it raises an alert; when it looks
like a PHQ-9 and item 9 cannot be read with certainty (not there, not answered, an answer
that is none of the four options), it raises an "unreadable" alert that every output shows
first, just as loudly.  A response that does not look like a PHQ-9 costs one lookup.

Answers are read from a Coding (with or without its system, by code, by weight, or by
display), a valueInteger / valueDecimal on the 0-3 scale, or a valueString ("2", "More
than half the days").  :func:`read_answer` says how sure each reading is: scores count
only exact readings (see :mod:`rejection_fhir.scoring.score`); safety counts every one.
Nothing here ever copies a client's free text into an alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rejection_fhir.scoring.instruments import (
    FREQUENCY_BY_DISPLAY,
    FREQUENCY_LL358_3,
    LOINC,
    PHQ9,
    PHQ9_ITEM9,
    normalise_text,
)
from rejection_fhir.scoring.model import SafetyAlert
from rejection_fhir.scoring.tables import WEIGHT_URLS, Answers, ItemTable, QuestionnaireTable

KIND_POSITIVE = "phq9-item9-positive"
KIND_UNREADABLE = "phq9-item9-unreadable"
RULE_POSITIVE = "phq-9-item-9"
RULE_UNREADABLE = "phq-9-item-9-unreadable"

#: (weight or None, caveat, the answer as shown in an alert).  An empty caveat is an exact
#: reading; a caveat with a weight is a reading only safety relies on; no weight: unreadable.
Reading = tuple[Decimal | None, str, dict[str, Any]]

_DISPLAYS = {code: display for code, (display, _) in FREQUENCY_LL358_3.items()}
_BY_UPPER = {code.upper(): code for code in FREQUENCY_LL358_3}
_ZERO_TO_THREE = {"0": 0, "1": 1, "2": 2, "3": 3}


def coding_weight(coding: Mapping[str, Any]) -> Decimal | None:
    """A weight the response's own Coding carries (itemWeight / ordinalValue / CO-value)."""
    extensions = coding.get("extension")
    for ext in extensions if isinstance(extensions, list) else ():
        if isinstance(ext, Mapping) and ext.get("url") in WEIGHT_URLS:
            value = ext.get("valueDecimal", ext.get("valueInteger"))
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                try:
                    number = Decimal(str(value))
                except ArithmeticError:
                    return None
                return number if number.is_finite() else None
    return None


def _on_scale(number: Decimal, top: int) -> bool:
    return 0 <= number <= top


def read_coding(coding: Mapping[str, Any], item: ItemTable | None, top: int) -> Reading:
    code = coding.get("code")
    system = coding.get("system")
    system = system if isinstance(system, str) else None
    display = coding.get("display")
    if isinstance(code, str):
        shown: dict[str, Any] = {"code": code}
        if system is not None:
            shown = {"system": system, "code": code}
        frequency = FREQUENCY_LL358_3.get(code)
        if frequency is not None:
            shown["display"] = frequency[0]
            weight = Decimal(frequency[1])
            if system == LOINC:
                return weight, "", shown
            if system is None:
                return weight, f"LOINC answer code {code} sent without its system", shown
            return weight, f"LOINC answer code {code} sent under another system", shown
        if item is not None:
            found = item.weights.get((system, code))
            if found is not None and _on_scale(found[0], top):
                shown["display"] = found[1]
                return found[0], "", shown
        own = coding_weight(coding)
        if own is not None and _on_scale(own, top):
            return own, "", shown
        if item is not None and system is None:
            found = item.by_code.get(code)
            if found is not None and _on_scale(found[0], top):
                shown["display"] = found[1]
                return found[0], f"code {code} sent without its system", shown
        upper = _BY_UPPER.get(code.upper())
        if upper is not None:
            shown["display"] = _DISPLAYS[upper]
            return (
                Decimal(FREQUENCY_LL358_3[upper][1]),
                f"code {code!r} matches {upper} only when case is ignored (codes are case-sensitive)",
                shown,
            )
        if item is not None:
            folded = item.folded.get(code.casefold())
            if folded is not None and _on_scale(item.by_code[folded][0], top):
                shown["display"] = item.by_code[folded][1]
                return (
                    item.by_code[folded][0],
                    f"code {code!r} matches {folded!r} only when case is ignored "
                    "(codes are case-sensitive)",
                    shown,
                )
    else:
        shown = {}
    if isinstance(display, str):
        weight_by_display = FREQUENCY_BY_DISPLAY.get(normalise_text(display))
        if weight_by_display is not None:
            shown["display"] = next(
                d for d, w in FREQUENCY_LL358_3.values() if w == weight_by_display
            )
            return Decimal(weight_by_display), "read from the answer's display", shown
    if isinstance(code, str):
        return None, f"the answer code {code[:40]!r} is none of the item's options", shown
    return None, "a Coding without a code", shown


def read_answer(answer: Mapping[str, Any], item: ItemTable | None, top: int = 3) -> Reading:
    """One answer to an item scored 0-``top``: what it says and how sure that is."""
    coding = answer.get("valueCoding")
    if type(coding) is dict or isinstance(coding, Mapping):
        return read_coding(coding, item, top)
    for key in ("valueInteger", "valueDecimal"):
        if key in answer:
            value = answer[key]
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = Decimal(str(value))
                shown = {key: int(number) if number == number.to_integral_value() else value}
                if number == number.to_integral_value() and _on_scale(number, top):
                    return number, f"read from {key} {int(number)} (a number, not a code)", shown
                return None, f"{key} {value} is not a whole number from 0 to {top}", shown
            return None, f"{key} is not a number", {}
    if "valueString" in answer:
        text = answer["valueString"]
        if isinstance(text, str):
            stripped = text.strip()
            if stripped in _ZERO_TO_THREE and _ZERO_TO_THREE[stripped] <= top:
                weight = _ZERO_TO_THREE[stripped]
                return Decimal(weight), "read from a text answer", {"valueString": stripped}
            by_display = FREQUENCY_BY_DISPLAY.get(normalise_text(text))
            if by_display is not None:
                display = next(d for d, w in FREQUENCY_LL358_3.values() if w == by_display)
                return Decimal(by_display), "read from a text answer", {"valueString": display}
        # Never the client's words: only that they are not one of the options.
        return None, "a text answer that is none of the four options", {}
    for key in answer:
        if key.startswith("value"):
            return None, f"answered with {key}, which cannot say how often", {}
    return None, "an answer without a value", {}


def _positive_message(display: str, weight: Decimal, caveat: str) -> str:
    how = f" ({caveat})" if caveat else ""
    return (
        "SAFETY: PHQ-9 item 9 (thoughts of being better off dead or of self-harm) was "
        f"answered '{display}' ({weight} on a 0-3 scale){how}. A clinician must review this "
        "response promptly and assess risk, following the service's suicide-risk procedure. "
        "This tool does not monitor responses in real time."
    )


#: Per weight of the LOINC frequency answers: (weight, the answer as read_coding shows it
#: but for its code, the alert's words); built once, not per alert.
_EXACT_POSITIVE: dict[int, tuple[Decimal, dict[str, Any], str]] = {
    weight: (
        Decimal(weight),
        {"system": LOINC, "code": "", "display": display},
        _positive_message(display, Decimal(weight), ""),
    )
    for display, weight in FREQUENCY_LL358_3.values()
}


def unreadable_message(why: str) -> str:
    return (
        f"SAFETY: could not check the self-harm item (PHQ-9 item 9): {why}. A clinician must "
        "ask about thoughts of being better off dead or of self-harm directly and assess "
        "risk, following the service's suicide-risk procedure. This tool does not monitor "
        "responses in real time."
    )


def check_item9(
    table: QuestionnaireTable,
    answers: Answers,
    *,
    unresolved: str = "",
) -> list[SafetyAlert]:
    """The item 9 rule on one response: at most one alert, [] when it is not a PHQ-9
    or item 9 says "Not at all"."""
    if not table.phq9_signal:
        return []
    worst: tuple[Decimal, str, str, dict[str, Any]] | None = None
    doubt: tuple[str, str, dict[str, Any]] | None = None
    worst_message: str | None = None  # the alert's words, when prebuilt
    answered = False
    for link_id in table.item9_link_ids:
        item = table.items.get(link_id)
        for answer in answers.get(link_id, ()):
            answered = True
            raw = answer.get("valueCoding")
            if type(raw) is dict:
                coding: dict[str, Any] = raw  # typed: direct dict calls when compiled
                code = coding.get("code") if coding.get("system") == LOINC else None
                frequency = FREQUENCY_LL358_3.get(code) if type(code) is str else None
                if frequency is not None:
                    if frequency[1] == 0:
                        continue  # "Not at all", read exactly: the common case
                    # A LOINC answer read exactly: what read_coding gives, prebuilt.
                    exact = _EXACT_POSITIVE[frequency[1]]
                    if worst is None or exact[0] > worst[0]:
                        worst = (exact[0], link_id, "", {**exact[1], "code": code})
                        worst_message = exact[2]
                    continue
            weight, caveat, shown = read_answer(answer, item)
            if weight is None:
                if doubt is None:
                    doubt = (link_id, caveat, shown)
            elif weight > 0 and (worst is None or weight > worst[0]):
                worst = (weight, link_id, caveat, shown)
                worst_message = None
    if worst is not None:
        weight, link_id, caveat, shown = worst
        display = str(shown.get("display") or shown.get("valueString") or weight)
        message = worst_message or _positive_message(display, weight, caveat)
        return [
            SafetyAlert(
                rule=RULE_POSITIVE,
                instrument=PHQ9.name,
                link_id=link_id,
                answer=shown,
                weight=weight,
                message=message,
                kind=KIND_POSITIVE,
            )
        ]
    looks = f"this response looks like a PHQ-9 ({table.phq9_signal})"
    if doubt is not None:
        link_id, why, shown = doubt
        reason = f"the answer to item 9 ({link_id}) could not be read: {why}"
        return [_unreadable(link_id, shown, reason)]
    if answered:
        return []  # every answer to item 9 read "Not at all"
    if table.item9_link_ids:
        reason = f"item 9 ({table.item9_link_ids[0]}) was not answered"
        return [_unreadable(table.item9_link_ids[0], {}, reason)]
    reason = f"{looks}, but no item in it could be identified as item 9 ({PHQ9_ITEM9})"
    if unresolved:
        reason += f"; {unresolved}"
    return [_unreadable(None, {}, reason)]


def _unreadable(link_id: str | None, shown: dict[str, Any], why: str) -> SafetyAlert:
    return SafetyAlert(
        rule=RULE_UNREADABLE,
        instrument=PHQ9.name,
        link_id=link_id,
        answer=shown,
        weight=None,
        message=unreadable_message(why),
        kind=KIND_UNREADABLE,
    )


__all__ = [
    "KIND_POSITIVE",
    "KIND_UNREADABLE",
    "RULE_POSITIVE",
    "RULE_UNREADABLE",
    "check_item9",
    "coding_weight",
    "read_answer",
    "unreadable_message",
]
