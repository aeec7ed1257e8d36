"""web/index.html: open a Questionnaire file from disk and render it with no server at all."""

from __future__ import annotations

import pytest

from rejection_fhir.errors import ConfigError
from rejection_fhir.preview.page import resolve_lforms_dir
from tests.browser import lforms_driver as lf
from tests.browser.conftest import DATA, REPO, _unavailable

pytestmark = pytest.mark.browser

STATIC_PAGE = REPO / "web" / "index.html"


@pytest.fixture
def default_lforms_dir(lforms_dir):
    # The static page finds LHC-Forms by relative path, so only the default place works.
    try:
        return resolve_lforms_dir(REPO / ".web" / "lforms")
    except ConfigError as exc:
        _unavailable(f"web/index.html needs LHC-Forms in .web/lforms: {exc}")


def test_static_page_renders_a_questionnaire_file_offline(page, page_log, default_lforms_dir):
    page_log.origin_prefixes = (STATIC_PAGE.parent.parent.as_uri() + "/",)
    page.goto(STATIC_PAGE.as_uri())
    page.set_input_files("#questionnaire-file", str(DATA / "harness-questionnaire.json"))
    page.wait_for_selector("body[data-form-state=ready]")

    lf.click_answer(page, "mood", "Steady")
    lf.type_text(page, "thought.text", "It was about timing, not me", at=(1, 1))

    shown = lf.show_questionnaire_response(page)
    assert lf.answers(shown) == [
        (
            "mood",
            [
                {
                    "valueCoding": {
                        "system": "http://example.org/fhir/CodeSystem/harness",
                        "code": "steady",
                        "display": "Steady",
                    }
                }
            ],
        ),
        ("thought/thought.text", [{"valueString": "It was about timing, not me"}]),
    ]
    assert page.text_content("#qr-validity") == "All answers pass the form's checks."
    assert page_log.problems() == []


def test_static_page_says_so_when_the_file_is_not_a_questionnaire(
    page, page_log, default_lforms_dir, tmp_path
):
    not_a_questionnaire = tmp_path / "response.json"
    not_a_questionnaire.write_text('{"resourceType": "QuestionnaireResponse"}')
    page.goto(STATIC_PAGE.as_uri())
    page.set_input_files("#questionnaire-file", str(not_a_questionnaire))
    page.wait_for_selector("body[data-form-state=error]")
    assert "is not a FHIR Questionnaire" in page.text_content("#load-problem")
