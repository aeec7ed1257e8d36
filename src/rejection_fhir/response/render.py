"""Draw a :class:`~rejection_fhir.response.summary.Summary` as text, Markdown, JSON or XHTML.

Every string in a summary may be a client's own words, so every renderer treats it as
data: XHTML escapes it (and uses only elements FHIR narrative allows, no attributes but
the namespace), Markdown backslash-escapes every character that could start markup there
(and only those, so that dates and ordinary punctuation stay readable as plain text), and
all of them drop control and bidi-override characters that could garble a terminal, an
XML parser or a reader's eye.

The XHTML is written by hand rather than by a template (the report page uses Jinja2): it
is drawn once per response on the sync and summarize paths, compiled by mypyc, and an
autoescaping Jinja2 template of the same output took 5.3-5.7 times as long per summary
(README, "Library choices").  Its only escaping is :func:`_x`, through which every text
passes.
"""

from __future__ import annotations

import re
from html import escape as _html_escape
from typing import Any, Final

from rejection_fhir.response.summary import Entry, Line, Section, Summary

__all__ = [
    "XHTML_NAMESPACE",
    "narrative",
    "render_json",
    "render_markdown",
    "render_text",
    "render_xhtml",
]

XHTML_NAMESPACE: Final = "http://www.w3.org/1999/xhtml"

# C0/C1 controls (except tab and newline), DEL, lone surrogates, XML non-characters,
# and the bidi embedding/override/isolate controls used to disguise text.
_UNSAFE_RE: Final = re.compile(
    # The pattern spells the escapes (a raw string): a literal lone surrogate in the
    # source cannot be compiled by mypyc, and re reads the escapes the same way.
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u202a-\u202e\u2066-\u2069]"
)
_NEWLINES_RE: Final = re.compile(r"\r\n?")
# Markdown (CommonMark, GFM): escape only what could open markup, so that dates, times and
# ordinary punctuation stay readable where an EHR shows the note as plain text.
#   anywhere: \\ (escapes), ` (code), * (emphasis), [ ] (links, footnotes), < (HTML,
#     autolinks), ~ (GFM strikethrough); & only before an entity name (&amp;); _ unless
#     between two letters or digits (intraword _ never delimits emphasis); ":" of "://",
#     "." of "www." and "@" of an e-mail address (GFM's extended autolinks);
#   at a line start: # > - + * = _ ` ~ | (headings, quotes, lists, breaks, setext
#     underlines, fences, tables), "1." / "1)" (ordered lists), a table delimiter row.
_MARKDOWN_INLINE_RE: Final = re.compile(
    r"[\\`*\[\]<~]"
    r"|&(?=#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{0,31};)"
    r"|(?<![^\W_])_|_(?![^\W_])"
    r"|:(?=//)|(?<=\b[wW]{3})\.|(?<=\w)@(?=\w)"
)
_MARKDOWN_LINE_START_RE: Final = re.compile(r"(?:[#>\-+*=_`~|]|\d{1,9}(?=[.)])|:(?=[-:| ]*-))")
_HEADING_CLOSE_RE: Final = re.compile(r"(^|\s)(#+\s*)$")
_MAX_HEADING: Final = 6


def clean(text: str) -> str:
    """Normalise newlines and drop characters no renderer should pass through."""
    if text.isascii() and text.isprintable():
        return text  # the common case, checked in C; newlines and tabs take the long way
    if "\r" in text:
        text = _NEWLINES_RE.sub("\n", text)
    return _UNSAFE_RE.sub("", text)


def _lines_of(text: str) -> list[str]:
    """Non-blank lines, without leading indentation (which Markdown would read as code)."""
    text = clean(text)
    if "\n" not in text:
        return [text.strip()]
    return [line.strip() for line in text.split("\n") if line.strip()] or [""]


def _backslash(match: re.Match[str]) -> str:
    return "\\" + match.group()


