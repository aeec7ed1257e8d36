"""The progress report in Debian's headless Chromium: it renders, reads, prints.

The page is loaded with ``set_content`` (it is one self-contained file), so any request
it made, any script it ran against its Content-Security-Policy, any console error shows up
in the page log and fails the test.  Screenshots land in ``test-artifacts/browser/``:
``report.png`` (a ten-week course of care) and ``report-empty.png``; the printed
``report.pdf`` too.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from rejection_fhir.cli import main
from rejection_fhir.commands.report import print_report
from rejection_fhir.report import Report, build_report, render_html
from rejection_fhir.worksheet.measures import worksheet_measures
from tests.browser.conftest import ARTIFACTS, PageLog
from tests.fakefhir import BASE, FakeFhir
from tests.unit.report.records import CODES, course_of_care, of_type

pytestmark = pytest.mark.browser

GENERATED = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
RED = "rgb(179, 38, 30)"


@pytest.fixture
def resources(catalog) -> Any:
    yield course_of_care(catalog).resources


@pytest.fixture
def report(resources) -> Report:
    return build_report(
        "p1",
        observations=of_type(resources, "Observation"),
        documents=of_type(resources, "DocumentReference"),
        flags=of_type(resources, "Flag"),
        generated_at=GENERATED,
        server="https://ehr.example.org/fhir",
        measures=worksheet_measures(CODES),
    )


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not rendered"
    return box


def test_report_renders_with_charts_and_the_flag_box_on_top(
    page: Any, page_log: PageLog, report: Report
) -> None:
    page.set_content(render_html(report), wait_until="load")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

    # The safety box: first in the page's main part, in the first screenful, red.
    first_section = page.locator("main > section").first
    assert first_section.get_attribute("id") == "safety"
    assert "safety" in (first_section.get_attribute("class") or "").split()
    safety = _box(page, "section.safety")
    assert safety["y"] < 300 and safety["height"] > 60
    assert page.locator("section.safety").is_visible()
    assert page.locator("section.safety").evaluate("e => getComputedStyle(e).borderTopColor") == RED
    assert page.locator("section.safety li.flag time").inner_text() == "2026-10-05 09:12"

    # One visible chart per measure, each below the safety box, with a marker per value.
    charts = page.locator("svg.chart")
    assert charts.count() == len(report.charts) == 8
    for index, chart in enumerate(report.charts):
        svg = charts.nth(index)
        assert svg.is_visible()
        box = svg.bounding_box()
        assert box is not None
        if chart.measure.bands:  # scores: full width
            assert box["width"] > 800 and box["height"] > 280
        else:  # worksheet trends: two to a row
            assert 380 < box["width"] < 460 and box["height"] > 220
        assert box["y"] > safety["y"] + safety["height"]
        points = svg.locator(".point")
        assert points.count() == len(chart.points), chart.measure.title
        for n in range(points.count()):
            point = points.nth(n).bounding_box()
            assert point is not None and point["width"] > 4, "markers are drawn"
            assert box["x"] <= point["x"] <= box["x"] + box["width"]
            assert box["y"] <= point["y"] <= box["y"] + box["height"]
    cards = page.locator("div.chart-grid > figure")
    boxes = [cards.nth(n).bounding_box() for n in range(cards.count())]
    assert len(boxes) == 6
    for left, right in zip(boxes[::2], boxes[1::2], strict=True):
        assert left["x"] < right["x"] and left["y"] == right["y"], "trend cards pair up"
    # PHQ-9: five bands shaded, higher scores drawn higher.
    phq9 = charts.nth(0)
    assert phq9.locator("rect.band").count() == 5
    ys = [phq9.locator(".point").nth(n).bounding_box()["y"] for n in range(6)]
    assert ys == sorted(ys), "PHQ-9 fell from 18 to 9, so each marker sits lower"
    assert phq9.locator(".flag-ring").count() == 1

    # Values tables and worksheets.
    assert page.locator("table.values tbody tr").count() == 29
    assert page.locator("article.worksheet").count() == 21
    assert (
        page.locator("article.worksheet h3").first.inner_text() == "Self-compassion after rejection"
    )

    # Nothing wider than the window, nothing fetched, no errors.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"]
    assert page_log.problems() == []


def test_empty_report_renders(page: Any, page_log: PageLog) -> None:
    empty = build_report("p1", generated_at=GENERATED, server="https://ehr.example.org/fhir")
    page.set_content(render_html(empty), wait_until="load")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-empty.png"), full_page=True)
    assert page.locator("#empty h2").inner_text() == "No responses synced yet"
    assert page.locator("#empty").is_visible()
    assert page.locator("section.no-safety").is_visible()
    assert page.locator("svg.chart").count() == 0
    assert page_log.problems() == []


def test_hostile_text_runs_nothing(page: Any, page_log: PageLog, resources) -> None:
    payload = (
        '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    )
    for resource in resources:
        if resource["resourceType"] == "Flag":
            resource["code"]["text"] = payload
        if resource["resourceType"] == "DocumentReference":
            resource["description"] = payload
    report = build_report(
        "p1",
        observations=of_type(resources, "Observation"),
        documents=of_type(resources, "DocumentReference"),
        flags=of_type(resources, "Flag"),
        generated_at=GENERATED,
    )
    page.set_content(render_html(report), wait_until="load")
    assert page.title() == "Progress report: Patient/p1"
    assert page.locator("section.safety .flag-text").inner_text() == payload
    assert page.locator("script, img, iframe").count() == 0
    assert page_log.problems() == []


def _pdf_pages(pdf: bytes) -> int:
    return pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")


def test_print_to_pdf_and_png(chromium_path: Path, report: Report, tmp_path: Path) -> None:
    pdf, png = tmp_path / "report.pdf", tmp_path / "report-print.png"
    print_report(render_html(report), report, pdf=pdf, png=png, chromium=chromium_path)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and _pdf_pages(data) >= 3
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(pdf, ARTIFACTS / "report.pdf")


def test_cli_writes_html_pdf_and_png(
    chromium_path: Path, resources, tmp_path: Path, monkeypatch, capsys, fake_fhir: FakeFhir
) -> None:
    monkeypatch.setenv("RFHIR_CHROMIUM", str(chromium_path))
    monkeypatch.delenv("RFHIR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    fake_fhir.add(*resources)
    main(
        [
            "report",
            "--patient",
            "p1",
            "--server",
            BASE,
            "--out",
            "out/r.html",
            "--pdf",
            "out/r.pdf",
            "--png",
            "out/r.png",
        ]
    )
    assert "1 active safety flag, 8 chart(s), 21 worksheet note(s)" in capsys.readouterr().out
    assert (tmp_path / "out/r.html").read_text().count('class="point"') == 29
    assert (tmp_path / "out/r.pdf").read_bytes().startswith(b"%PDF-")
    assert (tmp_path / "out/r.png").read_bytes().startswith(b"\x89PNG")
