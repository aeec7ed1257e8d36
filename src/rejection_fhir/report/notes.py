"""A note's text as inert blocks: headings, list items, rules, alerts and paragraphs.

The sync's notes are Markdown from :func:`rejection_fhir.response.render.render_markdown`:
headings, ``- **Caption:** answer`` items (nested by two spaces), ``> **ALERT:**`` quotes,
``---`` rules, backslash escapes and hard breaks.  This module reads exactly that subset
and nothing more: no links, images, HTML or emphasis other than ``**bold**``.  Anything
else stays literal text.  The output holds strings only; the page escapes every one, so a
note, ours or not, cannot put a tag, attribute or URL into the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

from rejection_fhir.response.render import clean

#: "end" closes a list: a blank line after an item, where the next list starts afresh.
BlockKind = Literal["heading", "item", "rule", "alert", "para", "end"]

# DOTALL: a logical line may hold the "\n" of a hard break.
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.DOTALL)
_ITEM = re.compile(r"^( *)[-*+]\s+(.*)$", re.DOTALL)
_RULE = re.compile(r"^\s{0,3}(?:-{3,}|\*{3,}|_{3,})\s*$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$", re.DOTALL)
_PUNCTUATION = frozenset(r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~""")
#: The note's own header lines, which the report already shows in the note's heading.
FRONT_MATTER = frozenset({"Questionnaire:", "Authored:", "Subject:", "Status:"})


@dataclass(frozen=True)
class Run:
    """Text, bold or not; a newline in ``text`` is a line break."""

    text: str
    bold: bool = False


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    runs: tuple[Run, ...] = ()
    #: Heading level (1-6) or list depth (0 = top level).
    level: int = 0

    @property
    def text(self) -> str:
        return "".join(r.text for r in self.runs)


# --------------------------------------------------------------------------- Markdown


def _ends_with_hard_break(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _logical_lines(text: str) -> list[str]:
    """Physical lines joined across hard breaks (a trailing backslash), as "\\n"."""
    out: list[str] = []
    joining = False
    for line in clean(text).split("\n"):
        if joining and out:
            continuation = line.strip()
            if (quoted := _QUOTE.match(line)) and out[-1].lstrip().startswith(">"):
                continuation = quoted.group(1).strip()
            out[-1] = out[-1][:-1] + "\n" + continuation
        else:
            out.append(line.rstrip())
        joining = _ends_with_hard_break(out[-1])
    return out


def inline_runs(text: str) -> tuple[Run, ...]:
    """Backslash escapes resolved; ``**`` pairs become bold; all else is literal."""
    chars: list[tuple[str, bool]] = []  # (character, escaped)
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _PUNCTUATION:
            chars.append((text[i + 1], True))
            i += 2
            continue
        chars.append((char, False))
        i += 1
    markers = [
        j
        for j in range(len(chars) - 1)
        if chars[j] == ("*", False) and chars[j + 1] == ("*", False)
    ]
    # Pair markers left to right without overlap; an unpaired one stays literal.
    paired: list[int] = []
    for j in markers:
        if paired and j < paired[-1] + 2:
            continue
        paired.append(j)
    if len(paired) % 2:
        paired.pop()
    runs: list[Run] = []
    bold = False
    buffer: list[str] = []
    j = 0
    marks = set(paired)
    while j < len(chars):
        if j in marks:
            if buffer:
                runs.append(Run("".join(buffer), bold))
                buffer = []
            bold = not bold
            j += 2
            continue
        buffer.append(chars[j][0])
        j += 1
    if buffer:
        runs.append(Run("".join(buffer), bold))
    return tuple(_tidy(runs))


def _tidy(runs: list[Run]) -> list[Run]:
    """Merge neighbours of the same weight and drop empty runs."""
    out: list[Run] = []
    for run in runs:
        if not run.text:
            continue
        if out and out[-1].bold == run.bold:
            out[-1] = Run(out[-1].text + run.text, run.bold)
        else:
            out.append(run)
    return out


def blocks_from_markdown(text: str) -> tuple[Block, ...]:
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block("para", inline_runs(" ".join(paragraph))))
            paragraph.clear()

    for line in _logical_lines(text):
        if not line.strip():
            flush()
            if blocks and blocks[-1].kind == "item":
                blocks.append(Block("end"))
        elif _RULE.match(line):
            flush()
            blocks.append(Block("rule"))
        elif heading := _HEADING.match(line):
            flush()
            blocks.append(Block("heading", inline_runs(heading.group(2)), len(heading.group(1))))
        elif item := _ITEM.match(line):
            flush()
            depth = len(item.group(1)) // 2
            blocks.append(Block("item", inline_runs(item.group(2)), depth))
        elif quote := _QUOTE.match(line):
            flush()
            blocks.append(Block("alert", inline_runs(quote.group(1).strip())))
        else:
            paragraph.append(line.strip())
    flush()
    return tuple(b for b in blocks if b.kind in ("rule", "end") or b.text.strip())


