"""The HTML page: sections in the clinician's order, self-contained, and inert."""

from __future__ import annotations

import base64
import copy
import json
import os
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rejection_fhir.report import render_html
from tests.unit.report.conftest import report_of
from tests.unit.report.records import CODES, of_type, survey_observation
from tests.unit.report.tree import tree

#: Elements that could run code, load something or navigate: none may appear.
FORBIDDEN = {
    "script",
    "iframe",
    "frame",
    "object",
    "embed",
    "img",
    "link",
    "base",
    "form",
    "input",
    "video",
    "audio",
    "source",
    "image",
    "use",
    "foreignobject",
    "a-script",
}
PAYLOADS = [
    "<script>alert('x')</script>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<img src=x onerror="alert(1)">',
    '"><svg onload=alert(1)>',
    "</textarea></style></title><script>alert(2)</script>",
    "javascript:alert(3)",
]


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    parents: tuple[str, ...] = ()


@dataclass
class Page(HTMLParser):
    elements: list[Element] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    stack: list[Element] = field(default_factory=list)

    def __post_init__(self) -> None:
        HTMLParser.__init__(self, convert_charrefs=True)

    VOID = frozenset({"meta", "br", "hr", "circle", "rect", "line", "polyline", "polygon"})

    def handle_starttag(self, tag, attrs):
        element = Element(
            tag, {k: v or "" for k, v in attrs}, parents=tuple(e.tag for e in self.stack)
        )
        self.elements.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.elements.append(
            Element(tag, {k: v or "" for k, v in attrs}, parents=tuple(e.tag for e in self.stack))
        )

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data):
        self.texts.append(data)
        for element in self.stack:
            element.text += data

    def find(self, tag=None, cls=None, id=None):
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag)
            and (cls is None or cls in e.attrs.get("class", "").split())
            and (id is None or e.attrs.get("id") == id)
        ]

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def assert_inert(page: Page) -> None:
    tags = {e.tag for e in page.elements}
    assert not tags & FORBIDDEN, tags & FORBIDDEN
    for element in page.elements:
        for name, value in element.attrs.items():
            assert not name.startswith("on"), (element.tag, name)
            assert "javascript:" not in value.lower(), (element.tag, name)
            if name in ("href", "src", "xlink:href", "action", "formaction"):
                assert value.startswith("#"), (element.tag, name, value)
            if name == "style":
                assert "url(" not in value
    (csp,) = [
        e for e in page.find("meta") if e.attrs.get("http-equiv") == "Content-Security-Policy"
    ]
    assert "default-src 'none'" in csp.attrs["content"]
    assert "script-src" not in csp.attrs["content"], "scripts fall under default-src 'none'"


def test_sections_come_in_the_clinicians_order(report):
    html = render_html(report)
    assert html.startswith("<!DOCTYPE html>")
    page = parse(html)
    order = [e.attrs["id"] for e in page.elements if e.tag == "section" and "id" in e.attrs]
    assert order == ["safety", "trends", "worksheets"]
    assert html.index('class="safety"') < html.index("<svg")
    assert_inert(page)


def test_header_names_patient_period_generated_and_source(report):
    page = parse(render_html(report))
    (meta,) = page.find("dl", cls="meta")
    assert meta.text == (
        "PatientPatient/p1 (name and birth date not available from the server)"
        "Period covered2026-09-07 to 2026-11-16"
        "Generated2026-11-26 12:00 UTCSourcehttps://ehr.example.org/fhir"
    )
    assert page.find("title")[0].text == "Progress report: Patient/p1"


@pytest.mark.parametrize(
    ("patient", "shown"),
    [
        (
            {"name": [{"family": "Example", "given": ["Sam", "J."]}], "birthDate": "1990-04-02"},
            "Sam J. Example, born 1990-04-02 (Patient/p1)",
        ),
        (
            {"name": [{"use": "old", "text": "Sam Old"}, {"use": "official", "text": "Sam New"}]},
            "Sam New, birth date not recorded (Patient/p1)",
        ),
        ({"birthDate": "1990"}, "name not recorded, born 1990 (Patient/p1)"),
    ],
)
def test_header_shows_the_clients_name_and_birth_date_beside_the_id(clinic, patient, shown):
    report = report_of(
        clinic.resources, patient_resource={"resourceType": "Patient", "id": "p1", **patient}
    )
    (meta,) = parse(render_html(report)).find("dl", cls="meta")
    assert meta.text.startswith(f"Patient{shown}Period covered")


def test_a_patient_resource_of_someone_else_is_not_shown(clinic):
    other = {"resourceType": "Patient", "id": "p2", "name": [{"text": "Someone Else"}]}
    report = report_of(clinic.resources, patient_resource=other)
    assert "Someone Else" not in render_html(report)


