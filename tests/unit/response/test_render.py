"""Renderers: the exact output for a small summary, and a client's text never becoming markup."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from rejection_fhir.response import (
    Line,
    Section,
    Summary,
    narrative,
    render_json,
    render_markdown,
    render_text,
    render_xhtml,
    summarize,
)
from tests.unit.security.test_markup import markdown_structure

SUMMARY = Summary(
    title="Rejection log",
    questionnaire="http://clinic.test/Q/rejection-log|1.0.0",
    authored="2025-03-14T19:30:00+01:00",
    subject="Patient/p1",
    status="completed",
    alerts=("Thought about hurting themself",),
    highlights=(Line("Strongest emotion", ("Hurt 8/10",)),),
    sections=(
        Section(
            "What happened",
            (
                Line("What happened?", ("He cancelled.\nAgain.",)),
                Line("Reactions", ("Rumination", "Avoidance")),
                Section("Emotion (1)", (Line("Emotion", ("Hurt",)),)),
            ),
        ),
        Section(None, (Line("Did it hurt?", ("Yes",), children=(Line("How much", ("A lot",)),)),)),
    ),
)


def test_text() -> None:
    assert render_text(SUMMARY) == (
        "!! ALERT: Thought about hurting themself\n"  # before everything
        "\n"
        "Rejection log\n"
        "=============\n"
        "Questionnaire: http://clinic.test/Q/rejection-log|1.0.0\n"
        "Authored: 2025-03-14T19:30:00+01:00\n"
        "Subject: Patient/p1\n"
        "Status: completed\n"
        "\n"
        "Highlights\n"
        "  Strongest emotion: Hurt 8/10\n"
        "\n"
        "What happened\n"
        "-------------\n"
        "  What happened? He cancelled.\n"
        "      Again.\n"
        "  Reactions:\n"
        "    - Rumination\n"
        "    - Avoidance\n"
        "  Emotion (1)\n"
        "    Emotion: Hurt\n"
        "\n"
        "Did it hurt? Yes\n"
        "  How much: A lot\n"
    )


def test_markdown() -> None:
    # Escapes only where markup would start: dates, versions and full stops stay readable.
    assert render_markdown(SUMMARY) == (
        "> **ALERT:** Thought about hurting themself\n"  # before everything
        "\n"
        "# Rejection log\n"
        "\n"
        "- **Questionnaire:** http\\://clinic.test/Q/rejection-log|1.0.0\n"  # no autolink
        "- **Authored:** 2025-03-14T19:30:00+01:00\n"
        "- **Subject:** Patient/p1\n"
        "- **Status:** completed\n"
        "\n"
        "## Highlights\n"
        "\n"
        "- **Strongest emotion:** Hurt 8/10\n"
        "\n"
        "## What happened\n"
        "\n"
        "- **What happened?** He cancelled.\\\n"  # a hard line break
        "  Again.\n"
        "- **Reactions:**\n"
        "  - Rumination\n"
        "  - Avoidance\n"
        "\n"
        "### Emotion (1)\n"
        "\n"
        "- **Emotion:** Hurt\n"
        "\n"
        "---\n"  # loose questions must not read as part of "Emotion (1)"
        "\n"
        "- **Did it hurt?** Yes\n"
        "  - **How much:** A lot\n"
    )


def test_xhtml() -> None:
    assert render_xhtml(SUMMARY) == (
        '<div xmlns="http://www.w3.org/1999/xhtml">'
        # Before everything, and bold in a paragraph of its own: visible without CSS.
        "<p><strong>ALERT: Thought about hurting themself</strong></p>"
        "<h2>Rejection log</h2>"
        "<p><b>Questionnaire:</b> http://clinic.test/Q/rejection-log|1.0.0<br/>"
        "<b>Authored:</b> 2025-03-14T19:30:00+01:00<br/>"
        "<b>Subject:</b> Patient/p1<br/>"
        "<b>Status:</b> completed</p>"
        "<h3>Highlights</h3><ul><li><b>Strongest emotion:</b> Hurt 8/10</li></ul>"
        "<h3>What happened</h3>"
        "<ul><li><b>What happened?</b> He cancelled.<br/>Again.</li>"
        "<li><b>Reactions:</b> <ul><li>Rumination</li><li>Avoidance</li></ul></li></ul>"
        "<h4>Emotion (1)</h4><ul><li><b>Emotion:</b> Hurt</li></ul>"
        "<hr/>"
        "<ul><li><b>Did it hurt?</b> Yes<ul><li><b>How much:</b> A lot</li></ul></li></ul>"
        "</div>"
    )


def test_json() -> None:
    rendered = render_json(SUMMARY)
    assert json.loads(json.dumps(rendered)) == rendered
    assert rendered["alerts"] == [
        {"kind": "note", "severity": "info", "text": "Thought about hurting themself"}
    ]
    assert rendered["scores"] == []
    assert rendered["highlights"] == [
        {
            "kind": "line",
            "label": "Strongest emotion",
            "values": ["Hurt 8/10"],
            "linkId": None,
            "path": None,
            "children": [],
        }
    ]
    what = rendered["sections"][0]
    assert (what["kind"], what["heading"]) == ("section", "What happened")
    assert [e["kind"] for e in what["entries"]] == ["line", "line", "section"]
    assert what["entries"][1]["values"] == ["Rumination", "Avoidance"]
    assert rendered["sections"][1]["entries"][0]["children"][0]["label"] == "How much"


def test_narrative() -> None:
    assert narrative(SUMMARY) == {"status": "generated", "div": render_xhtml(SUMMARY)}


def test_a_real_summary_renders_everywhere(
    response: dict[str, Any], questionnaire: dict[str, Any]
) -> None:
    summary = summarize(response, questionnaire)
    assert "He said he needed space & didn't call back." in render_text(summary)
    assert "space & didn't call back." in render_markdown(summary)
    assert "space &amp; didn&#x27;t call back." in render_xhtml(summary)
    ET.fromstring(render_xhtml(summary))


# ---------------------------------------------------------------------- hostile text

PAYLOADS = [
    "<script>alert('x')</script>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<img src=x onerror="alert(1)">',
    "Tom & Jerry &amp; &lt;b&gt; &#60;",
    "**bold** _it_ [link](http://evil.test) ![img](x.png) `code` <http://evil.test>",
    "# not a heading\n- not a list\n> not a quote\n1. not ordered\n    not code\n---\n===",
    "]]><![CDATA[ <b>",
    "\x00\x07\x1b[31mred\x1b[0m \u202egnp.exe \u2066x\u2069 \ud800 end",
    "\\*already escaped\\*",
    "$x$ @mention ~~gone~~ | a | b | <!-- c -->",
]
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def hostile(payload: str) -> Summary:
    """A summary with the payload in every place a client's words can reach."""
    return Summary(
        title=payload,
        questionnaire=payload,
        authored=None,
        subject=payload,
        status="completed",
        alerts=(payload,),
        highlights=(Line(payload, (payload,)),),
        sections=(
            Section(
                payload, (Line(payload, (payload, payload), children=(Line(payload, (payload,)),)),)
            ),
            Section(None, (Section(payload, (Line("q", (payload,)),)),)),
        ),
    )


