"""A client's text can never become markup: in the XHTML narrative the sync writes into the
EHR, in its Markdown note, nor in the clinician's HTML report.

Each test renders the same record twice, once with hostile payloads in every place a client
(or a foreign server) controls and once with plain words there, parses both, and requires
the same elements and attribute names in the same order: a payload adds nothing.  The
payload must still be there as text, so the check cannot pass by dropping it.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from rejection_fhir.report import build_report, render_html
from rejection_fhir.response import Line, Section, Summary, render_markdown, render_xhtml, summarize
from tests.unit.report.records import Clinic, answer, code, integer, of_type, text

PAYLOADS = [
    "<script>alert('xss')</script>",
    '<iframe src="javascript:alert(1)"></iframe>',
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "'><body onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "javascript:alert(document.cookie)",
    "</div></li></ul><script>alert(1)</script>",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<!--<script>alert(1)</script>-->",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<style>*{background:url(javascript:alert(1))}</style>",
    "[click](javascript:alert(1)) ![x](https://evil.example/x.png)",
    '<b onmouseover=alert(1)>**bold**</b> <div style="x:expression(alert(1))">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<object data=x.swf></object><embed src=x><form action=x><input autofocus onfocus=alert(1)>",
    "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>&e;",
    "\u202e<script>\u202c alert(1)",
]
HOSTILE = " ".join(PAYLOADS)
#: The same shape of text, but words only.
PLAIN = "plain words only"

Structure = list[tuple[str, tuple[str, ...]]]


def xhtml_structure(xhtml: str) -> tuple[Structure, str]:
    """(tag, attribute names) of every element in document order, and all the text."""
    root = ET.fromstring(xhtml)
    elements = [(e.tag, tuple(sorted(e.attrib))) for e in root.iter()]
    return elements, "".join(root.itertext())


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: Structure = []
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, tuple(sorted(name for name, _ in attrs))))
        self.attributes.extend((tag, name, value or "") for name, value in attrs)

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.elements.append(("<!--", ()))


def html_structure(html: str) -> tuple[Structure, str, list[tuple[str, str, str]]]:
    parser = _Html()
    parser.feed(html)
    parser.close()
    return parser.elements, "".join(parser.text), parser.attributes


def assert_inert_attributes(attributes: list[tuple[str, str, str]]) -> None:
    for tag, name, value in attributes:
        assert not name.startswith("on"), (tag, name)
        assert "javascript:" not in value.lower(), (tag, name, value)
        assert "expression(" not in value.lower(), (tag, name, value)


# --------------------------------------------------------------------------- narrative


def _foreign(payload: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Questionnaire from someone else's server and a response to it: the payload sits in
    the title, item texts, a coded answer's display, free text and the subject's name."""
    questionnaire = {
        "resourceType": "Questionnaire",
        "url": "https://elsewhere.example/Questionnaire/q",
        "version": "1",
        "status": "active",
        "title": payload,
        "item": [
            {
                "linkId": "g",
                "type": "group",
                "text": payload,
                "item": [
                    {"linkId": "free", "type": "text", "text": payload},
                    {
                        "linkId": "pick",
                        "type": "open-choice",
                        "text": "Pick",
                        "answerOption": [
                            {"valueCoding": {"system": "urn:x", "code": "a", "display": payload}}
                        ],
                    },
                ],
            },
            {"linkId": "n", "type": "integer", "text": payload},
        ],
    }
    response = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://elsewhere.example/Questionnaire/q|1",
        "status": "completed",
        "authored": "2026-11-01T10:00:00Z",
        "subject": {"reference": "Patient/1", "display": payload},
        "item": [
            {
                "linkId": "g",
                "text": payload,
                "item": [
                    {
                        "linkId": "free",
                        "answer": [{"valueString": payload + "\nsecond line " + payload}],
                    },
                    {
                        "linkId": "pick",
                        "answer": [
                            {"valueCoding": {"system": "urn:x", "code": "a"}},
                            {"valueString": payload},
                            {
                                "valueCoding": {
                                    "system": "urn:y",
                                    "code": payload,
                                    "display": payload,
                                }
                            },
                        ],
                    },
                ],
            },
            {"linkId": "n", "answer": [{"valueInteger": 3}]},
            {"linkId": "unknown", "text": payload, "answer": [{"valueString": payload}]},
        ],
    }
    return questionnaire, response