def test_safety_box_lists_each_flag_with_its_date(report):
    page = parse(render_html(report))
    (box,) = page.find("section", cls="safety")
    assert box.attrs["role"] == "alert"
    assert "Safety: 1 active flag to review" in box.text
    (item,) = page.find("li", cls="flag")
    assert item.text.startswith("2026-10-05 09:12SAFETY: PHQ-9 item 9")
    assert item.text.endswith("Answer: Several days")
    assert "suicide-risk procedure" not in item.text  # the advice is the section's
    assert box.text.count("suicide-risk procedure") == 1


def test_the_safety_advice_is_said_once_for_all_flags(clinic):
    clinic.phq9("2026-11-20T10:00:00Z", 18, item9=3)
    clinic.phq9("2026-11-21T10:00:00Z", 12, item9=1)
    page = parse(render_html(report_of(clinic.resources)))
    (box,) = page.find("section", cls="safety")
    items = page.find("li", cls="flag")
    assert len(items) == 3
    assert all("SAFETY: PHQ-9 item 9" in i.text for i in items)
    assert all("'Nearly every day'" in i.text or "'Several days'" in i.text for i in items)
    assert box.text.count("A clinician must review this response promptly") == 1
    assert not any("A clinician must review" in i.text for i in items)


def test_one_card_per_chart_with_a_table_row_per_value(report):
    page = parse(render_html(report))
    cards = page.find("figure", cls="chart-card")
    assert [c.text.split("Latest")[0] for c in cards][:2] == [
        "PHQ-9 total scoreDepression symptoms over the last two weeks; severity bands shaded "
        "(LOINC 44261-6)",
        "GAD-7 total scoreAnxiety symptoms over the last two weeks; severity bands shaded "
        "(LOINC 70274-6)",
    ]
    assert len(cards) == len(report.charts) == 8
    assert len(page.find(cls="point")) == sum(len(c.points) for c in report.charts) == 29
    tables = page.find("table", cls="values")
    rows = [e for e in page.find("tr") if "tbody" in e.parents]
    assert len(tables) == 8 and len(rows) == 29
    first_rows = [e.text for e in rows[:6]]
    assert first_rows[0] == "2026-09-07 09:1018Moderately severe"
    assert first_rows[2] == "2026-10-05 09:1214Moderate ⚠ safety flag"
    emotions = page.find("figure", cls="chart-card")[5].text
    assert "Latest: Hurt 5, Shame 3 (2026-11-09); Sadness 6 (2026-10-12)" in emotions
    headline = page.find("p", cls="headline")[0].text
    assert "Latest: 9 — Mild depression (5-9), 2026-11-16" in headline
    assert "Change: −9" in headline and "Lower is better" in headline


def test_worksheets_newest_first_with_highlights(report):
    page = parse(render_html(report))
    articles = page.find("article", cls="worksheet")
    assert len(articles) == 21
    first = articles[0].text
    assert first.startswith(
        "Self-compassion after rejection2026-11-16 21:00HIGHLIGHTS".replace(
            "HIGHLIGHTS", "Highlights"
        )
    )
    assert "(2026-11-16)" not in first, "the date is shown once, beside the title"
    assert (
        "Questionnaire:" not in page.text
        and "rejection-fhir.org/fhir/Questionnaire" not in page.text
    )
    assert len(page.find("div", cls="highlights")) == 21
    alerts = page.find("p", cls="note-alert")
    assert len(alerts) == 1 and alerts[0].text.startswith("ALERT: SAFETY: PHQ-9 item 9")


def test_empty_state_still_renders_a_whole_page():
    report = report_of([], server="https://ehr.example.org/fhir")
    html = render_html(report)
    page = parse(html)
    assert_inert(page)
    (empty,) = page.find("section", id="empty")
    assert empty.text.startswith("No responses synced yet")
    assert "Patient/p1 on https://ehr.example.org/fhir" in empty.text
    assert page.find("section", cls="no-safety")[0].text.startswith("SafetyNo active safety flag")
    assert page.find("svg") == [] and page.find("article") == []
    assert "Period covered" in page.text and "no data yet" in page.text
    assert html.endswith("</html>\n")


def test_print_styles_are_there(report):
    (style,) = parse(render_html(report)).find("style")
    assert "@media print" in style.text and "@page" in style.text
    assert "break-inside: avoid" in style.text and "print-color-adjust: exact" in style.text