def _md(text: str) -> str:
    """Backslash-escape what could open Markdown markup inside one line (cheap when nothing)."""
    return _MARKDOWN_INLINE_RE.sub(_backslash, text)


def _md_start(text: str) -> str:
    """``_md`` for text that begins a line, where block markup starts."""
    escaped = _md(text)
    match = _MARKDOWN_LINE_START_RE.match(escaped)
    if match is None:
        return escaped
    if match.group()[0].isdigit():  # "1." / "1)": the delimiter after the number
        end = match.end()
        return escaped[:end] + "\\" + escaped[end:]
    return escaped if escaped.startswith("\\") else "\\" + escaped


def _caption_parts(label: str) -> tuple[str, str]:
    """A label and what follows it before the answer: "Mood" + ":", "How are you?" + ""."""
    text = " ".join(_lines_of(label))
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1]  # "…how you feel." reads as a caption without its full stop
    return (text, "") if text.endswith(("?", ":", "：", "？")) else (text, ":")


def _caption(label: str) -> str:
    text, suffix = _caption_parts(label)
    return text + suffix


def _meta(summary: Summary) -> list[tuple[str, str]]:
    fields = (
        ("Questionnaire", summary.questionnaire),
        ("Authored", summary.authored),
        ("Subject", summary.subject),
        ("Status", summary.status),
    )
    return [(label, value) for label, value in fields if value]


# ---------------------------------------------------------------------- text


def render_text(summary: Summary) -> str:
    """Plain text for terminals and logs of the clinician's own tools (not application logs)."""
    out: list[str] = []
    # Alerts before everything: the first thing any reader (or a preview line) sees.
    for alert in summary.alerts:
        lines = _lines_of(alert)
        out.append(f"!! ALERT: {lines[0]}")
        out.extend(f"          {line}" for line in lines[1:])
    if summary.alerts:
        out.append("")
    title = " ".join(_lines_of(summary.title))
    out.append(title)
    out.append("=" * max(len(title), 3))
    for label, value in _meta(summary):
        out.append(f"{label}: {' '.join(_lines_of(value))}")
    if summary.highlights:
        out.append("")
        out.append("Highlights")
        for line in summary.highlights:
            _text_line(line, 1, out)
    for section in summary.sections:
        out.append("")
        _text_section(section, 0, out)
    return "\n".join(out) + "\n"


def _text_section(section: Section, depth: int, out: list[str]) -> None:
    indent = "  " * depth
    inner = depth
    if section.heading:
        heading = " ".join(_lines_of(section.heading))
        out.append(f"{indent}{heading}")
        if depth == 0:
            out.append("-" * max(len(heading), 3))
        inner = depth + 1
    for entry in section.entries:
        _text_entry(entry, inner, out)


def _text_entry(entry: Entry, depth: int, out: list[str]) -> None:
    if isinstance(entry, Section):
        _text_section(entry, depth, out)
    else:
        _text_line(entry, depth, out)


def _text_line(line: Line, depth: int, out: list[str]) -> None:
    indent = "  " * depth
    label = _caption(line.label)
    if len(line.values) == 1:
        value_lines = _lines_of(line.values[0])
        out.append(f"{indent}{label} {value_lines[0]}")
        out.extend(f"{indent}    {more}" for more in value_lines[1:])
    else:
        out.append(f"{indent}{label}")
        for value in line.values:
            value_lines = _lines_of(value)
            out.append(f"{indent}  - {value_lines[0]}")
            out.extend(f"{indent}    {more}" for more in value_lines[1:])
    for child in line.children:
        _text_entry(child, depth + 1, out)


# ---------------------------------------------------------------------- markdown


def markdown_escape(text: str) -> str:
    """One line of inline Markdown that renders as exactly ``text`` (newlines removed)."""
    return _md(" ".join(_lines_of(text)))


