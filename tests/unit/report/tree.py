"""An HTML page as a tree of plain lists, to compare two renderings as structure.

Whitespace that only separates tags is dropped and runs of whitespace in text become one
space (as a browser shows them); attributes compare as decoded values, so ``&quot;`` and
``&#34;`` are the same.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

VOID = frozenset({"meta", "br", "hr"})


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: list[Any] = ["#document", {}, []]
        self.stack: list[list[Any]] = [self.root]

    def handle_decl(self, decl: str) -> None:
        self.stack[-1][2].append(f"<!{decl}>")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node: list[Any] = [tag, {k: v or "" for k, v in attrs}, []]
        self.stack[-1][2].append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1][2].append([tag, {k: v or "" for k, v in attrs}, []])

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if not text:
            return
        children = self.stack[-1][2]
        if data[:1].isspace():
            text = " " + text
        if data[-1:].isspace():
            text += " "
        if children and isinstance(children[-1], str):
            children[-1] += text
        else:
            children.append(text)


def tree(html: str) -> list[Any]:
    parser = _Tree()
    parser.feed(html)
    parser.close()
    return parser.root