# --------------------------------------------------------------------------- hostile text


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def hostile_resources(clinic, payload: str) -> list[dict]:
    """The payload in every field of every resource a report shows."""
    resources = copy.deepcopy(clinic.resources)
    document = of_type(resources, "DocumentReference")[0]
    document["description"] = payload
    markdown = f"# {payload}\n\n## {payload}\n\n- **{payload}** {payload}\n  - {payload}\n\n> {payload}\n\n{payload}\n"
    document["content"][0]["attachment"]["data"] = _b64(markdown)
    div_only = copy.deepcopy(document) | {"id": "div-only", "description": "Div only"}
    div_only["content"] = []
    div_only["text"]["div"] = (
        f'<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x">{payload}</p>{payload}</div>'
    )
    xhtml_attachment = copy.deepcopy(div_only) | {"id": "xhtml-only", "description": "XHTML only"}
    del xhtml_attachment["text"]
    xhtml_attachment["content"] = [
        {"attachment": {"contentType": "application/xhtml+xml", "data": _b64(payload + "<b>x</b>")}}
    ]
    flag = of_type(resources, "Flag")[0]
    flag["code"] = {"text": payload, "coding": [{"display": payload}]}
    foreign_flag = copy.deepcopy(flag) | {"id": "foreign-flag", "identifier": []}
    code = {"system": "http://example.org", "code": payload, "display": payload}
    observations = [
        survey_observation(code, 3, text=payload),
        survey_observation(
            {"system": CODES, "code": "emotion-intensity", "display": "I"}, 4, text=f"I: {payload}"
        ),
    ]
    for observation in observations:
        observation["interpretation"] = [{"text": payload}]
    return [*resources, div_only, xhtml_attachment, foreign_flag, *observations]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_nothing_from_the_server_becomes_markup(clinic, payload):
    report = report_of(hostile_resources(clinic, payload), server=payload)
    html = render_html(report)
    page = parse(html)
    assert_inert(page)
    # Every place shows the payload as text a clinician can read.
    visible = page.text
    assert visible.count(payload) >= 10
    assert any(payload in a.text for a in page.find("article", cls="worksheet"))
    assert payload in page.find("section", cls="safety")[0].text
    assert payload in page.find("section", cls="other-flags")[0].text
    titles = [t.text for t in page.find("h3")]
    assert payload in titles and "Div only" in titles and "XHTML only" in titles
    div_only = next(a for a in page.find("article") if a.text.startswith("Div only"))
    assert "not written by rejection-fhir" not in div_only.text
    # Chart titles, series and table cells too.
    assert any(payload in t.text for t in page.find("title"))
    assert any(payload in c.text for c in page.find("td"))


def test_patient_reference_is_escaped_too():
    report = report_of([], patient="<script>alert(1)</script>")
    page = parse(render_html(report))
    assert_inert(page)
    assert page.find("title")[0].text == "Progress report: Patient/<script>alert(1)</script>"


def test_a_long_series_is_split_into_tables_that_sit_side_by_side():
    code = {"system": CODES, "code": "hopefulness", "display": "Hopefulness"}
    observations = [
        survey_observation(code, i % 11, f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}T10:00:00Z")
        for i in range(40)
    ]
    page = parse(render_html(report_of(observations)))
    tables = page.find("table", cls="values")
    assert [t.text.split("Date")[0] for t in tables] == [
        "Values, oldest first (1 of 3)",
        "Values, oldest first (2 of 3)",
        "Values, oldest first (3 of 3)",
    ]
    rows = [e for e in page.find("tr") if "tbody" in e.parents]
    assert (
        len(rows) == 40 and rows[0].text.startswith("2026-01-01") and "2026-02-12" in rows[-1].text
    )
    assert len(page.find(cls="point")) == 40


# --------------------------------------------------------------------------- golden pages

GOLDEN = Path(__file__).parent / "golden"


def _golden(name: str, html: str) -> None:
    """The page's structure (tags, attributes, text) against a golden file, as parsed JSON;
    ``UPDATE_GOLDEN=1`` writes the file instead."""
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(tree(html), indent=1, ensure_ascii=False) + "\n")
    assert tree(html) == json.loads(path.read_text(encoding="utf-8"))


def test_the_course_of_care_page_matches_its_golden_file(report):
    _golden("course-of-care", render_html(report))


def test_the_empty_page_matches_its_golden_file():
    _golden("empty", render_html(report_of([], server="https://ehr.example.org/fhir")))


def test_a_hostile_page_matches_its_golden_file(clinic):
    # Markup, quotes, a control character and a bidi override in every field: shown as
    # text, the two invisible characters dropped.
    payload = PAYLOADS[3] + "\x07 \u202e'&amp;"
    _golden("hostile", render_html(report_of(hostile_resources(clinic, payload), server=payload)))
