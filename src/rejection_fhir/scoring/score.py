"""Scoring QuestionnaireResponses: standard instruments, generic weights, safety alerts.

Pure functions on plain dicts.  A response's free text never enters a score, a message
or a log line: only codes, weights and linkIds do.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rejection_fhir.scoring.instruments import PHQ9, Instrument
from rejection_fhir.scoring.model import SafetyAlert, Score
from rejection_fhir.scoring.tables import (
    ItemTable,
    QuestionnaireTable,
    build_table,
    questionnaire_table,
)

#: Without a Questionnaire, PHQ-9 item 9 is still known by these linkIds.
_ITEM9_LINK_IDS = ("phq9-9", "/44260-8", "44260-8")
_ITEM9_WANTED = frozenset(_ITEM9_LINK_IDS)


def answers_by_link(
    items: Any,
    wanted: frozenset[str] | None,
    out: dict[str, list[Mapping[str, Any]]] | None = None,
) -> dict[str, list[Mapping[str, Any]]]:
    """The answers to each linkId in ``wanted`` (every linkId when None), in document
    order, however deeply nested.

    A plain recursive loop rather than generators: it runs for every response a sync
    scores, and JSON gives dicts (``type(...) is dict`` first, Mapping for the rest).
    """
    if out is None:
        out = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if type(item) is not dict and not isinstance(item, Mapping):
            continue
        link_id = item.get("linkId")
        answers = item.get("answer")
        if answers and isinstance(answers, list):
            key: str | None = (
                link_id
                if isinstance(link_id, str) and (wanted is None or link_id in wanted)
                else None
            )
            for answer in answers:
                if type(answer) is not dict and not isinstance(answer, Mapping):
                    continue
                if key is not None:
                    found = out.get(key)
                    if found is None:
                        out[key] = [answer]
                    else:
                        found.append(answer)
                nested = answer.get("item")
                if nested:
                    answers_by_link(nested, wanted, out)
        nested = item.get("item")
        if nested:
            answers_by_link(nested, wanted, out)
    return out


def _coding(answer: Mapping[str, Any]) -> tuple[str | None, str] | None:
    coding = answer.get("valueCoding")
    # type() first: JSON gives dicts, and an ABC isinstance costs more than the rest.
    if type(coding) is dict or isinstance(coding, Mapping):
        code = coding.get("code")
        if isinstance(code, str):
            system = coding.get("system")
            return (system if isinstance(system, str) else None, code)
    return None


def _instrument_weight(
    instrument: Instrument, table: ItemTable | None, key: tuple[str | None, str]
) -> Decimal | None:
    """The instrument's own weight for its codes; otherwise the Questionnaire's weight, if
    it lies on the instrument's scale (an EHR may use its own answer codes)."""
    system, code = key
    if system is not None:
        own = instrument.answers.get((system, code))
        if own is not None:
            return Decimal(own)
    if table is not None:
        found = table.weights.get(key)
        if found is not None and 0 <= found[0] <= instrument.max_weight:
            return found[0]
    return None


def _prorated(total: Decimal, answered: int, count: int) -> Decimal:
    """Mean of the answered items × item count, to 2 decimals with halves rounded up.

    Exact rational arithmetic, then floor(x * 100 + 1/2) / 100: the same formula the
    Questionnaire's FHIRPath uses, so both give the same digits on every input.  With
    total = n/d: floor((n·count·100/(answered·d)) + 1/2) = (2·n·count·100 + answered·d)
    // (2·answered·d), in integers (Fraction would cost more than the rest of the score).
    """
    n, d = total.as_integer_ratio()
    hundredths = (2 * n * count * 100 + answered * d) // (2 * answered * d)
    return Decimal(hundredths) / Decimal(100)


def _score_instrument(
    instrument: Instrument,
    link_ids: tuple[str, ...],
    table: QuestionnaireTable,
    answers: Mapping[str, list[Mapping[str, Any]]],
) -> Score:
    total = Decimal(0)
    answered = 0
    missing: list[str] = []
    ambiguous = 0
    for link_id in link_ids:
        item_table = table.items.get(link_id)
        weight: Decimal | None = None
        weights = 0
        for answer in answers.get(link_id, ()):
            key = _coding(answer)
            if key is not None:
                found = _instrument_weight(instrument, item_table, key)
                if found is not None:
                    weight = found
                    weights += 1
        if weights == 1 and weight is not None:
            total += weight
            answered += 1
        else:
            ambiguous += weights > 1
            missing.append(link_id)
    count = len(link_ids)
    scale = f"scored 0-{instrument.max_weight}"
    note = f" ({ambiguous} with more than one answer, counted as unanswered)" if ambiguous else ""
    if not missing:
        value: Decimal | None = total
        method = f"sum of {count} items {scale} ({instrument.source})"
    elif len(missing) <= instrument.max_prorated:
        value = _prorated(total, answered, count)
        method = (
            f"prorated: mean of {answered} answered items × {count}, to 2 decimals; "
            f"{len(missing)} unanswered: {', '.join(missing)}{note} ({instrument.source})"
        )
    else:
        value = None
        allowed = (
            f"at most {instrument.max_prorated} may be unanswered"
            if instrument.max_prorated
            else f"all {count} must be answered"
        )
        method = (
            f"not scorable: {len(missing)} of {count} items unanswered{note}; {allowed} "
            f"({instrument.source})"
        )
    if instrument is PHQ9 and link_ids[-1] in missing:
        method += "; item 9 (self-harm) was not answered: ask about it directly"
    return Score(
        instrument=instrument.name,
        code=dict(instrument.total),
        value=value,
        interpretation=instrument.interpret(value) if value is not None else None,
        items_answered=answered,
        items_missing=len(missing),
        scorable=value is not None,
        method=method,
        missing_link_ids=tuple(missing),
    )


