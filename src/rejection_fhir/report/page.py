"""The report as one self-contained HTML page: no scripts, no external assets, prints well.

The header names the client (name and birth date from the Patient resource, beside the
id).  Order is the clinician's: safety first (a red box that cannot be missed, or a plain
statement that no flag is active), then scores and trends (a chart, its latest value and
change, and a table of every value), then the worksheets, newest first.

Nothing from the server becomes markup: every string passes through
:func:`~rejection_fhir.report.markup.esc`, notes arrive as inert blocks
(:mod:`rejection_fhir.report.notes`), and a Content-Security-Policy forbids scripts,
frames and every fetch as a second line of defence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC

from rejection_fhir import __version__
from rejection_fhir.report.markup import esc
from rejection_fhir.report.model import (
    Chart,
    FlagItem,
    Report,
    WorksheetNote,
    format_number,
)
from rejection_fhir.report.notes import Block, Run
from rejection_fhir.report.svg import BAND_FILLS, chart_svg, marker, series_style

#: Rows per values table; a longer series is split into tables that sit side by side.
MAX_TABLE_ROWS = 15
#: Scripts, frames, plugins, fonts, images from anywhere: all refused.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

STYLE = """
:root { color-scheme: light; --ink: #1a1a1a; --muted: #555; --rule: #d0d0d0; --red: #b3261e; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: #f4f4f2; color: var(--ink);
  font: 15px/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
.page { max-width: 980px; margin: 0 auto; padding: 24px 28px 40px; background: #fff; }
h1 { font-size: 1.55rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 30px 0 12px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 1.05rem; margin: 0 0 2px; }
.subtitle { margin: 0 0 14px; color: var(--muted); }
dl.meta { display: grid; grid-template-columns: repeat(4, auto); gap: 4px 28px; margin: 0 0 18px;
  padding: 10px 14px; background: #f6f6f6; border: 1px solid var(--rule); border-radius: 4px; }
dl.meta div { min-width: 0; }
dl.meta dt { font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
dl.meta dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.safety { border: 3px solid var(--red); background: #fdecea; border-radius: 6px; padding: 12px 16px 10px; margin: 0 0 8px; }
.safety h2 { color: var(--red); border: 0; margin: 0 0 8px; padding: 0; font-size: 1.25rem; }
.safety ul { margin: 0; padding: 0; list-style: none; }
.safety li, .other-flags li { display: grid; grid-template-columns: 6.5em minmax(0, 1fr); gap: 0 10px; padding: 8px 0; }
.safety li + li { border-top: 1px solid #f1b5b0; }
.safety time { font-weight: 700; color: var(--red); }
.safety .flag-text { font-weight: 600; }
.safety .detail, .other-flags .detail { grid-column: 2; color: #5a1a16; }
.safety .advice { margin: 8px 0 0; font-size: .85rem; color: #5a1a16; }
.no-safety { border: 1px solid var(--rule); border-left: 6px solid #6b6b6b; background: #fafafa;
  padding: 10px 14px; border-radius: 4px; margin: 0 0 8px; }
.no-safety h2 { border: 0; margin: 0 0 4px; padding: 0; font-size: 1.05rem; }
.no-safety p { margin: 0; color: #333; }
.other-flags { border: 2px solid #b26a00; background: #fff6e5; border-radius: 6px; padding: 10px 16px; margin: 10px 0 0; }
.other-flags h2 { border: 0; margin: 0 0 6px; padding: 0; font-size: 1.05rem; color: #7a4800; }
.other-flags ul { margin: 0; padding: 0; list-style: none; }
.other-flags li { padding: 4px 0; }
.other-flags time { font-weight: 700; }
.empty { margin: 22px 0; padding: 28px 20px; text-align: center; border: 2px dashed #b9b9b9; border-radius: 6px; color: #333; }
.empty h2 { border: 0; margin: 0 0 6px; }
.contents { margin: 16px 0 0; font-size: .9rem; color: var(--muted); }
.contents a { color: #0b57d0; }
.chart-card { margin: 0 0 26px; padding: 14px 16px 12px; border: 1px solid var(--rule); border-radius: 6px; }
.chart-card .about { margin: 0 0 6px; color: var(--muted); font-size: .88rem; }
.headline { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 6px 0 4px; font-size: .92rem; }
.headline .latest { font-size: 1rem; }
.headline strong { font-size: 1.15rem; }
.better { color: var(--muted); }
.ring-key { color: var(--red); }
.ring-key svg { width: 14px; height: 14px; vertical-align: -2px; margin-right: 4px; }
svg.chart { display: block; width: 100%; height: auto; margin: 4px 0 6px; }
.chart-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(400px, 1fr)); gap: 0 18px; }
.chart-grid .chart-card { margin-bottom: 18px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 4px 0 0; padding: 0; list-style: none; font-size: .9rem; }
.legend svg { width: 14px; height: 14px; vertical-align: -2px; margin-right: 5px; }
.values-wrap { display: flex; flex-wrap: wrap; gap: 4px 28px; align-items: flex-start; }
table.values { border-collapse: collapse; font-size: .86rem; margin: 4px 0 0; }
table.values caption { text-align: left; font-size: .8rem; color: var(--muted); padding: 0 0 3px; caption-side: top; }
table.values th, table.values td { padding: 3px 14px 3px 6px; border-bottom: 1px solid #e3e3e3; text-align: left; }
table.values th { border-bottom: 1px solid #999; font-weight: 600; }
table.values td.num { text-align: right; font-variant-numeric: tabular-nums; padding-right: 18px; }
.safety-mark { color: var(--red); font-weight: 700; margin-left: 6px; white-space: nowrap; }
.chip { display: inline-block; width: .8em; height: .8em; border: 1px solid #999; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.tally { margin: -4px 0 14px; color: var(--muted); font-size: .9rem; }
.worksheet { margin: 0 0 18px; padding: 12px 16px; border: 1px solid var(--rule); border-left: 5px solid #4a6fa5; border-radius: 4px; }
.worksheet header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 2px 14px; margin: 0 0 6px; }
.worksheet header time { color: var(--muted); font-size: .9rem; }
.tag { display: inline-block; font-size: .75rem; padding: 0 6px; border-radius: 8px; background: #e8e8e8; color: #333; }
.tag.foreign { background: #fff0c2; }
.worksheet h4 { font-size: .95rem; margin: 10px 0 2px; }
.worksheet h5 { font-size: .9rem; margin: 8px 0 2px; }
.worksheet ul { margin: 2px 0 6px; padding-left: 1.3em; }
.worksheet li { margin: 1px 0; }
.worksheet p { margin: 4px 0; }
.worksheet hr { border: 0; border-top: 1px solid #e0e0e0; margin: 8px 0; }
.worksheet .highlights { background: #eef3fa; border-radius: 4px; padding: 4px 10px 2px; margin: 4px 0 8px; }
.worksheet .highlights h4 { margin: 2px 0; font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: #34507a; }
.worksheet .note-alert { border-left: 4px solid var(--red); background: #fdecea; padding: 4px 10px; }
.worksheet .unreadable { color: var(--muted); font-style: italic; }
footer { margin-top: 30px; padding-top: 8px; border-top: 1px solid var(--rule); font-size: .8rem; color: var(--muted); }
footer p { margin: 2px 0; }
@media (max-width: 720px) { dl.meta { grid-template-columns: repeat(2, auto); } }
@page { size: A4; margin: 14mm 12mm 16mm; }
@media print {
  html { font-size: 12.5px; }
  body { background: #fff; font-size: 1rem; }
  /* Two trend charts to a row on A4: keep their text at a readable size on paper. */
  svg.chart.compact text { font-size: 13px; }
  .page { max-width: none; padding: 0; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .contents { display: none; }
  h2 { break-after: avoid; }
  .safety, .no-safety, .other-flags, figure.chart-card, .worksheet header { break-inside: avoid; }
  .worksheet { break-inside: auto; }
  .chart-grid { grid-template-columns: 1fr 1fr; gap: 0 10px; }
  .chart-grid .chart-card { padding: 8px 10px; }
  table.values tr { break-inside: avoid; }
}
"""


def _runs(runs: Sequence[Run]) -> str:
    out = []
    for run in runs:
        text = "<br>".join(esc(part) for part in run.text.split("\n"))
        out.append(f"<b>{text}</b>" if run.bold else text)
    return "".join(out)


def _when(when_text: str, label: str) -> str:
    return f'<time datetime="{esc(when_text)}">{esc(label)}</time>'


# --------------------------------------------------------------------------- header, flags


def _header(report: Report) -> str:
    period = report.period
    if period is None:
        span = "no data yet"
    elif period[0].date == period[1].date:
        span = period[0].date
    else:
        span = f"{period[0].date} to {period[1].date}"
    generated = report.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    who = f"{report.patient} (name and birth date not available from the server)"
    if report.patient_name or report.birth_date:
        born = f"born {report.birth_date}" if report.birth_date else "birth date not recorded"
        who = f"{report.patient_name or 'name not recorded'}, {born} ({report.patient})"
    fields = [
        ("Patient", who),
        ("Period covered", span),
        ("Generated", generated),
    ]
    if report.server:
        fields.append(("Source", report.server))
    rows = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in fields)
    return (
        '<header class="report-header">'
        "<h1>Progress report: coping with rejection</h1>"
        '<p class="subtitle">Worksheets, PHQ-9 and GAD-7 scores and safety flags recorded '
        "by rejection-fhir, for the treating clinician.</p>"
        f'<dl class="meta">{rows}</dl></header>'
    )


def _flag_item(flag: FlagItem) -> str:
    when = _when(flag.since.text, flag.since.display) if flag.since else "<time>date unknown</time>"
    detail = f'<span class="detail">{esc(flag.detail)}</span>' if flag.detail else ""
    return f'<li class="flag">{when}<span class="flag-text">{esc(flag.text)}</span>{detail}</li>'


def _safety(report: Report) -> str:
    generated = report.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not report.safety_flags:
        return (
            '<section class="no-safety" id="safety" aria-labelledby="safety-title">'
            '<h2 id="safety-title">Safety</h2>'
            "<p>No active safety flag from rejection-fhir for this patient as of "
            f"{esc(generated)}. This report does not replace a clinical risk assessment.</p>"
            "</section>"
        )
    count = len(report.safety_flags)
    items = "".join(_flag_item(f) for f in report.safety_flags)
    # What every flag's message repeats, once for the section rather than under each flag.
    advice = (
        f'<p class="advice">{esc(" ".join(report.safety_advice))}</p>'
        if report.safety_advice
        else ""
    )
    return (
        '<section class="safety" id="safety" role="alert" aria-labelledby="safety-title">'
        f'<h2 id="safety-title">&#9888; Safety: {count} active flag{"s" if count != 1 else ""} '
        "to review</h2>"
        f"<ul>{items}</ul>{advice}"
        '<p class="advice">Each flag stays active until a clinician reviews it and closes it in '
        "the record. rejection-fhir does not monitor responses in real time.</p></section>"
    )


def _other_flags(report: Report) -> str:
    if not report.other_flags:
        return ""
    items = "".join(_flag_item(f) for f in report.other_flags)
    return (
        '<section class="other-flags" aria-labelledby="other-flags-title">'
        '<h2 id="other-flags-title">Other active flags in the record</h2>'
        f"<ul>{items}</ul></section>"
    )


# --------------------------------------------------------------------------- charts


def _signed(value: float) -> str:
    if value > 0:
        return f"+{format_number(value)}"
    if value < 0:
        return f"−{format_number(-value)}"  # a real minus sign, not a hyphen
    return "0"


def _headline(chart: Chart) -> str:
    measure = chart.measure
    unit = f" {measure.unit}" if measure.unit else ""
    points = chart.points
    parts: list[str] = []
    if len(chart.series) == 1:
        first, last = points[0], points[-1]
        interpretation = f" {esc(last.interpretation)}," if last.interpretation else ""
        parts.append(
            f'<span class="latest">Latest: <strong>{format_number(last.value)}{esc(unit)}</strong>'
            f" &#8212;{interpretation} {esc(last.when.date)}</span>"
        )
        if len(points) > 1:
            parts.append(
                f'<span class="first">First: {format_number(first.value)}{esc(unit)} '
                f"({esc(first.when.date)})</span>"
            )
            parts.append(
                f'<span class="change">Change: <strong>{_signed(last.value - first.value)}'
                f"</strong></span>"
            )
    else:
        # Each line's newest value, grouped by day so no value looks newer than it is.
        by_date: dict[str, list[str]] = {}
        for series in chart.series:
            point = series.points[-1]
            by_date.setdefault(point.when.date, []).append(
                f"{esc(series.name or 'unnamed')} {format_number(point.value)}{esc(unit)}"
            )
        latest = "; ".join(
            f"{', '.join(values)} ({esc(date)})"
            for date, values in sorted(by_date.items(), reverse=True)
        )
        parts.append(f'<span class="latest">Latest: {latest}</span>')
    parts.append(f'<span class="count">{len(points)} value{"s" if len(points) != 1 else ""}</span>')
    if measure.better:
        parts.append(f'<span class="better">{measure.better.capitalize()} is better</span>')
    if any(p.flagged for p in points):
        parts.append(
            '<span class="ring-key"><svg viewBox="0 0 14 14" aria-hidden="true" focusable="false">'
            '<circle cx="7" cy="7" r="5.5" fill="none" stroke="#b3261e" stroke-width="2"/></svg>'
            "raised a safety flag</span>"
        )
    return f'<p class="headline">{"".join(parts)}</p>'


def _legend(chart: Chart) -> str:
    if len(chart.series) < 2:
        return ""
    items = []
    for index, series in enumerate(chart.series):
        colour, shape = series_style(index)
        swatch = (
            '<svg viewBox="0 0 14 14" aria-hidden="true" focusable="false">'
            f"{marker(shape, 7, 7, colour, css_class='swatch')}</svg>"
        )
        items.append(f"<li>{swatch}{esc(series.name or 'unnamed')}</li>")
    return f'<ul class="legend" aria-label="Legend">{"".join(items)}</ul>'


def _values_table(chart: Chart) -> str:
    measure = chart.measure
    several = len(chart.series) > 1
    banded = bool(measure.bands) or any(p.interpretation for p in chart.points)
    head = '<th scope="col">Date</th>'
    if several:
        head += f'<th scope="col">{esc(measure.series_label)}</th>'
    head += f'<th scope="col">{"Score" if measure.bands else "Value"}</th>'
    if banded:
        head += '<th scope="col">Severity</th>' if measure.bands else '<th scope="col">Note</th>'
    rows = []
    unit = f" {measure.unit}" if measure.unit else ""
    for point in chart.points:
        cells = f"<td>{_when(point.when.text, point.when.display)}</td>"
        if several:
            cells += f"<td>{esc(point.series or 'unnamed')}</td>"
        cells += f'<td class="num">{format_number(point.value)}{esc(unit)}</td>'
        if banded:
            chip, words = "", point.interpretation
            if point.band is not None:
                fill = BAND_FILLS.get(point.band.code, "#eeeeee")
                chip = f'<span class="chip" style="background:{fill}"></span>'
                words = point.band.label
            mark = ' <span class="safety-mark">&#9888; safety flag</span>' if point.flagged else ""
            cells += f"<td>{chip}{esc(words)}{mark}</td>"
        rows.append(f"<tr>{cells}</tr>")
    # A long series reads as a few short tables side by side rather than one endless one.
    parts = math.ceil(len(rows) / MAX_TABLE_ROWS)
    size = math.ceil(len(rows) / parts)
    tables = []
    for part in range(parts):
        which = f" ({part + 1} of {parts})" if parts > 1 else ""
        body = "".join(rows[part * size : (part + 1) * size])
        tables.append(
            f'<table class="values"><caption>Values, oldest first{which}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    return f'<div class="values-wrap">{"".join(tables)}</div>'


def _chart_card(chart: Chart, index: int) -> str:
    chart_id = f"chart-{index}"
    about = (
        f'<p class="about">{esc(chart.measure.description)}</p>'
        if chart.measure.description
        else ""
    )
    return (
        f'<figure class="chart-card" aria-labelledby="{chart_id}-heading">'
        f'<h3 id="{chart_id}-heading">{esc(chart.measure.title)}</h3>{about}'
        f"{_headline(chart)}{_legend(chart)}{chart_svg(chart, chart_id)}"
        f"{_values_table(chart)}</figure>"
    )


def _trends(report: Report) -> str:
    if not report.charts:
        return (
            '<section id="trends"><h2>Scores and trends</h2>'
            "<p>No scores or rated answers recorded yet.</p></section>"
        )
    numbered = list(enumerate(report.charts, start=1))
    scores = "".join(_chart_card(c, i) for i, c in numbered if c.measure.bands)
    trends = "".join(_chart_card(c, i) for i, c in numbered if not c.measure.bands)
    grid = f'<div class="chart-grid">{trends}</div>' if trends else ""
    return f'<section id="trends"><h2>Scores and trends</h2>{scores}{grid}</section>'


# --------------------------------------------------------------------------- worksheets


def _blocks(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    items: list[Block] = []
    in_highlights = False

    def end_list() -> None:
        nonlocal in_highlights
        if items:
            out.append(_list(items))
            items.clear()
        if in_highlights:
            out.append("</div>")
            in_highlights = False

    for block in blocks:
        if block.kind == "item":
            items.append(block)
            continue
        end_list()
        if block.kind == "heading":
            tag = "h4" if block.level <= 2 else "h5"
            if block.text.strip() == "Highlights":
                # The summary's own word: its first list is what the clinician reads first.
                out.append('<div class="highlights">')
                in_highlights = True
            out.append(f"<{tag}>{_runs(block.runs)}</{tag}>")
        elif block.kind == "rule":
            out.append("<hr>")
        elif block.kind == "alert":
            out.append(f'<p class="note-alert">{_runs(block.runs)}</p>')
        elif block.kind == "para":
            out.append(f"<p>{_runs(block.runs)}</p>")
    end_list()
    return "".join(out)


def _list(items: Sequence[Block]) -> str:
    """Flat items with depths -> nested <ul>; a depth may not jump more than one level."""
    out: list[str] = []
    depth = -1
    for item in items:
        level = min(item.level, depth + 1)
        if level > depth:
            out.append("<ul>")
            depth = level
        else:
            out.append("</li>")
            while depth > level:
                out.append("</ul></li>")
                depth -= 1
        out.append(f"<li>{_runs(item.runs)}")
    out.append("</li>")
    while depth > 0:
        out.append("</ul></li>")
        depth -= 1
    out.append("</ul>")
    return "".join(out)


def _undated_title(note: WorksheetNote) -> str:
    """The sync titles a note "Rejection log (2026-11-20)"; the report shows the date apart."""
    if note.when is None:
        return note.title
    return note.title.removesuffix(f" ({note.when.date})")


def _worksheet(note: WorksheetNote) -> str:
    when = _when(note.when.text, note.when.display) if note.when else "<time>date unknown</time>"
    title = _undated_title(note)
    tags = ""
    if note.amended:
        tags += '<span class="tag">amended</span>'
    if not note.ours:
        tags += '<span class="tag foreign">not written by rejection-fhir</span>'
    body = _blocks(note.blocks) or '<p class="unreadable">This note holds no readable summary.</p>'
    return (
        f'<article class="worksheet"><header><h3>{esc(title)}</h3>{when}{tags}</header>'
        f"{body}</article>"
    )


def _worksheets(report: Report) -> str:
    if not report.worksheets:
        return (
            '<section id="worksheets"><h2>Worksheets completed</h2>'
            "<p>No worksheet notes recorded yet.</p></section>"
        )
    notes = "".join(_worksheet(n) for n in report.worksheets)
    counts: dict[str, int] = {}
    for note in report.worksheets:
        name = _undated_title(note)
        counts[name] = counts.get(name, 0) + 1
    tally = ", ".join(f"{esc(name)} &#215; {n}" for name, n in counts.items())
    return (
        f'<section id="worksheets"><h2>Worksheets and questionnaires completed '
        f'({len(report.worksheets)}), newest first</h2><p class="tally">{tally}</p>'
        f"{notes}</section>"
    )


# --------------------------------------------------------------------------- page


def _empty(report: Report) -> str:
    where = f" on {esc(report.server)}" if report.server else ""
    return (
        '<section class="empty" id="empty"><h2>No responses synced yet</h2>'
        f"<p>No scores, worksheet notes or flags from rejection-fhir were found for "
        f"{esc(report.patient)}{where}.</p>"
        "<p>Once the client completes a worksheet and <code>rejection-fhir sync</code> has run, "
        "generate this report again.</p></section>"
    )


def _footer(report: Report) -> str:
    left_out = ""
    if report.left_out:
        total = sum(report.left_out.values())
        reasons = "; ".join(f"{n} {esc(reason)}" for reason, n in report.left_out.items())
        left_out = (
            f"<p>Left out: {total} resource{'s' if total != 1 else ''} the server returned "
            f"({reasons}).</p>"
        )
    return (
        "<footer>"
        f"<p>Generated by rejection-fhir {esc(__version__)} from FHIR resources written by its "
        "sync: score and answer Observations, worksheet notes (DocumentReference) and Flags. "
        "Scores use the instruments' published cut-points; they support, not replace, "
        "clinical judgement.</p>"
        f"{left_out}</footer>"
    )


def render_html(report: Report) -> str:
    """The whole report as one HTML document (a str, UTF-8 when written)."""
    if report.empty:
        body = _safety(report) + _empty(report)
    else:
        contents = (
            '<nav class="contents" aria-label="Contents">Contents: '
            '<a href="#safety">Safety</a> · <a href="#trends">Scores and trends</a> · '
            '<a href="#worksheets">Worksheets</a></nav>'
        )
        body = (
            _safety(report)
            + _other_flags(report)
            + contents
            + _trends(report)
            + _worksheets(report)
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Progress report: {esc(report.patient)}</title>"
        f"<style>{STYLE}</style></head>"
        f'<body><div class="page">{_header(report)}<main>{body}</main>{_footer(report)}</div>'
        "</body></html>\n"
    )
