"""The report as one self-contained HTML page: no scripts, no external assets, prints well.

The header names the client (name and birth date from the Patient resource, beside the
id).  Order is the clinician's: safety first (a red box that cannot be missed, listing
Flags and the alerts of notes titled "SAFETY ALERT:" where the EHR keeps no Flag; or a
plain statement that none is active, saying where it looked; or, when neither Flags nor
notes could be read, a red box saying the check could not be made), what could not be read
from this EHR, then scores and trends (a chart, its latest value and
change, and a table of every value), then the worksheets, newest first.

The markup lives in ``templates/page.html.j2`` (Jinja2) and the style sheet in
``templates/report.css``; this module only shapes the model into what the template walks.
Nothing from the server becomes markup: the template environment
(:data:`~rejection_fhir.report.markup.TEMPLATES`) autoescapes every value and drops control
and bidi-override characters first, notes arrive as inert blocks
(:mod:`rejection_fhir.report.notes`), and a Content-Security-Policy forbids scripts,
frames and every fetch as a second line of defence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC

from markupsafe import Markup

from rejection_fhir import __version__
from rejection_fhir.report.markup import TEMPLATES
from rejection_fhir.report.measures import ChartBand
from rejection_fhir.report.model import (
    Chart,
    Point,
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


def _signed(value: float) -> str:
    if value > 0:
        return f"+{format_number(value)}"
    if value < 0:
        return f"−{format_number(-value)}"  # a real minus sign, not a hyphen
    return "0"


def _header_fields(report: Report) -> list[tuple[str, str]]:
    period = report.period
    if period is None:
        span = "no data yet"
    elif period[0].date == period[1].date:
        span = period[0].date
    else:
        span = f"{period[0].date} to {period[1].date}"
    who = f"{report.patient} (name and birth date not available from the server)"
    if report.patient_name or report.birth_date:
        born = f"born {report.birth_date}" if report.birth_date else "birth date not recorded"
        who = f"{report.patient_name or 'name not recorded'}, {born} ({report.patient})"
    fields = [("Patient", who), ("Period covered", span), ("Generated", _generated(report))]
    if report.server:
        fields.append(("Source", report.server))
    return fields


def _generated(report: Report) -> str:
    return report.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------------- charts


def _latest_by_date(chart: Chart) -> list[tuple[str, list[tuple[str, float]]]]:
    """Each line's newest value, grouped by day (newest first) so no value looks newer
    than it is."""
    by_date: dict[str, list[tuple[str, float]]] = {}
    for series in chart.series:
        point = series.points[-1]
        by_date.setdefault(point.when.date, []).append((series.name or "unnamed", point.value))
    return sorted(by_date.items(), reverse=True)


def _table_parts(points: Sequence[Point]) -> list[Sequence[Point]]:
    """A long series reads as a few short tables side by side rather than one endless one."""
    parts = math.ceil(len(points) / MAX_TABLE_ROWS)
    size = math.ceil(len(points) / parts) if parts else 1
    return [points[part * size : (part + 1) * size] for part in range(parts)]


def _band_fill(band: ChartBand) -> str:
    return BAND_FILLS.get(band.code, "#eeeeee")


def _swatch(index: int) -> Markup:
    """A legend's marker: drawn by svg.py, where every text is escaped."""
    colour, shape = series_style(index)
    return Markup(marker(shape, 7, 7, colour, css_class="swatch"))


def _chart_svg(chart: Chart, chart_id: str) -> Markup:
    return Markup(chart_svg(chart, chart_id))  # svg.py escapes every text


# --------------------------------------------------------------------------- worksheets


@dataclass
class _Node:
    """A list item of a note, with the items nested under it."""

    runs: tuple[Run, ...]
    children: list[_Node] = field(default_factory=list)


@dataclass
class _Part:
    kind: str
    runs: tuple[Run, ...] = ()
    level: int = 0
    nodes: list[_Node] = field(default_factory=list)


@dataclass
class _Group:
    """Parts of a note; the group that starts at a "Highlights" heading is shaded."""

    highlights: bool = False
    parts: list[_Part] = field(default_factory=list)


def _tree(items: Sequence[Block]) -> list[_Node]:
    """Flat items with depths -> nested nodes; a depth may not jump more than one level."""
    roots: list[_Node] = []
    open_lists: list[list[_Node]] = []  # the list now open at each depth
    for item in items:
        level = min(item.level, len(open_lists))
        if level == len(open_lists):
            open_lists.append(open_lists[-1][-1].children if open_lists else roots)
        else:
            del open_lists[max(level, 0) + 1 :]
        open_lists[max(level, 0)].append(_Node(item.runs))
    return roots


def _groups(blocks: Sequence[Block]) -> list[_Group]:
    """A note's blocks as the template draws them: runs of items become one nested list,
    and a "Highlights" heading with the list after it sits in a shaded box."""
    groups = [_Group()]
    items: list[Block] = []

    def end_list() -> None:
        if items:
            groups[-1].parts.append(_Part("list", nodes=_tree(items)))
            items.clear()
        if groups[-1].highlights:
            groups.append(_Group())

    for block in blocks:
        if block.kind == "item":
            items.append(block)
            continue
        end_list()
        if block.kind == "heading" and block.text.strip() == "Highlights":
            # The summary's own word: its first list is what the clinician reads first.
            groups.append(_Group(highlights=True))
        groups[-1].parts.append(_Part(block.kind, block.runs, block.level))
    end_list()
    return [g for g in groups if g.parts or g.highlights]


def _undated_title(note: WorksheetNote) -> str:
    """The sync titles a note "Rejection log (2026-11-20)"; the report shows the date apart."""
    if note.when is None:
        return note.title
    return note.title.removesuffix(f" ({note.when.date})")


def _tally(notes: Sequence[WorksheetNote]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for note in notes:
        name = _undated_title(note)
        counts[name] = counts.get(name, 0) + 1
    return list(counts.items())


# --------------------------------------------------------------------------- page

TEMPLATES.filters.update(number=format_number, signed=_signed)
TEMPLATES.globals.update(
    latest_by_date=_latest_by_date,
    table_parts=_table_parts,
    band_fill=_band_fill,
    swatch=_swatch,
    chart_svg=_chart_svg,
    worksheet_groups=_groups,
    undated_title=_undated_title,
    tally=_tally,
)


def render_html(report: Report) -> str:
    """The whole report as one HTML document (a str, UTF-8 when written)."""
    return TEMPLATES.get_template("page.html.j2").render(
        report=report,
        charts=list(enumerate(report.charts, start=1)),
        header_fields=_header_fields(report),
        generated=_generated(report),
        csp=CSP,
        version=__version__,
    )
