"""The one way text gets into the report's HTML and SVG."""

from __future__ import annotations

from html import escape

from rejection_fhir.response.render import clean


def esc(text: str) -> str:
    """Text as HTML/SVG character data or a quoted attribute value: ``& < > " '`` escaped,
    control and bidi-override characters dropped (they can disguise what a line says)."""
    return escape(clean(text), quote=True)