@pytest.mark.parametrize("with_questionnaire", [True, False], ids=["known", "own-texts"])
def test_narrative_has_no_element_or_attribute_from_a_payload(with_questionnaire: bool) -> None:
    rendered = {}
    for label, words in (("hostile", HOSTILE), ("plain", PLAIN)):
        questionnaire, response = _foreign(words)
        summary = summarize(response, questionnaire if with_questionnaire else None)
        rendered[label] = render_xhtml(summary)
    hostile, hostile_text = xhtml_structure(rendered["hostile"])
    plain, _ = xhtml_structure(rendered["plain"])
    assert hostile == plain
    allowed = {"div", "h2", "h3", "h4", "h5", "h6", "p", "br", "b", "strong", "ul", "li", "hr"}
    assert {tag.split("}")[-1] for tag, _ in hostile} <= allowed
    assert all(attrs == () for _, attrs in hostile)  # xmlns is the namespace, not an attribute
    for payload in ("<script>alert('xss')</script>", "<img src=x onerror=alert(1)>"):
        assert payload in hostile_text  # kept, as text


# --------------------------------------------------------------------------- Markdown

#: CommonMark as the spec has it, with GFM's tables and strikethrough: what EHRs that show
#: Markdown commonly render.  (GFM's bare-URL autolinks are checked by test_render.)
_COMMONMARK = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def markdown_structure(markdown: str) -> tuple[list[tuple[str, str]], str]:
    """(token type, tag) of every block and inline token but text, and all the text, as a
    CommonMark parser reads ``markdown``.  Hard and soft breaks count as text (spaces)."""
    structure: list[tuple[str, str]] = []
    text: list[str] = []
    for token in _COMMONMARK.parse(markdown):
        if token.type != "inline":
            structure.append((token.type, token.tag))
            continue
        for child in token.children or []:
            if child.type == "text":
                text.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                text.append(" ")
            else:
                structure.append((child.type, child.tag))
                text.append(child.content)
        text.append(" ")
    return structure, " ".join("".join(text).split())


def test_markdown_note_keeps_every_payload_as_text() -> None:
    questionnaire, response = _foreign(HOSTILE)
    hostile_md = render_markdown(summarize(response, questionnaire))
    questionnaire, response = _foreign(PLAIN)
    plain_md = render_markdown(summarize(response, questionnaire))
    hostile, text = markdown_structure(hostile_md)
    assert hostile == markdown_structure(plain_md)[0]
    assert not {kind for kind, _ in hostile} & {"html_inline", "html_block", "link_open", "image"}
    for payload in ("<script>alert('xss')</script>", "[click](javascript:alert(1))"):
        assert payload in text  # kept, as text


#: Text heavy in what opens Markdown or HTML, at line starts and inside lines.
_MARKUP_TEXT = st.lists(
    st.sampled_from(
        [
            *"\\`*_{}[]()#+-.!|<>~=&:;/@ \nabc19xX",
            *("http://", "www.", "&amp;", "<b>", "](", "1. ", "- ", "> ", "```", "===", "---"),
        ]
    ),
    max_size=30,
).map("".join)


def _one_line_each(text: str) -> str:
    return "\n".join("w" for line in text.split("\n") if line.strip()) or "w"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=_MARKUP_TEXT, label=_MARKUP_TEXT, value=_MARKUP_TEXT, other=_MARKUP_TEXT)
