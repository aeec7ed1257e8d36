"""A client's progress report as plain values, built from the resources the sync wrote.

Pure: lists of plain dicts (Observations, DocumentReferences, Flags as read from the EHR)
in, one :class:`Report` out.  Nothing here trusts the server: a resource for another
patient, one we did not write, or one without a readable date or number is left out and
counted, never guessed at.  Rendering lives in :mod:`rejection_fhir.report.page`, the
measures (titles, scales, bands) in :mod:`rejection_fhir.report.measures`.

Safety alerts come from active Flags and, where the EHR keeps no Flag, from the notes the
sync titled ``SAFETY ALERT: ...`` (:func:`_note_alerts`): both go in the same red box.  What
the server would not let be read (``not_read``, from the command's searches) becomes
sentences the page shows, and decides what the safety section may claim.

About 700 lines: every check of what the server sent (patient, ours, status, dates,
attachments) stays beside the one builder that relies on it, so that what the report
leaves out is decided, and counted, in one place.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rejection_fhir.ehr.entries import DERIVED_SYSTEM
from rejection_fhir.ehr.flag import SAFETY_ANSWER_EXTENSION
from rejection_fhir.ehr.note import LOINC, NOTE_TYPE, SAFETY_TITLE_PREFIX
from rejection_fhir.ehr.observations import SURVEY
from rejection_fhir.fhir.json import as_list
from rejection_fhir.report.measures import (
    ChartBand,
    Measure,
    MeasureTable,
    band_for,
    generic_measure,
    measure_table,
)
from rejection_fhir.report.notes import (
    Block,
    blocks_from_markdown,
    blocks_from_text,
    blocks_from_xhtml,
    drop_front_matter,
    is_alert_paragraph,
)

#: Observation statuses that carry a usable result (R4 ObservationStatus).
USABLE_STATUSES = frozenset({"final", "amended", "corrected"})
#: A note's markdown larger than this is cut: a report is read, not an archive.
MAX_NOTE_CHARS = 200_000

_FHIR_DATETIME = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class When:
    """A FHIR date or dateTime: the instant for ordering and plotting, the text as written."""

    instant: datetime
    text: str

    @property
    def date(self) -> str:
        return self.text[:10]

    @property
    def display(self) -> str:
        """``2026-11-20 10:14`` in the writer's own clock time (no conversion to confuse)."""
        return self.text[:10] + (f" {self.text[11:16]}" if len(self.text) >= 16 else "")


