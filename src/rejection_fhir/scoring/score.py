"""Scoring QuestionnaireResponses: standard instruments, generic weights, safety alerts.

Pure functions on plain dicts.  A response's free text never enters a score, a message
or a log line: only codes, weights and linkIds do.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from rejection_fhir.scoring.instruments import INSTRUMENTS, LOINC, PHQ9, Instrument
from rejection_fhir.scoring.model import Interpretation, SafetyAlert, Score
from rejection_fhir.scoring.safety import check_item9, coding_weight, read_answer
from rejection_fhir.scoring.tables import (
    Answers,
    QuestionnaireTable,
    ValueSets,
    build_table,
    questionnaire_table,
    response_questionnaire,
)


def answers_by_link(
    items: Any,
    wanted: frozenset[str] | None,
    out: Answers | None = None,
) -> Answers:
    """The answers to each linkId in ``wanted`` (every linkId when None), in document
    order, however deeply nested.

    A plain recursive loop rather than generators: it runs for every response a sync
    scores.  JSON gives dicts, so items are handled as ``dict`` (typed so, which the
    compiled build turns into direct dict calls); any other Mapping is copied first.
    """
    if out is None:
        out = {}
    if not isinstance(items, list):
        return out
    for item in items:
        if type(item) is dict:
            _walk_item(item, wanted, out)
        elif isinstance(item, Mapping):
            _walk_item(dict(item), wanted, out)
    return out


def _walk_item(
    item: dict[str, Any],
    wanted: frozenset[str] | None,
    out: Answers,
) -> None:
    answers = item.get("answer")
    if answers and isinstance(answers, list):
        link_id = item.get("linkId")
        key: str | None = (
            link_id if isinstance(link_id, str) and (wanted is None or link_id in wanted) else None
        )
        for raw in answers:
            if type(raw) is dict:
                answer: dict[str, Any] = raw
            elif isinstance(raw, Mapping):
                answer = dict(raw)
            else:
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


def _coding(answer: Mapping[str, Any]) -> tuple[str | None, str] | None:
    coding = answer.get("valueCoding")
    # type() first: JSON gives dicts, and an ABC isinstance costs more than the rest.
    if type(coding) is dict or isinstance(coding, Mapping):
        code = coding.get("code")
        if isinstance(code, str):
            system = coding.get("system")
            return (system if isinstance(system, str) else None, code)
    return None


def _prorated(total: Decimal, answered: int, count: int, places: int = 0) -> Decimal:
    """Mean of the answered items × item count, to ``places`` decimals, halves rounded up.

    Exact rational arithmetic, then floor(x · 10^places + 1/2) / 10^places: the same
    formula the Questionnaire's FHIRPath uses, so both give the same digits on every input.
    With total = n/d and s = 10^places: floor(n·count·s/(answered·d) + 1/2) =
    (2·n·count·s + answered·d) // (2·answered·d), in integers (Fraction would cost more
    than the rest of the score).
    """
    n, d = total.as_integer_ratio()
    scale = 10**places
    scaled = (2 * n * count * scale + answered * d) // (2 * answered * d)
    return Decimal(scaled) / Decimal(scale) if places else Decimal(scaled)


#: Each instrument's LOINC answer codes → weight, for the common case (code lookups only).
_CODE_WEIGHTS: dict[str, dict[str, int]] = {
    instrument.key: {code: w for (system, code), w in instrument.answers.items() if system == LOINC}
    for instrument in INSTRUMENTS
}


#: Each instrument's band for each whole total, looked up rather than compared.
_BANDS: dict[str, list[Interpretation]] = {
    instrument.key: [
        instrument.interpret(Decimal(total))
        for total in range(len(instrument.items) * instrument.max_weight + 1)
    ]
    for instrument in INSTRUMENTS
}


#: The method of a complete score, per instrument (the same words every time).
_COMPLETE: dict[str, str] = {
    instrument.key: (
        f"sum of {len(instrument.items)} items scored 0-{instrument.max_weight} "
        f"({instrument.source})"
    )
    for instrument in INSTRUMENTS
}


def _band(instrument: Instrument, value: Decimal, whole: int) -> Interpretation:
    bands = _BANDS.get(instrument.key)
    if bands is not None and 0 <= whole < len(bands):
        return bands[whole]
    return instrument.interpret(value)


#: The method of a score with items missing and no notes, per instrument, item count and
#: items missing (see _incomplete_method).
_METHODS: dict[tuple[str, int, tuple[str, ...]], str] = {}


def _incomplete_method(
    instrument: Instrument,
    answered: int,
    count: int,
    missing: list[str],
    note: str,
    item9_missing: str | None,
) -> str:
    """How a score with items unanswered was reached: prorated, or why not scorable."""
    if len(missing) <= instrument.max_prorated:
        places = instrument.prorated_places
        rounded = "a whole number" if not places else f"{places} decimals"
        method = (
            f"estimated (prorated): mean of {answered} answered items × {count}, rounded to "
            f"{rounded}; {len(missing)} unanswered: {', '.join(missing)}{note} "
            f"({instrument.source})"
        )
    else:
        allowed = (
            f"at most {instrument.max_prorated} may be unanswered"
            if instrument.max_prorated
            else f"all {count} must be answered"
        )
        method = (
            f"not scorable: {len(missing)} of {count} items unanswered{note}; {allowed} "
            f"({instrument.source})"
        )
    if item9_missing is not None:
        method += "; item 9 (self-harm) was not answered: ask about it directly"
    return method


def _score_instrument(
    instrument: Instrument,
    link_ids: tuple[str, ...],
    table: QuestionnaireTable,
    answers: Answers,
) -> Score:
    """The instrument's rule over its items.  Only exact readings count (the instrument's
    codes with their system, the form's weighted codes, a weight on the response's own
    Coding); any other reading leaves the item unanswered and says why in the method."""
    # Whole weights (the instrument's own codes: nearly every answer) add up as ints;
    # Decimal arithmetic only for weights read otherwise.
    whole = 0
    fraction = Decimal(0)
    answered = 0
    missing: list[str] = []
    ambiguous = 0
    notes: list[str] = []
    top = instrument.max_weight
    own_codes = _CODE_WEIGHTS.get(instrument.key) or {}
    for link_id in link_ids:
        weight_int = -1
        weight: Decimal | None = None
        weights = 0
        for answer in answers.get(link_id, ()):
            # The common case first, without building a reading: the instrument's own code.
            raw = answer.get("valueCoding")
            if type(raw) is dict:
                coding: dict[str, Any] = raw  # typed: direct dict calls when compiled
                code = coding.get("code") if coding.get("system") == LOINC else None
                own = own_codes.get(code) if type(code) is str else None
                if own is not None:
                    weight_int, weight = own, None
                    weights += 1
                    continue
            found, caveat, _ = read_answer(answer, table.items.get(link_id), top)
            if found is not None and not caveat:
                weight_int, weight = -1, found
                weights += 1
            elif caveat and len(notes) < 3:
                notes.append(f"{link_id}: {caveat}, not scored")
        if weights == 1 and (weight_int >= 0 or weight is not None):
            if weight is not None:
                fraction += weight
            else:
                whole += weight_int
            answered += 1
        else:
            ambiguous += weights > 1
            missing.append(link_id)
    total = fraction + whole if fraction else Decimal(whole)
    count = len(link_ids)
    prorated = False
    if not missing:
        # The common case: a complete response, with its band looked up by total.
        return Score(
            instrument.name,
            instrument.total,
            total,
            _band(instrument, total, whole if not fraction else -1),
            answered,
            0,
            True,
            _COMPLETE[instrument.key],
            (),
            False,
            instrument.panel["code"],
            None,
        )
    note = f" ({ambiguous} with more than one answer, counted as unanswered)" if ambiguous else ""
    if notes:
        note += " (" + "; ".join(notes) + ")"
    missing_t = tuple(missing)
    item9_missing = link_ids[-1] if instrument is PHQ9 and link_ids[-1] in missing else None
    prorated = len(missing) <= instrument.max_prorated
    # The same words for every response with the same items missing (and no notes):
    # built once, not per response.
    key = (instrument.key, count, missing_t)
    method = _METHODS.get(key) if not note else None
    if method is None:
        method = _incomplete_method(instrument, answered, count, missing, note, item9_missing)
        if not note and len(_METHODS) < 4096:  # bounded: linkIds come from Questionnaires
            _METHODS[key] = method
    value: Decimal | None = None
    interpretation: Interpretation | None = None
    if prorated:
        places = instrument.prorated_places
        if not fraction and not places:
            # Whole weights, a whole result (PHQ-9, GAD-7): _prorated in ints, and the
            # band looked up.
            scaled = (2 * whole * count + answered) // (2 * answered)
            value = Decimal(scaled)
            interpretation = _band(instrument, value, scaled)
        else:
            value = _prorated(total, answered, count, places)
            interpretation = _band(instrument, value, -1)
    return Score(
        instrument=instrument.name,
        code=instrument.total,
        value=value,
        interpretation=interpretation,
        items_answered=answered,
        items_missing=len(missing),
        scorable=value is not None,
        method=method,
        missing_link_ids=missing_t,
        prorated=prorated,
        panel_code=instrument.panel["code"],
        item9_missing=item9_missing,
    )


def _score_generic(table: QuestionnaireTable, answers: Answers) -> Score:
    total = Decimal(0)
    answered = 0
    missing: list[str] = []
    notes: list[str] = []
    for link_id in table.generic:
        item = table.items[link_id]
        weights = item.weights
        found: list[Decimal] = []
        for a in answers.get(link_id, []):
            key = _coding(a)
            if key is None:
                continue
            if key in weights:
                found.append(weights[key][0])
                continue
            own = _own_weight(a)
            if own is not None:
                found.append(own)  # a weight on the response's own Coding
            elif key[1].casefold() in item.folded and len(notes) < 3:
                notes.append(
                    f"{link_id}: code {key[1]!r} matches {item.folded[key[1].casefold()]!r} "
                    "only when case is ignored (codes are case-sensitive), not scored"
                )
        if found:
            total += sum(found, Decimal(0))
            answered += 1
        elif not item.conditional:
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
            ("" if scorable else f"not scorable: {len(missing)} weighted items unanswered; ")
            + f"sum of option weights over {len(table.generic)} weighted items "
            "(no instrument-specific rule: every weighted item must be answered; an "
            "unanswered item with enableWhen counts as not asked)"
            + ("; " + "; ".join(notes) if notes else "")
        ),
        missing_link_ids=tuple(missing),
    )


def score_response(
    qr: Mapping[str, Any],
    questionnaire: Mapping[str, Any],
    *,
    value_sets: ValueSets | None = None,
) -> list[Score]:
    """Every score the response supports, standard instruments first.

    * Standard instruments (PHQ-9, GAD-7) are recognised by their LOINC item codes
      (``item.code`` or a LOINC linkId such as ``/44250-9``) in whatever Questionnaire
      carries them, or by our own linkIds in our own Questionnaires, and scored by the
      instrument's rules.
    * Any other items whose answer options carry weights (itemWeight / ordinalValue, on
      answerOption, the Coding, or a contained or expanded ValueSet) give one generic
      "sum of weights" score.

    ``value_sets`` lend weights to options from ValueSets the Questionnaire does not
    contain (by canonical).
    """
    table = questionnaire_table(questionnaire, value_sets)
    if not table.instruments and not table.generic:
        return []
    return _scores(table, answers_by_link(qr.get("item"), table.scored_link_ids))


def _scores(table: QuestionnaireTable, answers: Answers) -> list[Score]:
    scores = [
        _score_instrument(instrument, link_ids, table, answers)
        for instrument, link_ids in table.instruments
    ]
    if table.generic:
        scores.append(_score_generic(table, answers))
    return scores


def _own_weight(answer: Mapping[str, Any]) -> Decimal | None:
    coding = answer.get("valueCoding")
    if isinstance(coding, Mapping):
        return coding_weight(coding)
    return None


def score_and_alert(
    qr: Mapping[str, Any],
    table: QuestionnaireTable,
    *,
    unresolved: str = "",
    answers: Answers | None = None,
) -> tuple[list[Score], list[SafetyAlert]]:
    """:func:`score_response` and :func:`safety_alerts` with the Questionnaire's table, in
    one walk of the response (none when the form has nothing to score and does not look
    like a PHQ-9: most worksheets).  ``answers``: the answers to the table's scored
    linkIds, as :func:`answers_by_link` finds them, when another walk already collected
    them (the summary's, see ``ResolvedResponse.recorded_answers``)."""
    if not table.scored_link_ids:
        if table.phq9_signal:
            return [], check_item9(table, {}, unresolved=unresolved)
        return [], []
    if answers is None:
        answers = answers_by_link(qr.get("item"), table.scored_link_ids)
    return _scores(table, answers), check_item9(table, answers, unresolved=unresolved)


def response_table(
    qr: Mapping[str, Any],
    fallback: Mapping[str, Any] | None = None,
    value_sets: ValueSets | None = None,
) -> QuestionnaireTable:
    """A scoring table read from the response itself, for when its Questionnaire cannot be
    resolved: its linkIds, paths, item texts and answer codes are the signals, and the
    items a known version of the same Questionnaire (``fallback``) defines lend their
    codes and weights (built per response, never cached)."""
    return build_table(response_questionnaire(qr, fallback), value_sets)


def assess(
    qr: Mapping[str, Any],
    table: QuestionnaireTable | None,
    *,
    fallback: Mapping[str, Any] | None = None,
    value_sets: ValueSets | None = None,
) -> tuple[list[Score], list[SafetyAlert]]:
    """Scores and safety alerts for a response, with or without its Questionnaire.

    ``table`` is the Questionnaire's table when it resolved; otherwise the response is
    read on its own signals, lent the items of ``fallback`` (another version of the same
    Questionnaire) when there is one."""
    if table is not None:
        return score_and_alert(qr, table)
    canonical = qr.get("questionnaire")
    unresolved = ""
    if isinstance(canonical, str) and canonical:
        unresolved = f"its Questionnaire {canonical[:200]} is not available"
        if fallback is not None:
            unresolved += f" (read with version {fallback.get('version')!s:.40} instead)"
    return score_and_alert(qr, response_table(qr, fallback, value_sets), unresolved=unresolved)


def safety_alerts(
    qr: Mapping[str, Any],
    questionnaire: Mapping[str, Any] | None,
    *,
    value_sets: ValueSets | None = None,
) -> list[SafetyAlert]:
    """The item 9 rule (docs/instruments.md, "Safety"): at most one alert per response,
    positive or unreadable.  Without a Questionnaire the response's own linkIds, texts and
    answer codes are the signals."""
    table = questionnaire_table(questionnaire, value_sets) if questionnaire is not None else None
    return assess(qr, table, value_sets=value_sets)[1]


__all__ = [
    "answers_by_link",
    "assess",
    "build_table",
    "response_table",
    "safety_alerts",
    "score_and_alert",
    "score_response",
]