def _score_generic(
    table: QuestionnaireTable, answers: Mapping[str, list[Mapping[str, Any]]]
) -> Score:
    total = Decimal(0)
    answered = 0
    missing: list[str] = []
    for link_id in table.generic:
        weights = table.items[link_id].weights
        found = [
            weights[key][0]
            for a in answers.get(link_id, [])
            if (key := _coding(a)) is not None and key in weights
        ]
        if found:
            total += sum(found, Decimal(0))
            answered += 1
        elif not table.items[link_id].conditional:
            missing.append(link_id)
    scorable = answered > 0 and not missing
    return Score(
        instrument=table.title,
        code=dict(table.code) if table.code else None,
        value=total if scorable else None,
        interpretation=None,
        items_answered=answered,
        items_missing=len(missing),
        scorable=scorable,
        method=(
            f"sum of option weights over {len(table.generic)} weighted items "
            "(no instrument-specific rule: every weighted item must be answered; an "
            "unanswered item with enableWhen counts as not asked)"
        ),
        missing_link_ids=tuple(missing),
    )


def score_response(qr: Mapping[str, Any], questionnaire: Mapping[str, Any]) -> list[Score]:
    """Every score the response supports, standard instruments first.

    * Standard instruments (PHQ-9, GAD-7) are recognised by their LOINC item codes
      (``item.code`` or a LOINC linkId such as ``/44250-9``) in whatever Questionnaire
      carries them, or by our own linkIds in our own Questionnaires, and scored by the
      instrument's rules.
    * Any other items whose answer options carry weights (itemWeight / ordinalValue, on
      answerOption, the Coding, or a contained or expanded ValueSet) give one generic
      "sum of weights" score.
    """
    table = questionnaire_table(questionnaire)
    if not table.instruments and not table.generic:
        return []
    return _scores(table, answers_by_link(qr.get("item"), table.scored_link_ids))


def _scores(
    table: QuestionnaireTable, answers: Mapping[str, list[Mapping[str, Any]]]
) -> list[Score]:
    scores = [
        _score_instrument(instrument, link_ids, table, answers)
        for instrument, link_ids in table.instruments
    ]
    if table.generic:
        scores.append(_score_generic(table, answers))
    return scores


def score_and_alert(
    qr: Mapping[str, Any], table: QuestionnaireTable
) -> tuple[list[Score], list[SafetyAlert]]:
    """:func:`score_response` and :func:`safety_alerts` with the Questionnaire's table, in
    one walk of the response (none when the Questionnaire has nothing to score)."""
    if not table.scored_link_ids:
        return [], []
    answers = answers_by_link(qr.get("item"), table.scored_link_ids)
    return _scores(table, answers), _alerts(table, answers)


def _item9_message(display: str, weight: Decimal) -> str:
    return (
        "SAFETY: PHQ-9 item 9 (thoughts of being better off dead or of self-harm) was "
        f"answered '{display}' ({weight} on a 0-3 scale). A clinician must review this "
        "response promptly and assess risk, following the service's suicide-risk procedure. "
        "This tool does not monitor responses in real time."
    )


def safety_alerts(
    qr: Mapping[str, Any], questionnaire: Mapping[str, Any] | None
) -> list[SafetyAlert]:
    """At most one alert per response: PHQ-9 item 9 answered above "Not at all".

    Item 9 is known by its LOINC code (44260-8) in the Questionnaire, or by our linkId
    ``phq9-9`` in our PHQ-9; without a Questionnaire, by the linkIds ``phq9-9`` and
    ``/44260-8``.
    """
    if questionnaire is not None:
        table = questionnaire_table(questionnaire)
        if not table.item9_link_ids:
            return []
        return _alerts(table, answers_by_link(qr.get("item"), table.scored_link_ids))
    return _alerts(None, answers_by_link(qr.get("item"), _ITEM9_WANTED))


def _alerts(
    table: QuestionnaireTable | None, answers: Mapping[str, list[Mapping[str, Any]]]
) -> list[SafetyAlert]:
    link_ids = table.item9_link_ids if table is not None else _ITEM9_LINK_IDS
    worst: tuple[Decimal, str, tuple[str | None, str]] | None = None
    for link_id in link_ids:
        item_table = table.items.get(link_id) if table is not None else None
        for answer in answers.get(link_id, ()):
            if (key := _coding(answer)) is None:
                continue
            weight = _instrument_weight(PHQ9, item_table, key)
            if weight is not None and weight > 0 and (worst is None or weight > worst[0]):
                worst = (weight, link_id, key)
    if worst is None:
        return []
    weight, link_id, key = worst
    if key[0] is not None and (key[0], key[1]) in PHQ9.answer_displays:
        display = PHQ9.answer_displays[(key[0], key[1])]
    else:
        item_table = table.items.get(link_id) if table is not None else None
        display = item_table.weights[key][1] if item_table and key in item_table.weights else key[1]
    coding = {"code": key[1], "display": display}
    if key[0] is not None:
        coding = {"system": key[0], **coding}
    return [
        SafetyAlert(
            rule="phq-9-item-9",
            instrument=PHQ9.name,
            link_id=link_id,
            answer=coding,
            weight=weight,
            message=_item9_message(display, weight),
        )
    ]


__all__ = ["answers_by_link", "build_table", "safety_alerts", "score_and_alert", "score_response"]