def parse_when(value: object) -> When | None:
    """A FHIR date/dateTime/instant, or None.  A missing zone is read as UTC (FHIR says the
    zone is required when a time is given; a server that drops it still gets plotted)."""
    if not isinstance(value, str):
        return None
    match = _FHIR_DATETIME.match(value.strip())
    if not match:
        return None
    parts = match.groupdict()
    try:
        instant = datetime(
            int(parts["y"]),
            int(parts["m"] or 1),
            int(parts["d"] or 1),
            int(parts["H"] or 0),
            int(parts["M"] or 0),
            int(parts["S"] or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    zone = parts["tz"]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * (int(zone[1:3]) * 60 + int(zone[4:6]))
        instant = datetime.fromtimestamp(instant.timestamp() - offset * 60, UTC)
    return When(instant, value.strip())


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def format_number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"


# --------------------------------------------------------------------------- report parts


@dataclass(frozen=True)
class Point:
    when: When
    value: float
    series: str
    #: The Observation's interpretation, e.g. "Moderate depression (10-14)".
    interpretation: str = ""
    #: The measure's band the value falls in (scores only).
    band: ChartBand | None = None
    #: A safety Flag was raised by the same response (same moment).
    flagged: bool = False


@dataclass(frozen=True)
class Series:
    #: "" for the one series of a plain measure; the instance ("Hurt") otherwise.
    name: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Chart:
    """One Observation code over time: one line per instance, in time order."""

    key: str
    measure: Measure
    series: tuple[Series, ...]

    @property
    def points(self) -> tuple[Point, ...]:
        return tuple(
            sorted(
                (p for s in self.series for p in s.points),
                key=lambda p: (p.when.instant, p.series),
            )
        )


@dataclass(frozen=True)
class FlagItem:
    text: str
    detail: str
    since: When | None
    ours: bool
    #: "flag" (a Flag), or "note": the alert of a note titled "SAFETY ALERT: ...", which
    #: the sync writes where the EHR takes no Flag.
    kind: str = "flag"


@dataclass(frozen=True)
class WorksheetNote:
    title: str
    when: When | None
    amended: bool
    blocks: tuple[Block, ...]
    #: Where the summary came from: "markdown", "narrative", "text" or "" (nothing readable).
    source: str
    ours: bool


@dataclass(frozen=True)
class Report:
    patient: str
    generated_at: datetime
    server: str | None = None
    #: From the Patient resource, so the reader can check whose report this is.
    patient_name: str | None = None
    birth_date: str | None = None
    #: Sentences every safety flag repeats (what to do about one): shown once, not per flag.
    safety_advice: tuple[str, ...] = ()
    safety_flags: tuple[FlagItem, ...] = ()
    other_flags: tuple[FlagItem, ...] = ()
    charts: tuple[Chart, ...] = ()
    worksheets: tuple[WorksheetNote, ...] = ()
    #: Resources the server returned that the report leaves out, by reason.
    left_out: Mapping[str, int] = field(default_factory=dict)
    #: What could not be read from this EHR and what that means, one sentence each.
    not_read: tuple[str, ...] = ()
    #: Whether Flags, and notes, could be read (else the safety section says so).
    flags_read: bool = True
    notes_read: bool = True

    @property
    def empty(self) -> bool:
        return not (self.safety_flags or self.other_flags or self.charts or self.worksheets)

    @property
    def period(self) -> tuple[When, When] | None:
        moments = [p.when for c in self.charts for p in c.points]
        moments += [n.when for n in self.worksheets if n.when is not None]
        moments += [f.since for f in (*self.safety_flags, *self.other_flags) if f.since]
        if not moments:
            return None
        return (
            min(moments, key=lambda w: w.instant),
            max(moments, key=lambda w: w.instant),
        )


# --------------------------------------------------------------------------- building


def patient_reference(patient: str) -> str:
    """``123`` or ``Patient/123`` -> ``Patient/123``."""
    return patient if patient.startswith("Patient/") else f"Patient/{patient}"


def _about(resource: Mapping[str, Any], patient: str) -> bool:
    """The resource's subject is this patient (relative or absolute reference)."""
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, Mapping) else None
    if not isinstance(reference, str):
        return False
    reference = reference.split("/_history/", 1)[0]
    return reference == patient or reference.endswith("/" + patient)


def _ours(resource: Mapping[str, Any]) -> bool:
    return any(
        isinstance(i, Mapping) and i.get("system") == DERIVED_SYSTEM
        for i in as_list(resource.get("identifier"))
    )


def _codings(concept: object) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [c for c in as_list(concept.get("coding")) if isinstance(c, Mapping)]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _has_coding(concept: object, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in _codings(concept))


class _Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def of_patient(
        self, resources: Iterable[Mapping[str, Any]], resource_type: str, what: str, patient: str
    ) -> Iterator[Mapping[str, Any]]:
        """The resources of ``resource_type`` about ``patient``; the rest are counted, since
        a server may ignore a search parameter and send what we did not ask for."""
        for resource in resources:
            if resource.get("resourceType") != resource_type:
                self.add(f"not {what}")
            elif not _about(resource, patient):
                self.add("for another patient")
            else:
                yield resource


def _unique(resources: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Drop repeats: a page boundary that moves while we read can return one twice."""
    seen: set[tuple[str, str]] = set()
    out = []
    for resource in resources:
        rid = resource.get("id")
        key = (_text(resource.get("resourceType")), rid) if isinstance(rid, str) else None
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.append(resource)
    return out


def _observation_value(observation: Mapping[str, Any]) -> float | None:
    quantity = observation.get("valueQuantity")
    if isinstance(quantity, Mapping):
        return _number(quantity.get("value"))
    return _number(observation.get("valueInteger"))


def _effective(resource: Mapping[str, Any]) -> When | None:
    when = parse_when(resource.get("effectiveDateTime")) or parse_when(
        resource.get("effectiveInstant")
    )
    period = resource.get("effectivePeriod")
    if when is None and isinstance(period, Mapping):
        when = parse_when(period.get("start"))
    return when


def _series_name(concept: Mapping[str, Any], coding: Mapping[str, Any]) -> str:
    """The instance a trended answer belongs to: ``Intensity ... (0-10): Hurt`` -> Hurt."""
    text, display = _text(concept.get("text")), _text(coding.get("display"))
    if display and text.startswith(display + ": "):
        return text[len(display) + 2 :]
    return ""


def _interpretation(observation: Mapping[str, Any]) -> str:
    for concept in as_list(observation.get("interpretation")):
        if not isinstance(concept, Mapping):
            continue
        if text := _text(concept.get("text")):
            return text
        for coding in _codings(concept):
            if display := _text(coding.get("display")):
                return display
    return ""


def _charts(
    observations: Sequence[Mapping[str, Any]], patient: str, tally: _Tally, table: MeasureTable
) -> list[Chart]:
    grouped: dict[tuple[str, str], list[Point]] = {}
    titles: dict[tuple[str, str], str] = {}
    for observation in tally.of_patient(observations, "Observation", "an Observation", patient):
        if not _ours(observation):
            tally.add("not written by rejection-fhir")
            continue
        if _text(observation.get("status")) not in USABLE_STATUSES:
            tally.add("not final (e.g. entered in error)")
            continue
        if not _has_coding(
            {"coding": [c for cat in as_list(observation.get("category")) for c in _codings(cat)]},
            SURVEY["system"],
            SURVEY["code"],
        ):
            tally.add("not a survey Observation")
            continue
        concept = observation.get("code")
        concept = concept if isinstance(concept, Mapping) else {}
        codings = _codings(concept)
        value = _observation_value(observation)
        when = _effective(observation)
        if value is None or when is None:
            tally.add("no number or no date")
            continue
        coding = codings[0] if codings else {}
        key = (_text(coding.get("system")), _text(coding.get("code")))
        if not key[1]:
            key = ("", _text(concept.get("text")) or "Unnamed measure")
        measure = table.get(key)
        titles.setdefault(key, _text(concept.get("text")) or _text(coding.get("display")))
        band = band_for(measure, value) if measure is not None else None
        interpretation = _interpretation(observation) or (band.label if band else "")
        instance = _series_name(concept, coding) if measure is None or not measure.bands else ""
        grouped.setdefault(key, []).append(Point(when, value, instance, interpretation, band))

    charts = []
    for key, points in grouped.items():
        measure = table.get(key)
        values = [p.value for p in points]
        if measure is None:
            measure = generic_measure(key[0], key[1], titles[key] or key[1], values)
        elif max(values) > measure.y_max or min(values) < measure.y_min:
            # A value off the published scale is shown where it is, not clipped to look normal.
            measure = replace(
                measure, y_min=min(measure.y_min, *values), y_max=max(measure.y_max, *values)
            )
        names = sorted({p.series for p in points}, key=lambda n: (n == "", n.casefold()))
        series = tuple(
            Series(
                name,
                tuple(
                    sorted((p for p in points if p.series == name), key=lambda p: p.when.instant)
                ),
            )
            for name in names
        )
        charts.append(Chart("|".join(key), measure, series))
    charts.sort(key=lambda c: (c.measure.order, c.measure.title.casefold()))
    return charts


def _flags(
    flags: Sequence[Mapping[str, Any]], patient: str, tally: _Tally
) -> tuple[list[FlagItem], list[FlagItem]]:
    safety: list[FlagItem] = []
    other: list[FlagItem] = []
    for flag in tally.of_patient(flags, "Flag", "a Flag", patient):
        if flag.get("status") != "active":
            tally.add("flag not active")
            continue
        concept = flag.get("code")
        concept = concept if isinstance(concept, Mapping) else {}
        displays = [_text(c.get("display")) for c in _codings(concept)]
        text = _text(concept.get("text")) or next((d for d in displays if d), "") or "(no text)"
        detail = next((d for d in displays if d and d != text), "")
        if _ours(flag):
            # The sync codes the risk (or "could not be checked") and keeps the answer in
            # an extension; Flags from earlier versions carried the answer as the code.
            detail = _flag_answer(flag) or next(
                (
                    _text(c.get("display"))
                    for c in _codings(concept)
                    if c.get("system") == "http://loinc.org" and c.get("display")
                ),
                "",
            )
        period = flag.get("period")
        since = parse_when(period.get("start")) if isinstance(period, Mapping) else None
        ours = _ours(flag)
        item = FlagItem(text, f"Answer: {detail}" if ours and detail else detail, since, ours)
        (safety if ours else other).append(item)
    return sorted(safety, key=_newest_first), sorted(other, key=_newest_first)


# One sentence ends where ". " (or "! ", "? ") meets a capital letter.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _shared_advice(flags: list[FlagItem]) -> tuple[list[FlagItem], tuple[str, ...]]:
    """The flags without the sentences all of them repeat after their first, and those.

    Our safety Flags carry one message: what was answered, then the same long advice
    (review promptly, follow the suicide-risk procedure, no real-time monitoring).  The
    page shows the advice once per section instead of under every flag.  A sentence that
    quotes a flag's answer is never taken away from its flag.
    """
    if not flags:
        return flags, ()
    split = [_SENTENCE_END.split(flag.text) for flag in flags]
    answers = [f.detail.removeprefix("Answer: ") for f in flags if f.detail]
    shared = tuple(
        sentence
        for sentence in split[0][1:]
        if all(sentence in parts[1:] for parts in split[1:])
        and not any(answer in sentence for answer in answers)
    )
    if not shared:
        return flags, ()
    trimmed = [
        replace(flag, text=" ".join(part for part in parts if part not in shared))
        for flag, parts in zip(flags, split, strict=True)
    ]
    return trimmed, shared


#: A name or date from the server, cut to a length a header can show.
_MAX_NAME = 200


def _patient_details(
    resource: Mapping[str, Any] | None, reference: str
) -> tuple[str | None, str | None]:
    """(name, birth date) from the Patient resource, if it is this patient's."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Patient":
        return None, None
    if f"Patient/{resource.get('id')}" != reference:
        return None, None
    names = [n for n in as_list(resource.get("name")) if isinstance(n, Mapping)]
    names.sort(key=lambda n: {"official": 0, "usual": 1}.get(_text(n.get("use")), 2))
    name = None
    for candidate in names:
        text = _text(candidate.get("text")).strip()
        if not text:
            given = [g for g in as_list(candidate.get("given")) if isinstance(g, str)]
            text = " ".join([*given, _text(candidate.get("family"))]).strip()
        if text:
            name = " ".join(text.split())[:_MAX_NAME]
            break
    birth = _text(resource.get("birthDate")).strip()[:_MAX_NAME] or None
    return name, birth


def _flag_answer(flag: Mapping[str, Any]) -> str:
    """The answer the sync's ``safety-answer`` extension records, as a short text."""
    for ext in as_list(flag.get("extension")):
        if not isinstance(ext, Mapping) or ext.get("url") != SAFETY_ANSWER_EXTENSION:
            continue
        coding = ext.get("valueCoding")
        if isinstance(coding, Mapping):
            return _text(coding.get("display")) or _text(coding.get("code"))
        for key, value in ext.items():
            if key.startswith("value") and isinstance(value, str | int | float):
                return str(value)
    return ""


def _newest_first(flag: FlagItem) -> float:
    return -flag.since.instant.timestamp() if flag.since else math.inf


def _attachment_text(document: Mapping[str, Any], content_type: str) -> str | None:
    for content in as_list(document.get("content")):
        attachment = content.get("attachment") if isinstance(content, Mapping) else None
        if not isinstance(attachment, Mapping):
            continue
        kind = _text(attachment.get("contentType")).split(";")[0].strip().lower()
        data = attachment.get("data")
        if kind != content_type or not isinstance(data, str):
            continue  # an attachment by url is not fetched: the report reads only this server
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            continue
        return raw[: MAX_NOTE_CHARS * 4].decode("utf-8", errors="replace")[:MAX_NOTE_CHARS]
    return None


def _note(document: Mapping[str, Any]) -> WorksheetNote:
    # The XHTML narrative and attachment are ignored when markdown is there: a
    # DocumentReference on the server may be someone else's, so no markup from it is ever
    # passed on.  The markdown is parsed as data into blocks whose every character is
    # escaped on output; the only tags in the page are the ones page.py writes.  That is
    # safer than sanitising foreign XHTML, which means trusting an XML parser with hostile
    # input and keeping an allow-list of elements and attributes exactly right.
    title = _text(document.get("description"))
    if not title:
        for content in as_list(document.get("content")):
            attachment = content.get("attachment") if isinstance(content, Mapping) else None
            if isinstance(attachment, Mapping) and (title := _text(attachment.get("title"))):
                break
    markdown = _attachment_text(document, "text/markdown")
    source = "markdown"
    blocks: tuple[Block, ...] = ()
    if markdown is not None:
        blocks = blocks_from_markdown(markdown)
    else:
        narrative = document.get("text")
        div = narrative.get("div") if isinstance(narrative, Mapping) else None
        xhtml = div if isinstance(div, str) else _attachment_text(document, "application/xhtml+xml")
        if xhtml is not None:
            blocks = blocks_from_xhtml(xhtml[:MAX_NOTE_CHARS])
            source = "narrative"
        elif (plain := _attachment_text(document, "text/plain")) is not None:
            # The only rendering where the EHR takes nothing else (Epic's notes).
            blocks = blocks_from_text(plain)
            source = "text"
    if not title and blocks and blocks[0].kind == "heading":
        title = blocks[0].text
    blocks = drop_front_matter(blocks, title)
    if not blocks:
        source = ""
    context = document.get("context")
    period = context.get("period") if isinstance(context, Mapping) else None
    when = parse_when(document.get("date")) or (
        parse_when(period.get("start")) if isinstance(period, Mapping) else None
    )
    return WorksheetNote(
        title=title or "Worksheet",
        when=when,
        amended=document.get("docStatus") == "amended",
        blocks=blocks,
        source=source,
        ours=_ours(document),
    )


def _notes(
    documents: Sequence[Mapping[str, Any]], patient: str, tally: _Tally
) -> list[WorksheetNote]:
    notes = []
    for document in tally.of_patient(
        documents, "DocumentReference", "a DocumentReference", patient
    ):
        if document.get("status") != "current":
            tally.add("note superseded or entered in error")
            continue
        if not _has_coding(document.get("type"), LOINC, NOTE_TYPE["code"]):
            tally.add("not a questionnaire response note")
            continue
        notes.append(_note(document))
    return sorted(
        notes,
        key=lambda n: n.when.instant.timestamp() if n.when else -math.inf,
        reverse=True,
    )


def _note_alerts(notes: Sequence[WorksheetNote]) -> list[FlagItem]:
    """The safety alerts of the notes titled ``SAFETY ALERT: ...``: where the EHR takes no
    Flag the sync puts the alert at the top of the note and in its title
    (:func:`rejection_fhir.ehr.note.mark_safety_alert`); the report shows them as loudly
    as Flags.  The alert's text is the note's own alert lines, else its title."""
    alerts = []
    for note in notes:
        if not note.title.startswith(SAFETY_TITLE_PREFIX):
            continue
        lines = [
            block.text.strip().removeprefix("ALERT:").strip()
            for block in note.blocks
            if block.kind == "alert" or is_alert_paragraph(block)
        ]
        title = note.title.removeprefix(SAFETY_TITLE_PREFIX).strip() or "Worksheet"
        text = " ".join(line for line in lines if line) or title
        alerts.append(FlagItem(text, f"In the note: {title}", note.when, note.ours, "note"))
    return alerts


#: What a resource type the report could not read means for the reader.
_NOT_READ = {
    "Flag": "Flags: {reason}. This EHR keeps no Flags from rejection-fhir: the sync puts "
    "each safety alert at the top of the note, titled \u201cSAFETY ALERT:\u201d, and the "
    "safety section above shows those.",
    "DocumentReference": "Worksheet notes: {reason}. Neither the notes nor a safety alert "
    "kept in a note could be read.",
    "Observation": "Scores and trends: {reason}. Where a note could be read, it carries "
    "the scores.",
}


def _not_read(reasons: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(
        _NOT_READ.get(kind, kind + ": {reason}.").format(reason=reason)
        for kind, reason in reasons.items()
    )


def _mark_flagged(charts: list[Chart], safety: Sequence[FlagItem]) -> list[Chart]:
    """Mark the scores whose response raised a safety Flag: the sync dates both with the
    response's ``authored``, so the same instant means the same response."""
    moments = {f.since.instant for f in safety if f.since is not None}
    if not moments:
        return charts
    out = []
    for chart in charts:
        if not chart.measure.bands:
            out.append(chart)
            continue
        series = tuple(
            replace(
                s, points=tuple(replace(p, flagged=p.when.instant in moments) for p in s.points)
            )
            for s in chart.series
        )
        out.append(replace(chart, series=series))
    return out


def build_report(
    patient: str,
    *,
    observations: Iterable[Mapping[str, Any]] = (),
    documents: Iterable[Mapping[str, Any]] = (),
    flags: Iterable[Mapping[str, Any]] = (),
    generated_at: datetime,
    server: str | None = None,
    patient_resource: Mapping[str, Any] | None = None,
    measures: Iterable[Measure] = (),
    not_read: Mapping[str, str] | None = None,
) -> Report:
    """The report for *patient* (``id`` or ``Patient/id``) from what the server returned.

    ``patient_resource`` (the Patient as read from the server) gives the name and birth
    date shown beside the id; a Patient with another id is ignored.  ``measures`` title
    and scale the worksheets' trended answers (``Catalog.measures``: keyed on the CodeSystem
    the worksheets were built with); the instruments' scores need none.  ``not_read``
    names the resource types the server would not let be read, with why: the page says
    so, and the safety section says where alerts are kept instead.
    """
    reference = patient_reference(patient)
    tally = _Tally()
    charts = _charts(_unique(observations), reference, tally, measure_table(measures))
    safety, other = _flags(_unique(flags), reference, tally)
    notes = _notes(_unique(documents), reference, tally)
    safety = sorted([*safety, *_note_alerts(notes)], key=_newest_first)
    charts = _mark_flagged(charts, safety)
    safety, advice = _shared_advice(safety)
    name, birth = _patient_details(patient_resource, reference)
    return Report(
        patient=reference,
        generated_at=generated_at,
        server=server,
        patient_name=name,
        birth_date=birth,
        safety_advice=advice,
        safety_flags=tuple(safety),
        other_flags=tuple(other),
        charts=tuple(charts),
        worksheets=tuple(notes),
        left_out=dict(sorted(tally.counts.items())),
        not_read=_not_read(not_read or {}),
        flags_read="Flag" not in (not_read or {}),
        notes_read="DocumentReference" not in (not_read or {}),
    )
