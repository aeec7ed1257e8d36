"""Inline SVG line charts: one per measure, readable without scripts or plugins.

Layout (SVG user units; the chart scales to the page width):

* the plot box, with severity bands shaded behind the data (PHQ-9, GAD-7) and labelled in
  the right margin;
* y axis: the measure's own tick values (the instruments' cut-points for scores),
  horizontal grid lines, a rotated axis title;
* x axis: time, with the dates of the data as tick labels (thinned so none overlap);
* one polyline per series and a marker per value (``class="point"``), each with a
  ``<title>`` that a pointer or a screen reader can read; a single series gets its values
  written above the markers too, so the chart reads on paper.

Every text comes through :func:`~rejection_fhir.report.markup.esc`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rejection_fhir.report.markup import esc
from rejection_fhir.report.model import Chart, Point, Series, format_number


@dataclass(frozen=True)
class Geometry:
    """The viewBox and the margins around the plot box, in SVG user units."""

    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float


#: Scores: full width, with the right margin naming the severity bands.
FULL = Geometry(width=720, height=270, left=62, right=128, top=14, bottom=52)
#: Worksheet trends: no bands, drawn two to a row on screen at the same text size.
COMPACT = Geometry(width=400, height=240, left=56, right=30, top=14, bottom=52)
#: Space inside the plot box so markers never sit on an axis.
PAD = 20
#: Minimum distance between two date labels on the x axis.
MIN_TICK_GAP = 86
#: A single series with at most this many values gets the values written on the chart.
MAX_LABELLED_POINTS = 16

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
SHAPES = ("circle", "square", "diamond", "triangle")
BAND_FILLS = {
    "minimal": "#e3f1e4",
    "mild": "#fbf6d3",
    "moderate": "#fde6c8",
    "moderately-severe": "#f9d3c6",
    "severe": "#f4bcb8",
}
_DEFAULT_BAND_FILL = "#eeeeee"
FLAG_RED = "#b3261e"


@dataclass(frozen=True)
class Frame:
    """Data coordinates -> SVG coordinates for one chart."""

    geometry: Geometry
    x0: float
    x1: float
    y0: float  # top of the plot box
    y1: float  # bottom of the plot box
    t_min: float
    t_max: float
    v_min: float
    v_max: float

    def x(self, instant: datetime) -> float:
        if self.t_max == self.t_min:
            return (self.x0 + self.x1) / 2
        share = (instant.timestamp() - self.t_min) / (self.t_max - self.t_min)
        return self.x0 + PAD + share * (self.x1 - self.x0 - 2 * PAD)

    def y(self, value: float) -> float:
        share = (value - self.v_min) / (self.v_max - self.v_min)
        return self.y1 - share * (self.y1 - self.y0)


def geometry_for(chart: Chart) -> Geometry:
    return FULL if chart.measure.bands else COMPACT


def frame_for(chart: Chart) -> Frame:
    g = geometry_for(chart)
    stamps = [p.when.instant.timestamp() for p in chart.points]
    measure = chart.measure
    v_max = measure.y_max if measure.y_max > measure.y_min else measure.y_min + 1
    return Frame(
        geometry=g,
        x0=g.left,
        x1=g.width - g.right,
        y0=g.top,
        y1=g.height - g.bottom,
        t_min=min(stamps),
        t_max=max(stamps),
        v_min=measure.y_min,
        v_max=v_max,
    )


def _n(value: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _point_title(chart: Chart, point: Point) -> str:
    unit = f" {chart.measure.unit}" if chart.measure.unit else ""
    text = f"{point.when.display}: {format_number(point.value)}{unit}"
    if point.series:
        text = f"{point.series}, {text}"
    if point.interpretation:
        text += f" ({point.interpretation})"
    if point.flagged:
        text += "; safety flag raised"
    return text


def marker(
    shape: str, x: float, y: float, colour: str, title: str = "", css_class: str = "point"
) -> str:
    """One data point as an SVG element (``class="point"`` unless told otherwise)."""
    tip = f"<title>{esc(title)}</title>" if title else ""
    common = f'class="{css_class}" fill="{colour}" stroke="#ffffff" stroke-width="1.2"'
    if shape == "square":
        return (
            f'<rect {common} x="{_n(x - 4.2)}" y="{_n(y - 4.2)}" width="8.4" height="8.4">'
            f"{tip}</rect>"
        )
    if shape == "diamond":
        pts = f"{_n(x)},{_n(y - 5.6)} {_n(x + 5.6)},{_n(y)} {_n(x)},{_n(y + 5.6)} {_n(x - 5.6)},{_n(y)}"
        return f'<polygon {common} points="{pts}">{tip}</polygon>'
    if shape == "triangle":
        pts = f"{_n(x)},{_n(y - 5.8)} {_n(x + 5.4)},{_n(y + 4)} {_n(x - 5.4)},{_n(y + 4)}"
        return f'<polygon {common} points="{pts}">{tip}</polygon>'
    return f'<circle {common} cx="{_n(x)}" cy="{_n(y)}" r="4.6">{tip}</circle>'


def series_style(index: int) -> tuple[str, str]:
    return SERIES_COLOURS[index % len(SERIES_COLOURS)], SHAPES[index % len(SHAPES)]


def _x_ticks(chart: Chart, frame: Frame) -> list[tuple[float, str]]:
    """(x, date) for the data's dates, thinned so labels keep MIN_TICK_GAP apart; the
    first and the newest date always show."""
    candidates: list[tuple[float, str]] = []
    for point in chart.points:
        x = frame.x(point.when.instant)
        if not candidates or point.when.date != candidates[-1][1]:
            candidates.append((x, point.when.date))
    kept: list[tuple[float, str]] = []
    for x, label in candidates:
        if not kept or x - kept[-1][0] >= MIN_TICK_GAP:
            kept.append((x, label))
    if candidates and kept[-1] != candidates[-1]:
        # Too close to the last kept label (never the first: first and newest sit at
        # opposite ends of the axis).  The newest date matters more.
        kept[-1] = candidates[-1]
    return kept


def _bands(chart: Chart, frame: Frame, out: list[str]) -> None:
    for band in chart.measure.bands:
        top = frame.y(min(band.high, frame.v_max))
        bottom = frame.y(max(band.low, frame.v_min))
        fill = BAND_FILLS.get(band.code, _DEFAULT_BAND_FILL)
        out.append(
            f'<rect class="band band-{esc(band.code)}" x="{_n(frame.x0)}" y="{_n(top)}" '
            f'width="{_n(frame.x1 - frame.x0)}" height="{_n(bottom - top)}" fill="{fill}">'
            f"<title>{esc(band.label)}: {format_number(band.low)} and above</title></rect>"
        )
        upper = band.high - 1 if band is not chart.measure.bands[-1] else band.high
        middle = (top + bottom) / 2
        out.append(
            f'<text class="band-label" x="{_n(frame.x1 + 8)}" y="{_n(middle - 2)}" '
            f'font-size="11.5" fill="#333333">{esc(band.label)}'
            f'<tspan x="{_n(frame.x1 + 8)}" dy="13" font-size="10.5" fill="#666666">'
            f"{format_number(band.low)}–{format_number(upper)}</tspan></text>"
        )


def _axes(chart: Chart, frame: Frame, out: list[str]) -> None:
    measure = chart.measure
    for tick in measure.ticks:
        if not frame.v_min <= tick <= frame.v_max:
            continue
        y = frame.y(tick)
        out.append(
            f'<line class="grid" x1="{_n(frame.x0)}" x2="{_n(frame.x1)}" y1="{_n(y)}" '
            f'y2="{_n(y)}" stroke="#9e9e9e" stroke-width="0.6" stroke-dasharray="2 3"/>'
        )
        out.append(
            f'<text class="tick y-tick" x="{_n(frame.x0 - 8)}" y="{_n(y + 4)}" '
            f'text-anchor="end" font-size="11.5" fill="#333333">{format_number(tick)}</text>'
        )
    out.append(
        f'<line class="axis" x1="{_n(frame.x0)}" x2="{_n(frame.x0)}" y1="{_n(frame.y0)}" '
        f'y2="{_n(frame.y1)}" stroke="#555555" stroke-width="1"/>'
    )
    out.append(
        f'<line class="axis" x1="{_n(frame.x0)}" x2="{_n(frame.x1)}" y1="{_n(frame.y1)}" '
        f'y2="{_n(frame.y1)}" stroke="#555555" stroke-width="1"/>'
    )
    for x, label in _x_ticks(chart, frame):
        out.append(
            f'<line class="x-tick-mark" x1="{_n(x)}" x2="{_n(x)}" y1="{_n(frame.y1)}" '
            f'y2="{_n(frame.y1 + 5)}" stroke="#555555" stroke-width="1"/>'
        )
        out.append(
            f'<text class="tick x-tick" x="{_n(x)}" y="{_n(frame.y1 + 19)}" '
            f'text-anchor="middle" font-size="11.5" fill="#333333">{esc(label)}</text>'
        )
    middle_y = (frame.y0 + frame.y1) / 2
    out.append(
        f'<text class="axis-title" x="16" y="{_n(middle_y)}" text-anchor="middle" '
        f'font-size="12" fill="#222222" transform="rotate(-90 16 {_n(middle_y)})">'
        f"{esc(measure.axis_label)}</text>"
    )
    out.append(
        f'<text class="axis-title" x="{_n((frame.x0 + frame.x1) / 2)}" y="{_n(frame.geometry.height - 8)}" '
        f'text-anchor="middle" font-size="12" fill="#222222">Date completed</text>'
    )


def _series(chart: Chart, frame: Frame, index: int, series: Series, out: list[str]) -> None:
    colour, shape = series_style(index)
    coords = [(frame.x(p.when.instant), frame.y(p.value)) for p in series.points]
    if len(coords) > 1:
        points = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
        out.append(
            f'<polyline class="line" points="{points}" fill="none" stroke="{colour}" '
            f'stroke-width="2.2" stroke-linejoin="round" stroke-linecap="round"/>'
        )
    labelled = len(chart.series) == 1 and len(series.points) <= MAX_LABELLED_POINTS
    for point, (x, y) in zip(series.points, coords, strict=True):
        if point.flagged:
            out.append(
                f'<circle class="flag-ring" cx="{_n(x)}" cy="{_n(y)}" r="9.5" fill="none" '
                f'stroke="{FLAG_RED}" stroke-width="2.4"><title>Safety flag raised by this '
                "response</title></circle>"
            )
        out.append(marker(shape, x, y, colour, _point_title(chart, point)))
        if labelled:
            lift = 15 if point.flagged else 10  # clear of the red ring
            above = y - lift >= frame.y0 + 4
            out.append(
                f'<text class="point-label" x="{_n(x)}" y="{_n(y - lift if above else y + lift + 9)}" '
                f'text-anchor="middle" font-size="12" font-weight="600" fill="#111111">'
                f"{format_number(point.value)}</text>"
            )


def describe(chart: Chart) -> str:
    """One sentence for screen readers: what the chart shows and where it ends."""
    points = chart.points
    first, last = points[0], points[-1]
    unit = f" {chart.measure.unit}" if chart.measure.unit else ""
    text = (
        f"{chart.measure.title}: {len(points)} value{'s' if len(points) != 1 else ''} "
        f"from {first.when.date} to {last.when.date}"
    )
    if len(chart.series) == 1:
        text += f"; latest {format_number(last.value)}{unit} on {last.when.date}"
        if last.interpretation:
            text += f" ({last.interpretation})"
    else:
        text += f", in {len(chart.series)} series: " + ", ".join(
            s.name or "unnamed" for s in chart.series
        )
    return text + "."


def chart_svg(chart: Chart, chart_id: str) -> str:
    """The chart as an ``<svg>`` element; ``chart_id`` must be unique in the page."""
    frame = frame_for(chart)
    g = frame.geometry
    out = [
        f'<svg class="chart {"full" if g is FULL else "compact"}" id="{esc(chart_id)}" '
        f'viewBox="0 0 {_n(g.width)} {_n(g.height)}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-labelledby="{esc(chart_id)}-title {esc(chart_id)}-desc" '
        f'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif">',
        f'<title id="{esc(chart_id)}-title">{esc(chart.measure.title)}</title>',
        f'<desc id="{esc(chart_id)}-desc">{esc(describe(chart))}</desc>',
        f'<rect class="plot" x="{_n(frame.x0)}" y="{_n(frame.y0)}" '
        f'width="{_n(frame.x1 - frame.x0)}" height="{_n(frame.y1 - frame.y0)}" fill="#ffffff"/>',
    ]
    _bands(chart, frame, out)
    _axes(chart, frame, out)
    for index, series in enumerate(chart.series):
        _series(chart, frame, index, series, out)
    out.append("</svg>")
    return "".join(out)
