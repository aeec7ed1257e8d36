"""The report's two ways into markup: the template environment and ``esc`` for the SVG."""

from __future__ import annotations

import jinja2
import pytest
from markupsafe import Markup

from rejection_fhir.report.markup import TEMPLATES, esc

HOSTILE = '<b onclick="x">\'&amp;\x07\u202e\u2066</b>'


def _render(source: str, **values: object) -> str:
    return TEMPLATES.from_string(source).render(**values)


@pytest.mark.parametrize("where", ["<p>{{ v }}</p>", '<p title="{{ v }}"></p>'])
def test_a_value_is_escaped_and_cleaned_in_text_and_attributes(where):
    html = _render(where, v=HOSTILE)
    assert "<b" not in html and 'onclick="' not in html and "'&amp;" not in html
    assert "\x07" not in html and "\u202e" not in html and "\u2066" not in html
    # The same characters as esc() escapes, in the same places.
    assert html == where.replace("{{ v }}", esc(HOSTILE)).replace("&quot;", "&#34;").replace(
        "&#x27;", "&#39;"
    )


def test_text_made_by_filters_and_joins_is_escaped_and_cleaned_too():
    # join escapes item by item and returns markup: the cleaning must not be skipped.
    html = _render(
        "{{ items|join(', ') }} {{ a ~ b }} {{ c|capitalize }}",
        items=["<i>\u202e", "&\x07"],
        a="<",
        b="\u2066>",
        c="x\x1b",
    )
    assert html == "&lt;i&gt;, &amp; &lt;&gt; X"


def test_only_markup_the_code_made_passes_as_markup():
    assert _render("{{ v }}", v=Markup("<svg></svg>")) == "<svg></svg>"
    assert _render("{{ v }}", v=3.5) == "3.5"


def test_a_misspelt_name_fails_rather_than_rendering_empty():
    with pytest.raises(jinja2.UndefinedError):
        _render("{{ repot.patient }}")


def test_the_page_template_ships_with_the_package():
    assert TEMPLATES.get_template("page.html.j2").filename.endswith("page.html.j2")