def _md_heading(text: str) -> str:
    """Heading text: inline escapes, and a closing run of # kept as text."""
    escaped = markdown_escape(text)
    return _HEADING_CLOSE_RE.sub(lambda m: m.group(1) + "\\" + m.group(2), escaped)


def _md_block(text: str, indent: str, *, at_start: bool = False) -> str:
    """Possibly multi-line text as the continuation of a list item, hard line breaks kept.

    The first line follows our own marker (``at_start``: it opens the list item's content,
    where block markup starts too); every later one starts a line of its own.
    """
    lines = _lines_of(text)
    first = _md_start(lines[0]) if at_start else _md(lines[0])
    if len(lines) == 1:
        return first
    return ("\\\n" + indent).join([first, *(_md_start(line) for line in lines[1:])])


def render_markdown(summary: Summary) -> str:
    """CommonMark/GFM.  Client text is escaped so it can never become markup or HTML."""
    out: list[str] = []
    # Alerts before everything, quoted and bold, so they stand out rendered or not.
    for alert in summary.alerts:
        out.append(f"> **ALERT:** {_md_block(alert, '> ')}")
        out.append("")
    out.extend((f"# {_md_heading(summary.title)}", ""))
    meta = _meta(summary)
    if meta:
        out.extend(f"- **{label}:** {markdown_escape(value)}" for label, value in meta)
        out.append("")
    if summary.highlights:
        out.append("## Highlights")
        out.append("")
        for line in summary.highlights:
            _md_line(line, 0, out)
        out.append("")
    after_heading = False
    for section in summary.sections:
        if after_heading and not section.heading:
            # Without a rule, loose questions would read as part of the section above.
            out.extend(("---", ""))
        _md_section(section, 2, out)
        after_heading = bool(section.heading)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def _md_section(section: Section, level: int, out: list[str]) -> None:
    if section.heading:
        out.append(f"{'#' * min(level, _MAX_HEADING)} {_md_heading(section.heading)}")
        out.append("")
    in_list = False
    for entry in section.entries:
        if isinstance(entry, Section):
            if in_list:
                out.append("")
                in_list = False
            _md_section(entry, level + 1, out)
        else:
            _md_line(entry, 0, out)
            in_list = True
    if in_list:
        out.append("")


def _md_line(line: Line, depth: int, out: list[str]) -> None:
    indent = "  " * depth
    text, suffix = _caption_parts(line.label)
    label = markdown_escape(text) + suffix
    if len(line.values) == 1:
        out.append(f"{indent}- **{label}** {_md_block(line.values[0], indent + '  ')}")
    else:
        out.append(f"{indent}- **{label}**")
        for value in line.values:
            out.append(f"{indent}  - {_md_block(value, indent + '    ', at_start=True)}")
    for child in line.children:
        _md_nested(child, depth + 1, out)


def _md_nested(entry: Entry, depth: int, out: list[str]) -> None:
    """Entries under an answer live inside a list item, where headings cannot go."""
    if isinstance(entry, Line):
        _md_line(entry, depth, out)
        return
    indent = "  " * depth
    if entry.heading:
        out.append(f"{indent}- **{markdown_escape(entry.heading)}**")
        depth += 1
    for child in entry.entries:
        _md_nested(child, depth, out)


# ---------------------------------------------------------------------- JSON


def render_json(summary: Summary) -> dict[str, Any]:
    """A plain dict (json.dumps-ready) with the summary's full structure."""
    return {
        "title": summary.title,
        "questionnaire": summary.questionnaire,
        "authored": summary.authored,
        "subject": summary.subject,
        "status": summary.status,
        "alerts": _json_alerts(summary),
        "scores": [score.as_json() for score in summary.scores],
        "highlights": [_json_entry(line) for line in summary.highlights],
        "sections": [_json_entry(section) for section in summary.sections],
    }