def visible_lines(payload: str) -> list[str]:
    """What of the payload a reader should see, line by line (controls dropped)."""
    return [line.strip() for line in CONTROLS.sub("", payload).split("\n") if line.strip()]


#: The elements render_xhtml may emit: a subset of what FHIR narrative allows.
NARRATIVE_TAGS = {"div", "p", "b", "strong", "br", "hr", "ul", "li", "h2", "h3", "h4", "h5", "h6"}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_xhtml_keeps_hostile_text_as_text(payload: str) -> None:
    div = render_xhtml(hostile(payload))
    root = ET.fromstring(div)  # well-formed XML, or this raises
    assert root.tag == "{http://www.w3.org/1999/xhtml}div"
    for element in root.iter():
        namespace, _, tag = element.tag.partition("}")
        assert namespace == "{http://www.w3.org/1999/xhtml"
        assert tag in NARRATIVE_TAGS
        assert element.attrib == {}  # no on*, src, href or style can sneak in
    text = "".join(root.itertext())
    for line in visible_lines(payload):
        assert line in text
    assert not CONTROLS.search(div)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_keeps_hostile_text_as_text(payload: str) -> None:
    """Parsed back by a CommonMark parser (with GFM tables and strikethrough), the note has
    the structure it has with plain words in the same places, and shows the payload."""
    markdown = render_markdown(hostile(payload))
    assert not CONTROLS.search(markdown)
    plain = "\n".join("words" for _ in visible_lines(payload)) or "words"
    structure, text = markdown_structure(markdown)
    assert structure == markdown_structure(render_markdown(hostile(plain)))[0]
    for visible in visible_lines(payload):
        assert " ".join(visible.split()) in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-11-20T10:14:03+00:00", "2026-11-20T10:14:03+00:00"),
        ("Tom & Jerry (again). Why? 50% - maybe!", "Tom & Jerry (again). Why? 50% - maybe!"),
        ("snake_case and a_b", "snake_case and a_b"),
        (
            "_it_ *b* `c` [l](x) <b> ~~s~~",
            "\\_it\\_ \\*b\\* \\`c\\` \\[l\\](x) \\<b> \\~\\~s\\~\\~",
        ),
        ("&amp; &#60; & x", "\\&amp; \\&#60; & x"),
        (
            "https://x.example www.x.example a@b.example",
            "https\\://x.example www\\.x.example a\\@b.example",
        ),
    ],
)
def test_markdown_escapes_only_what_would_become_markup(value: str, shown: str) -> None:
    summary = Summary(
        "T", None, None, None, None, sections=(Section(None, (Line("Q", (value,)),)),)
    )
    assert render_markdown(summary).endswith(f"- **Q:** {shown}\n")


def test_markdown_escapes_block_markup_at_every_line_start() -> None:
    lines = [
        "# h",
        "> q",
        "- l",
        "+ l",
        "* l",
        "1. o",
        "2) o",
        "===",
        "---",
        "| a |",
        ":-:|-",
        "```",
        "~~~",
    ]
    summary = Summary(
        "Title #", None, None, None, None,
        sections=(Section(None, (Line("Q", ("\n".join(["first", *lines]),)), Line("R", ("x", "# y")))),),
    )  # fmt: skip
    markdown = render_markdown(summary)
    assert markdown.startswith("# Title \\#\n")  # not a closing sequence
    for line in lines:
        assert "\n  " + line + "\\" not in markdown and "\n  " + line + "\n" not in markdown
    assert "  - \\# y" in markdown
    structure, _ = markdown_structure(markdown)
    assert [
        t for t in structure if t[0].startswith(("heading", "blockquote", "fence", "table", "hr"))
    ] == [
        ("heading_open", "h1"),
        ("heading_close", "h1"),
    ]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_text_drops_control_characters(payload: str) -> None:
    text = render_text(hostile(payload))
    assert not CONTROLS.search(text)
    for line in visible_lines(payload):
        assert line in text


@pytest.mark.parametrize("payload", PAYLOADS)
def test_json_keeps_the_answers_exactly(payload: str) -> None:
    rendered = render_json(hostile(payload))
    assert rendered["highlights"][0]["values"] == [payload]
    if "\ud800" not in payload:  # a lone surrogate cannot be encoded, by design of JSON
        assert json.loads(json.dumps(rendered)) == rendered
