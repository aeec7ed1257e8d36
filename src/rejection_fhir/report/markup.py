"""The two ways text gets into the report's HTML and SVG, both escaping it.

* :data:`TEMPLATES`, the Jinja2 environment of the page: autoescaping on, and every
  ``{{ value }}`` (text, number or markup) cleaned of control and bidi-override characters
  before it is escaped; an undefined name is an error rather than an empty string.
* :func:`esc` for the SVG charts, which are drawn by code (coordinates, not prose).

Both escape ``& < > " '`` and drop the same characters, so text reads the same wherever
it lands; only the SVG reaches the page as :class:`markupsafe.Markup`.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.ext import Extension
from markupsafe import Markup

from rejection_fhir.response.render import clean


def esc(text: str) -> str:
    """Text as HTML/SVG character data or a quoted attribute value: ``& < > " '`` escaped,
    control and bidi-override characters dropped (they can disguise what a line says)."""
    return escape(clean(text), quote=True)


def _finalize(value: Any) -> str:
    """Runs on every ``{{ value }}`` before autoescaping: whatever it is, its text loses
    what :func:`clean` drops.  Markup (a macro's output, the SVG, what a filter such as
    ``join`` escaped item by item) is cleaned too, so no path skips it; dropping those
    characters from markup we made cannot form a tag."""
    if isinstance(value, Markup):
        return Markup(clean(value))  # already markup: only characters dropped
    return clean(str(value))


class _TagsOnLines(Extension):
    """A line break between two tags in a template's source is for its reader only: the
    page keeps its elements side by side, as text nodes between them would change what
    flex and grid layouts and the page's text show.  Values are inserted later, untouched."""

    _BETWEEN_TAGS = re.compile(r">[ \t]*\n\s*<")

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return self._BETWEEN_TAGS.sub("><", source)


TEMPLATES = Environment(
    extensions=[_TagsOnLines],
    loader=PackageLoader("rejection_fhir.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    finalize=_finalize,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
