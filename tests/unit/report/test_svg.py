"""Charts: one marker per value, at the right place; bands where the cut-points are."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from rejection_fhir.report.svg import (
    COMPACT,
    FULL,
    MIN_TICK_GAP,
    PAD,
    chart_svg,
    frame_for,
)
from tests.unit.report.conftest import report_of
from tests.unit.report.records import CODES, survey_observation

SVG = "{http://www.w3.org/2000/svg}"
X0, X1, Y0, Y1 = FULL.left, FULL.width - FULL.right, FULL.top, FULL.height - FULL.bottom
#: Worksheet trends (no bands) are drawn smaller, two to a row.
CX0, CX1, CY0, CY1 = (
    COMPACT.left,
    COMPACT.width - COMPACT.right,
    COMPACT.top,
    COMPACT.height - COMPACT.bottom,
)


def parse(chart, chart_id="c1"):
    return ET.fromstring(chart_svg(chart, chart_id))  # well-formed XML, or this raises


def by_class(root, name):
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def centre(element):
    tag = element.tag.removeprefix(SVG)
    if tag == "circle":
        return float(element.get("cx")), float(element.get("cy"))
    if tag == "rect":
        return (
            float(element.get("x")) + float(element.get("width")) / 2,
            float(element.get("y")) + float(element.get("height")) / 2,
        )
    xs, ys = zip(*(map(float, p.split(",")) for p in element.get("points").split()), strict=True)
    return (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2


def _chart(report, code):
    return next(c for c in report.charts if c.measure.code == code)


def test_every_chart_has_one_marker_per_value(report):
    for index, chart in enumerate(report.charts):
        root = parse(chart, f"chart-{index}")
        assert len(by_class(root, "point")) == len(chart.points), chart.measure.code


def test_scores_are_placed_by_value_and_time(report):
    chart = _chart(report, "44261-6")
    root = parse(chart)
    points = [centre(e) for e in by_class(root, "point")]
    values = [p.value for p in chart.points]
    for (_, y), value in zip(points, values, strict=True):
        assert y == pytest.approx(Y1 - value / 27 * (Y1 - Y0), abs=0.01)
    xs = [x for x, _ in points]
    assert xs[0] == pytest.approx(X0 + PAD) and xs[-1] == pytest.approx(X1 - PAD)
    # Fortnightly scores (a minute later each time): evenly spaced.
    steps = [b - a for a, b in itertools.pairwise(xs)]
    assert max(steps) - min(steps) < 0.1
    line = by_class(root, "line")
    assert len(line) == 1 and len(line[0].get("points").split()) == 6
    assert root.get("viewBox") == "0 0 720 270" and "full" in root.get("class")
    labels = [e.text for e in by_class(root, "point-label")]
    assert labels == ["18", "16", "14", "13", "11", "9"]


def test_phq9_bands_are_shaded_between_the_cut_points(report):
    chart = _chart(report, "44261-6")
    frame = frame_for(chart)
    bands = by_class(parse(chart), "band")
    expected = [
        (0, 5, "minimal"),
        (5, 10, "mild"),
        (10, 15, "moderate"),
        (15, 20, "moderately-severe"),
        (20, 27, "severe"),
    ]
    assert len(bands) == len(expected)
    for rect, (low, high, code) in zip(bands, expected, strict=True):
        assert f"band-{code}" in rect.get("class")
        top, height = float(rect.get("y")), float(rect.get("height"))
        assert top == pytest.approx(frame.y(high), abs=0.01)
        assert top + height == pytest.approx(frame.y(low), abs=0.01)
        assert float(rect.get("width")) == pytest.approx(X1 - X0)
    assert len({rect.get("fill") for rect in bands}) == 5
    texts = ["".join(t.itertext()) for t in by_class(parse(chart), "band-label")]
    assert texts == [
        "Minimal0–4",
        "Mild5–9",
        "Moderate10–14",
        "Moderately severe15–19",
        "Severe20–27",
    ]
    ticks = [t.text for t in by_class(parse(chart), "y-tick")]
    assert ticks == ["0", "5", "10", "15", "20", "27"]


def test_gad7_bands(report):
    chart = _chart(report, "70274-6")
    frame = frame_for(chart)
    bands = by_class(parse(chart), "band")
    assert [float(b.get("y")) for b in bands] == pytest.approx(
        [frame.y(5), frame.y(10), frame.y(15), frame.y(21)], abs=0.01
    )
    assert frame.y(21) == pytest.approx(Y0)


def test_trends_without_bands_are_scaled_to_their_range(report):
    chart = _chart(report, "belief-strength-after")
    root = parse(chart)
    assert by_class(root, "band") == []
    ys = [centre(e)[1] for e in by_class(root, "point")]
    assert ys == pytest.approx([CY1 - 0.60 * (CY1 - CY0), CY1 - 0.45 * (CY1 - CY0)], abs=0.01)
    assert root.get("viewBox") == "0 0 400 240" and "compact" in root.get("class")
    assert [t.text for t in by_class(root, "y-tick")] == ["0", "25", "50", "75", "100"]
    assert [t.text for t in by_class(root, "axis-title")] == [
        "Belief strength (%)",
        "Date completed",
    ]


def test_several_series_have_their_own_line_and_shape(report):
    chart = _chart(report, "emotion-intensity")
    root = parse(chart)
    assert len(by_class(root, "point")) == 6
    tags = [e.tag.removeprefix(SVG) for e in by_class(root, "point")]
    assert tags == ["circle"] * 3 + ["rect"] + ["polygon"] * 2  # Hurt, Sadness, Shame
    assert len(by_class(root, "line")) == 2, "Sadness has one value: a marker, no line"
    assert by_class(root, "point-label") == [], "values of several series are in the table"


def test_x_axis_labels_never_overlap_and_show_first_and_newest_date():
    code = {"system": CODES, "code": "hopefulness", "display": "Hopefulness"}
    days = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-02-01", "2026-05-30", "2026-06-01"]
    report = report_of([survey_observation(code, i, f"{d}T10:00:00Z") for i, d in enumerate(days)])
    root = parse(report.charts[0])
    ticks = by_class(root, "x-tick")
    xs = [float(t.get("x")) for t in ticks]
    assert all(b - a >= MIN_TICK_GAP for a, b in itertools.pairwise(xs))
    assert ticks[0].text == "2026-01-01" and ticks[-1].text == "2026-06-01"
    assert len(by_class(root, "point")) == 6


def test_a_single_value_sits_in_the_middle():
    code = {"system": CODES, "code": "self-kindness", "display": "Self-kindness"}
    root = parse(report_of([survey_observation(code, 5)]).charts[0])
    (point,) = by_class(root, "point")
    assert centre(point) == pytest.approx(((CX0 + CX1) / 2, (CY0 + CY1) / 2), abs=0.01)
    assert by_class(root, "line") == []


def test_the_score_that_raised_a_flag_is_ringed(report):
    chart = _chart(report, "44261-6")
    root = parse(chart)
    (ring,) = by_class(root, "flag-ring")
    flagged = next(i for i, p in enumerate(chart.points) if p.flagged)
    assert centre(ring) == pytest.approx(centre(by_class(root, "point")[flagged]), abs=0.01)


def test_chart_is_labelled_for_screen_readers(report):
    root = parse(_chart(report, "44261-6"), "chart-7")
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "chart-7-title chart-7-desc"
    assert root.find(f"{SVG}title").text == "PHQ-9 total score"
    desc = root.find(f"{SVG}desc").text
    assert "6 values from 2026-09-07 to 2026-11-16" in desc and "latest 9" in desc


@pytest.mark.parametrize(
    "payload",
    ["<script>alert(1)</script>", '"><iframe src=x>', '<img src=x onerror="alert(1)">'],
)
def test_codes_and_instances_from_the_server_stay_text(payload):
    foreign = {"system": "http://example.org", "code": payload, "display": payload}
    ours = {"system": CODES, "code": "emotion-intensity", "display": "Intensity"}
    report = report_of(
        [
            survey_observation(foreign, 3, text=payload),
            survey_observation(ours, 4, text=f"Intensity: {payload}"),
            survey_observation(ours, 5, "2026-11-02T10:00:00Z", text="Intensity: Hurt"),
        ]
    )
    for chart in report.charts:
        source = chart_svg(chart, "c")
        root = ET.fromstring(source)
        tags = {e.tag.removeprefix(SVG) for e in root.iter()}
        assert tags <= {
            "svg",
            "title",
            "desc",
            "rect",
            "line",
            "text",
            "tspan",
            "circle",
            "polygon",
            "polyline",
        }
        assert not any(k.startswith("on") for e in root.iter() for k in e.attrib)
        assert payload in "".join(root.itertext())
        assert "<script" not in source and "<iframe" not in source and "<img" not in source
