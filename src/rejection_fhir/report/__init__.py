"""A clinician's progress report for one client: pure model and HTML/SVG rendering.

:func:`build_report` turns the resources the sync wrote (plain dicts) into a
:class:`Report`; :func:`render_html` draws it as one self-contained page.  Fetching and
PDF/PNG output live in :mod:`rejection_fhir.commands.report`.
"""

from rejection_fhir.report.measures import INSTRUMENT_MEASURES, ChartBand, Measure
from rejection_fhir.report.model import (
    Chart,
    FlagItem,
    Point,
    Report,
    Series,
    When,
    WorksheetNote,
    build_report,
    parse_when,
    patient_reference,
)
from rejection_fhir.report.notes import Block, Run, blocks_from_markdown, blocks_from_xhtml
from rejection_fhir.report.page import render_html
from rejection_fhir.report.svg import chart_svg

__all__ = [
    "INSTRUMENT_MEASURES",
    "Block",
    "Chart",
    "ChartBand",
    "FlagItem",
    "Measure",
    "Point",
    "Report",
    "Run",
    "Series",
    "When",
    "WorksheetNote",
    "blocks_from_markdown",
    "blocks_from_xhtml",
    "build_report",
    "chart_svg",
    "parse_when",
    "patient_reference",
    "render_html",
]