def _json_alerts(summary: Summary) -> list[dict[str, Any]]:
    """Each alert as an object: its text, and for a safety alert what a program needs
    (kind, linkId, the answer, severity); other alerts are of kind ``note``."""
    out: list[dict[str, Any]] = []
    detail = summary.alert_data
    for i, text in enumerate(summary.alerts):
        if i < len(detail):
            entry = detail[i].as_json()
            entry["text"] = text
        else:
            entry = {"kind": "note", "severity": "info", "text": text}
        out.append(entry)
    return out


def _json_entry(entry: Entry) -> dict[str, Any]:
    if isinstance(entry, Section):
        return {
            "kind": "section",
            "heading": entry.heading,
            "linkId": entry.link_id,
            "path": entry.path,
            "entries": [_json_entry(child) for child in entry.entries],
        }
    return {
        "kind": "line",
        "label": entry.label,
        "values": list(entry.values),
        "linkId": entry.link_id,
        "path": entry.path,
        "children": [_json_entry(child) for child in entry.children],
    }


# ---------------------------------------------------------------------- XHTML


def _x(text: str) -> str:
    """Escaped XHTML text; newlines become <br/>."""
    return "<br/>".join(_html_escape(line, quote=True) for line in _lines_of(text))


def render_xhtml(summary: Summary) -> str:
    """A FHIR narrative ``div``: XHTML with only narrative-safe elements, all text escaped."""
    out: list[str] = [f'<div xmlns="{XHTML_NAMESPACE}">']
    # Alerts before everything, each a paragraph in bold: they stand out without CSS,
    # which EHRs often strip from narratives.
    out.extend(f"<p><strong>ALERT: {_x(alert)}</strong></p>" for alert in summary.alerts)
    out.append(f"<h2>{_x(summary.title)}</h2>")
    meta = _meta(summary)
    if meta:
        out.append("<p>")
        out.append("<br/>".join(f"<b>{label}:</b> {_x(value)}" for label, value in meta))
        out.append("</p>")
    if summary.highlights:
        out.append("<h3>Highlights</h3><ul>")
        for line in summary.highlights:
            _x_line(line, out)
        out.append("</ul>")
    after_heading = False
    for section in summary.sections:
        if after_heading and not section.heading:
            out.append("<hr/>")  # loose questions do not belong to the section above
        _x_section(section, 3, out)
        after_heading = bool(section.heading)
    out.append("</div>")
    return "".join(out)


def _x_section(section: Section, level: int, out: list[str]) -> None:
    if section.heading:
        tag = f"h{min(level, _MAX_HEADING)}"
        out.append(f"<{tag}>{_x(section.heading)}</{tag}>")
    in_list = False
    for entry in section.entries:
        if isinstance(entry, Section):
            if in_list:
                out.append("</ul>")
                in_list = False
            _x_section(entry, level + 1, out)
        else:
            if not in_list:
                out.append("<ul>")
                in_list = True
            _x_line(entry, out)
    if in_list:
        out.append("</ul>")


def _x_line(line: Line, out: list[str]) -> None:
    out.append(f"<li><b>{_x(_caption(line.label))}</b> ")
    if len(line.values) == 1:
        out.append(_x(line.values[0]))
    elif line.values:
        out.append("<ul>")
        out.extend(f"<li>{_x(value)}</li>" for value in line.values)
        out.append("</ul>")
    if line.children:
        out.append("<ul>")
        for child in line.children:
            _x_nested(child, out)
        out.append("</ul>")
    out.append("</li>")


def _x_nested(entry: Entry, out: list[str]) -> None:
    if isinstance(entry, Line):
        _x_line(entry, out)
        return
    if entry.heading:
        out.append(f"<li><b>{_x(entry.heading)}</b><ul>")
    for child in entry.entries:
        _x_nested(child, out)
    if entry.heading:
        out.append("</ul></li>")


def narrative(summary: Summary) -> dict[str, str]:
    """A FHIR ``Narrative`` (status generated) for a resource's ``text``."""
    return {"status": "generated", "div": render_xhtml(summary)}