def drop_front_matter(blocks: tuple[Block, ...], title: str = "") -> tuple[Block, ...]:
    """Without the note's title heading (a first heading that ``title`` starts with) and its
    Questionnaire/Authored/Subject/Status lines: the report shows title and date itself,
    and a canonical URL helps no clinician."""
    out = list(blocks)
    # Alerts come before the title (render_* put them first): they stay first.
    alerts: list[Block] = []
    while out and (out[0].kind == "alert" or is_alert_paragraph(out[0])):
        alerts.append(out.pop(0))
    if out and out[0].kind == "heading" and (out[0].level == 1 or title.startswith(out[0].text)):
        out.pop(0)
    while (
        out
        and out[0].kind in ("item", "para")
        and out[0].level == 0
        and out[0].runs
        and out[0].runs[0].bold
        and out[0].runs[0].text.strip() in FRONT_MATTER
    ):
        out.pop(0)
    while out and out[0].kind == "end":
        out.pop(0)
    return (*alerts, *out)


def is_alert_paragraph(block: Block) -> bool:
    """A narrative's alert: a paragraph in bold that starts "ALERT:" (see render_xhtml)."""
    return (
        block.kind == "para"
        and bool(block.runs)
        and block.runs[0].bold
        and block.runs[0].text.startswith("ALERT:")
    )


# --------------------------------------------------------------------------- plain text

_TEXT_ALERT = "!! ALERT: "
_UNDERLINE = re.compile(r"^(=|-){3,}$")


def blocks_from_text(text: str) -> tuple[Block, ...]:
    """The plain-text rendering (:func:`rejection_fhir.response.render.render_text`, the
    note's only form where the EHR takes nothing else): ``!! ALERT:`` lines (continued by
    indented lines) as alerts, an underlined line as a heading, indented lines as list
    items by depth, the rest as paragraphs.  Nothing in it is markup."""
    lines = clean(text).split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        i += 1
        if not line.strip():
            if blocks and blocks[-1].kind == "item":
                blocks.append(Block("end"))
            continue
        if line.startswith(_TEXT_ALERT):
            parts = [line[len(_TEXT_ALERT) :].strip()]
            while i < len(lines) and lines[i].startswith(" " * len(_TEXT_ALERT)):
                parts.append(lines[i].strip())
                i += 1
            blocks.append(Block("alert", (Run("ALERT:", True), Run(" " + "\n".join(parts)))))
        elif i < len(lines) and _UNDERLINE.match(lines[i].strip()) and not line[0].isspace():
            level = 1 if lines[i].strip()[0] == "=" else 2
            blocks.append(Block("heading", (Run(line.strip()),), level))
            i += 1
        elif line[0].isspace():
            depth = (len(line) - len(line.lstrip(" "))) // 2
            blocks.append(Block("item", (Run(line.strip().removeprefix("- ")),), max(0, depth - 1)))
        else:
            blocks.append(Block("para", (Run(line.strip()),)))
    return tuple(blocks)


# --------------------------------------------------------------------------- XHTML


class _TextOnly(HTMLParser):
    """Collects text and block structure; every tag and attribute is dropped."""

    _BLOCKS = frozenset(
        (
            *("p", "div", "br", "tr", "table", "thead", "tbody", "tfoot", "caption"),
            *("dl", "dt", "dd", "pre", "blockquote", "section", "article", "header"),
            *("footer", "ul", "ol"),
        )
    )
    #: Elements whose content is not text for a reader (and may be an attack's payload).
    _SKIP = frozenset(
        ("script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "math")
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.runs: list[Run] = []
        self.kind: BlockKind = "para"
        self.level = 0
        self.list_depth = 0
        self.bold = 0
        self.skipping = 0

    def flush(self, kind: BlockKind = "para", level: int = 0) -> None:
        runs = _tidy([Run(re.sub(r"\s+", " ", r.text), r.bold) for r in self.runs])
        if runs and "".join(r.text for r in runs).strip():
            first, last = runs[0], runs[-1]
            runs[0] = Run(first.text.lstrip(), first.bold)
            runs[-1] = Run(runs[-1].text.rstrip(), last.bold)
            self.blocks.append(Block(self.kind, tuple(_tidy(runs)), self.level))
        self.runs = []
        self.kind, self.level = kind, level

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif self.skipping:
            return
        elif re.fullmatch(r"h[1-6]", tag):
            self.flush("heading", int(tag[1]))
        elif tag == "li":
            self.flush("item", max(0, self.list_depth - 1))
        elif tag == "hr":
            self.flush()
            self.blocks.append(Block("rule"))
        elif tag in self._BLOCKS:
            self.flush()
            if tag in ("ul", "ol"):
                self.list_depth += 1
        elif tag in ("b", "strong"):
            self.bold += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif self.skipping:
            return
        elif re.fullmatch(r"h[1-6]", tag) or tag == "li" or tag in self._BLOCKS:
            if tag in ("ul", "ol"):
                self.list_depth = max(0, self.list_depth - 1)
            self.flush("item" if self.list_depth else "para", max(0, self.list_depth - 1))
        elif tag in ("b", "strong"):
            self.bold = max(0, self.bold - 1)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.runs.append(Run(clean(data), self.bold > 0))


def blocks_from_xhtml(xhtml: str) -> tuple[Block, ...]:
    """The narrative's text and outline only, for notes that carry no Markdown."""
    parser = _TextOnly()
    parser.feed(xhtml)
    parser.close()
    parser.flush()
    return tuple(parser.blocks)
