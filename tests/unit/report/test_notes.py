"""Notes as inert blocks: our Markdown read back exactly, foreign markup reduced to text."""

from __future__ import annotations

import re

import pytest

from rejection_fhir.report.notes import (
    Block,
    Run,
    blocks_from_markdown,
    blocks_from_xhtml,
    drop_front_matter,
    inline_runs,
)
from rejection_fhir.response.render import render_markdown, render_xhtml
from rejection_fhir.response.summary import Line, Section, Summary

PAYLOADS = [
    "<script>alert('x')</script>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<img src=x onerror="alert(1)">',
    "Tom & Jerry &amp; &lt;b&gt; &#60;",
    "**bold** _it_ [link](http://evil.test) ![img](x.png) `code` <http://evil.test>",
    "# not a heading\n- not a list\n> not a quote\n---\n    not code",
    "a ** b ** c \\ d \\\\ e ***",
    "\x00\x07\x1b[31mred\x1b[0m \u202egnp.exe end",
]
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def hostile(payload: str) -> Summary:
    return Summary(
        title="Rejection log",
        questionnaire="https://rejection-fhir.org/fhir/Questionnaire/rejection-log|1.0.0",
        authored="2026-11-20T10:14:03+00:00",
        subject="Patient/p1",
        status="completed",
        alerts=(payload,),
        highlights=(Line("Kind", (payload,)),),
        sections=(
            Section(
                payload, (Line(payload, (payload, payload), children=(Line("x", (payload,)),)),)
            ),
            Section(None, (Line("What happened?", (payload,)),)),
        ),
    )


def visible_lines(payload: str) -> list[str]:
    return [
        " ".join(line.split()) for line in CONTROLS.sub("", payload).split("\n") if line.strip()
    ]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_our_markdown_reads_back_as_the_clients_exact_words(payload):
    blocks = blocks_from_markdown(render_markdown(hostile(payload)))
    texts = [" ".join(b.text.split()) for b in blocks]
    for line in visible_lines(payload):
        assert any(line in text for text in texts), line
    # The structure is ours alone, whatever the client typed.
    assert [b.kind for b in blocks if b.kind != "end"] == [
        "alert",  # before everything
        "heading",  # title
        "item",
        "item",
        "item",
        "item",  # front matter
        "heading",  # Highlights
        "item",
        "heading",  # the payload as a section heading
        "item",
        "item",
        "item",
        "item",  # a line with two values and a child
        "rule",
        "item",
    ]
    assert not any(CONTROLS.search(b.text) for b in blocks)


def test_summary_structure_levels_and_bold_captions():
    summary = Summary(
        title="Rejection log",
        questionnaire=None,
        authored=None,
        subject=None,
        status=None,
        highlights=(Line("Strongest emotions", ("Hurt 8/10",)),),
        sections=(
            Section(
                "Emotions I felt (1)",
                (Line("What have you noticed since?", ("Going over it", "Low mood")),),
            ),
        ),
    )
    blocks = blocks_from_markdown(render_markdown(summary))
    assert [(b.kind, b.level, b.runs) for b in blocks] == [
        ("heading", 1, (Run("Rejection log"),)),
        ("heading", 2, (Run("Highlights"),)),
        ("item", 0, (Run("Strongest emotions:", True), Run(" Hurt 8/10"))),
        ("end", 0, ()),
        ("heading", 2, (Run("Emotions I felt (1)"),)),
        ("item", 0, (Run("What have you noticed since?", True),)),
        ("item", 1, (Run("Going over it"),)),
        ("item", 1, (Run("Low mood"),)),
        ("end", 0, ()),
    ]


def test_multi_line_answers_keep_their_line_breaks():
    summary = Summary(
        "T", None, None, None, None, sections=(Section(None, (Line("Q", ("one\ntwo",)),)),)
    )
    items = [b for b in blocks_from_markdown(render_markdown(summary)) if b.kind == "item"]
    assert items[0].runs == (Run("Q:", True), Run(" one\ntwo"))


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("plain", (Run("plain"),)),
        ("**A:** b", (Run("A:", True), Run(" b"))),
        (r"\*\*not bold\*\*", (Run("**not bold**"),)),
        ("** unpaired", (Run("** unpaired"),)),
        ("**a** **b** **", (Run("a", True), Run(" "), Run("b", True), Run(" **"))),
        (r"back\\slash \q", (Run(r"back\slash \q"),)),
        ("<b>x</b> &amp;", (Run("<b>x</b> &amp;"),)),
        ("", ()),
    ],
)
def test_inline_runs(text, runs):
    assert inline_runs(text) == runs


def test_front_matter_is_dropped_and_only_at_the_front():
    blocks = blocks_from_markdown(
        "# Title\n\n- **Questionnaire:** x\n- **Status:** completed\n\n## Highlights\n\n"
        "- **Status:** kept\n"
    )
    assert [(b.kind, b.text) for b in drop_front_matter(blocks)] == [
        ("heading", "Highlights"),
        ("item", "Status: kept"),
        ("end", ""),
    ]


def test_unknown_markdown_stays_literal_text():
    blocks = blocks_from_markdown("[x](javascript:alert(1)) ![i](http://e.test/x.png)\n<b>hi</b>")
    assert blocks == (
        Block("para", (Run("[x](javascript:alert(1)) ![i](http://e.test/x.png) <b>hi</b>"),)),
    )


# --------------------------------------------------------------------------- XHTML


def test_narrative_keeps_text_and_outline_drops_markup():
    div = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><h2>Title</h2>'
        '<p onclick="x()"><b>Kind:</b> Social &amp; more</p>'
        "<ul><li>one<ul><li>nested</li></ul></li><li>two</li></ul>"
        "<script>alert(1)</script><style>p{}</style><iframe src='x'>frame text</iframe>"
        '<p><a href="javascript:alert(1)">link text</a><img src=x onerror="alert(1)"></p><hr/>'
        "<p>after</p></div>"
    )
    blocks = blocks_from_xhtml(div)
    assert [(b.kind, b.level, b.text) for b in blocks] == [
        ("heading", 2, "Title"),
        ("para", 0, "Kind: Social & more"),
        ("item", 0, "one"),
        ("item", 1, "nested"),
        ("item", 0, "two"),
        ("para", 0, "link text"),
        ("rule", 0, ""),
        ("para", 0, "after"),
    ]
    assert blocks[1].runs[0] == Run("Kind:", True)


def test_our_own_narrative_reads_back():
    blocks = blocks_from_xhtml(render_xhtml(hostile(PAYLOADS[0])))
    assert any("<script>alert('x')</script>" in b.text for b in blocks)
    assert blocks[0].kind == "para" and blocks[0].runs[0].bold  # the alert, before the title
    assert blocks[0].text.startswith("ALERT: <script>")
    assert blocks[1] == Block("heading", (Run("Rejection log"),), 2)
    kept = drop_front_matter(blocks)
    assert kept[:2] == blocks[:2], "a heading that is not the title stays"
    dropped = drop_front_matter(blocks, "Rejection log (2026-11-20)")
    assert dropped[0] == blocks[0] and dropped[1].kind == "heading"  # the alert stays first
    assert "Rejection log" not in [b.text for b in dropped]