def test_markdown_round_trips_any_text_as_plain_text(
    title: str, label: str, value: str, other: str
) -> None:
    """Rendered and parsed back, client text gives the structure plain words give, and the
    same words: never a link, an HTML tag, emphasis, code, a heading, a list or a table."""

    def summary(t: str, lab: str, val: str, oth: str) -> Summary:
        t, lab, val, oth = (x if x.strip() else "" for x in (t, lab, val, oth))
        return Summary(
            t or "T",
            None,
            None,
            None,
            None,
            alerts=(val or "v",),
            sections=(
                Section(
                    t or "T", (Line(lab or "L", (val or "v",)), Line("M", (val or "v", oth or "o")))
                ),
            ),
        )

    hostile = render_markdown(summary(title, label, value, other))
    plain = render_markdown(
        summary(
            " ".join("w" for _ in title.split("\n") if _.strip()) or "w",
            " ".join("w" for _ in label.split("\n") if _.strip()) or "w",
            _one_line_each(value),
            _one_line_each(other),
        )
    )
    structure, text = markdown_structure(hostile)
    assert structure == markdown_structure(plain)[0], hostile
    caption = " ".join(label.split())
    if caption.endswith(".") and not caption.endswith(".."):
        caption = caption[:-1].strip()  # a caption drops its full stop, by design
    assert caption in text, (label, hostile)
    assert " ".join(title.split()) in text, (title, hostile)
    for original in (value, other):
        for line in original.split("\n"):
            if line.strip():
                assert " ".join(line.split()) in text, (line, hostile)


# --------------------------------------------------------------------------- report


def _records(catalog: Any, words: str) -> list[dict[str, Any]]:
    """What the sync writes for a client whose free text is ``words``, plus Observations and
    a Flag with ``words`` where a foreign writer could put text."""
    clinic = Clinic(catalog)
    clinic.rejection_log(
        "2026-10-01T10:00:00Z", words + "\n- " + words + "\n# " + words, 7, [("hurt", 8)]
    )
    clinic.respond(
        "core-beliefs",
        "2026-10-02T10:00:00Z",
        [
            text("situation", words),
            answer("belief", code("other", words)),
            integer("strength-before", 80),
            answer("evidence-for", {"valueString": words}),
            answer("alternative", {"valueString": f"**{words}** _{words}_ `{words}`"}),
            integer("strength-after", 40),
        ],
    )
    clinic.phq9("2026-10-03T10:00:00+01:00", 14, item9=2)
    resources = clinic.resources
    for resource in resources:
        if resource["resourceType"] == "Observation":
            resource["code"]["text"] = words
            for coding in resource["code"].get("coding", []):
                coding["display"] = words
            resource.setdefault("interpretation", []).append({"text": words})
        if resource["resourceType"] == "Flag":
            resource["code"]["text"] = words
    return resources


def _page(catalog: Any, words: str) -> str:
    resources = _records(catalog, words)
    report = build_report(
        "p1",
        observations=of_type(resources, "Observation"),
        documents=of_type(resources, "DocumentReference"),
        flags=of_type(resources, "Flag"),
        generated_at=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
        server="https://ehr.example.org/fhir",
    )
    return render_html(report)


def test_report_has_no_element_or_attribute_from_a_payload(catalog: Any) -> None:
    hostile, hostile_text, attributes = html_structure(_page(catalog, HOSTILE))
    plain, _, _ = html_structure(_page(catalog, PLAIN))
    assert hostile == plain
    tags = {tag for tag, _ in hostile}
    assert not tags & {"script", "iframe", "img", "object", "embed", "form", "input", "math"}
    assert_inert_attributes(attributes)
    for tag, name, value in attributes:
        if name in ("href", "src", "xlink:href", "action"):
            assert value.startswith("#"), (tag, name, value)  # the page's own anchors only
    assert "<script>alert('xss')</script>" in hostile_text
    assert "<img src=x onerror=alert(1)>" in hostile_text


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_payload_alone_changes_no_structure(catalog: Any, payload: str) -> None:
    hostile, _, attributes = html_structure(_page(catalog, payload))
    plain, _, _ = html_structure(_page(catalog, "x" * len(payload)))
    assert hostile == plain
    assert_inert_attributes(attributes)
