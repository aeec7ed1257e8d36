"""Proves the browser harness: a person fills the hand-written test worksheet in LHC-Forms,
and the QuestionnaireResponse holds exactly what they clicked and typed."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from tests.browser import lforms_driver as lf

pytestmark = pytest.mark.browser

SYSTEM = "http://example.org/fhir/CodeSystem/harness"


def coding(code: str, display: str) -> dict[str, Any]:
    return {"valueCoding": {"system": SYSTEM, "code": code, "display": display}}


def test_filled_form_round_trips_into_the_response(
    page, page_log, preview_server, harness_questionnaire, record_property
):
    started = time.monotonic()
    base_url = preview_server([harness_questionnaire])
    lf.open_questionnaire(page, base_url, "BrowserHarness")
    rendered = time.monotonic()

    # The specify box is hidden until "Something else" is picked (enableWhen).
    assert not lf.is_shown(page, "coping-other")

    lf.click_answer(page, "mood", "Low")
    lf.click_answer(page, "mood", "Mixed")  # a person changes their mind
    lf.click_answer(page, "situations", "Work")
    lf.click_answer(page, "situations", "Dating")
    lf.click_answer(page, "situations", "Friends")
    lf.click_answer(page, "situations", "Dating")  # …and unticks one again
    lf.pick_from_list(page, "trigger", "Being left out", search="left")
    lf.click_answer(page, "coping", "Something else")
    assert lf.is_shown(page, "coping-other")
    lf.type_text(page, "coping-other", "Wrote it all down </script> & slept")
    lf.type_number(page, "distress", 7)
    lf.type_date(page, "when", dt.date(2024, 3, 14))
    lf.type_text(page, "story", "They read my message.\nNo reply since.")
    lf.type_text(page, "thought.text", "Nobody wants me around", at=(1, 1))
    lf.type_number(page, "thought.belief", 80, at=(1, 1))
    second = lf.add_repeat(page, "thought", at=(1,))
    assert second == (2,)
    lf.type_text(page, "thought.text", "I always say the wrong thing", at=(2, 1))
    lf.type_number(page, "thought.belief", 35, at=(2, 1))
    filled = time.monotonic()

    assert lf.is_answer_checked(page, "mood", "Mixed")
    assert not lf.is_answer_checked(page, "mood", "Low")
    assert lf.validity_errors(page) == []

    response = lf.questionnaire_response(page)
    assert response["resourceType"] == "QuestionnaireResponse"
    assert (
        response["questionnaire"] == "http://example.org/fhir/Questionnaire/browser-harness|0.0.1"
    )
    assert lf.answers(response) == [
        ("mood", [coding("mixed", "Mixed")]),
        ("situations", [coding("work", "Work"), coding("friends", "Friends")]),
        ("trigger", [coding("left-out", "Being left out")]),
        ("coping", [coding("other", "Something else")]),
        ("coping-other", [{"valueString": "Wrote it all down </script> & slept"}]),
        ("distress", [{"valueInteger": 7}]),
        ("when", [{"valueDate": "2024-03-14"}]),
        ("story", [{"valueString": "They read my message.\nNo reply since."}]),
        ("thought[1]/thought.text", [{"valueString": "Nobody wants me around"}]),
        ("thought[1]/thought.belief", [{"valueInteger": 80}]),
        ("thought[2]/thought.text", [{"valueString": "I always say the wrong thing"}]),
        ("thought[2]/thought.belief", [{"valueInteger": 35}]),
    ]

    # The page's own button shows the same response a person would copy.
    shown = lf.show_questionnaire_response(page)
    assert lf.answers(shown) == lf.answers(response)
    assert page.text_content("#qr-validity") == "All answers pass the form's checks."

    assert page_log.problems() == []
    record_property("seconds_render", round(rendered - started, 2))
    record_property("seconds_fill", round(filled - rendered, 2))


def test_other_choice_and_hiding_the_specify_box_again(
    page, page_log, preview_server, harness_questionnaire
):
    lf.open_questionnaire(page, preview_server([harness_questionnaire]), "BrowserHarness")
    lf.click_answer(page, "mood", "Steady")

    lf.click_answer(page, "coping", "Something else")
    lf.type_text(page, "coping-other", "typed, then abandoned")
    lf.click_answer(page, "coping", "Went for a walk")
    assert not lf.is_shown(page, "coping-other")

    response = lf.questionnaire_response(page)
    assert lf.answers(response) == [
        ("mood", [coding("steady", "Steady")]),
        ("coping", [coding("walked", "Went for a walk")]),
    ]

    # The open-choice "Other" radio LHC-Forms adds carries free text as valueString.
    lf.choose_other(page, "coping", "Called my sister")
    assert ("coping", [{"valueString": "Called my sister"}]) in lf.answers(
        lf.questionnaire_response(page)
    )
    assert page_log.problems() == []


def test_required_and_range_checks_fail_while_status_says_completed(
    page, page_log, preview_server, harness_questionnaire
):
    lf.open_questionnaire(page, preview_server([harness_questionnaire]), "BrowserHarness")
    lf.type_number(page, "distress", 11)

    errors = lf.validity_errors(page)
    assert any(e.startswith("How are you feeling right now?") for e in errors), errors
    assert any(e.startswith("How distressing was it") for e in errors), errors
    # Why tests must check validity themselves: LHC-Forms still says "completed".
    assert lf.questionnaire_response(page)["status"] == "completed"
    assert page_log.problems() == []


def test_index_lists_the_worksheet_and_escapes_its_title(
    page, page_log, preview_server, harness_questionnaire
):
    base_url = preview_server([harness_questionnaire])
    page.goto(base_url)
    link = page.get_by_role("link", name='Browser harness <check> & "escape"')
    assert link.get_attribute("href") == "/q/BrowserHarness"
    link.click()
    page.wait_for_selector("body[data-form-state=ready]")
    assert page.title() == 'Browser harness <check> & "escape" — rejection-fhir preview'
    assert page_log.problems() == []


def test_a_slider_item_shows_a_slider_that_answers_the_question(
    page, page_log, preview_server, harness_questionnaire
):
    """LHC-Forms 40 renders itemControl slider as a number box; the preview adds a range
    input bound to that box, with the item's min, max and sliderStepValue."""
    base_url = preview_server([harness_questionnaire])
    lf.open_questionnaire(page, base_url, "BrowserHarness")
    slider = page.locator('input[type="range"][data-link-id="distress"]')
    lf.expect(slider).to_have_count(1)
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("0", "10")
    assert slider.get_attribute("step") == "1"
    slider.fill("7")
    box = lf.by_id(page, lf.item_id("distress"))
    lf.expect(box).to_have_value("7")
    answers = {i["linkId"]: i["answer"] for i in lf.questionnaire_response(page)["item"]}
    assert answers["distress"] == [{"valueInteger": 7}]
    lf.type_number(page, "distress", 3)  # typing in the box moves the slider too
    lf.expect(slider).to_have_value("3")
    # Items without a slider control get none.
    assert page.locator('input[type="range"]').count() == 1
    assert page_log.problems() == []
