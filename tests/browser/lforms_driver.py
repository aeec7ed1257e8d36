"""Drive an LHC-Forms 40 page the way a person would: click, pick, type.

What the functions rely on, all seen in LHC-Forms 40.1.3:

* Every question's input carries the id ``<linkId>/<i1>/<i2>…``: one repeat index (from 1)
  per level from the top of the form down to the item itself.  A top-level item is
  ``mood/1``; an item inside the second repeat of group ``thought`` is
  ``thought.text/2/1``.  linkIds may contain dots and the ids contain slashes, so ids
  are always selected as ``[id="…"]``, never ``#…``.
* The item's whole row is ``item-<id>``; a repeating group's add button is
  ``add-<id of its last repeat>`` (labelled "+ <group text>") and each repeat has a
  remove button ``del-<id>``.
* Radio buttons and check boxes are ``<label id="<id>|<system>|<code>">``; an
  open-choice item shown as radio buttons gets an extra "Other" choice
  ``<id>|_other`` whose text box ``<id>|_otherValue`` appears once it is picked.
* Drop-downs and type-aheads are text inputs backed by one shared result list,
  ``#lhc-tools-searchResults``; a person types and clicks a row.
* A date is an ng-zorro date picker: the id sits on a wrapper around the text input,
  which takes ``MM/DD/YYYY``.
* Items whose enableWhen is false are removed from the page, not greyed out; inside a
  repeating group, enableWhen on a sibling is judged per repeat.
* A repeat is added only when the last one has an answer (else a tooltip says "Please
  enter info in the blank …"), and repeat numbers are never reused or renumbered: remove
  ``emotion/1`` and the rest stays ``emotion/2``, the next one added is ``emotion/3``.
* itemControl ``slider`` renders as a plain number box; ``sliderStepValue`` is ignored,
  min/maxValue only show up in :func:`validity_errors`.  The preview page adds a range
  input (``input[type=range][data-link-id=…]``) bound to that box; typing in the box
  still answers the item.  An integer with a
  ``questionnaire-unit`` gets a read-only unit box ``unit_<id>`` and still answers
  valueInteger.  maxLength does not stop typing; it too is only a validity error.

Every function waits for what it needs, so tests do not sleep.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Locator, Page, expect

from rejection_fhir.preview.page import FORM_CONTAINER_ID

#: Seconds a step may take before the driver gives up; the whole form renders in ~1 s here.
STEP_TIMEOUT_MS = 15_000

_CONTAINER = f"#{FORM_CONTAINER_ID}"
_RESULT_LIST = "#lhc-tools-searchResults"


def item_id(link_id: str, at: Sequence[int] = (1,)) -> str:
    """The element id LHC-Forms gives an item: linkId, then one repeat index per level.

    ``at`` lists the repeat numbers from the outermost group down to the item itself;
    ``(1,)`` is the first (or only) occurrence of a top-level item.
    """
    if not at or any(i < 1 for i in at):
        raise ValueError(f"repeat indexes for {link_id!r} start at 1, got {tuple(at)}")
    return "/".join([link_id, *(str(i) for i in at)])


def by_id(page: Page, element_id: str) -> Locator:
    """The element with this exact id (ids contain slashes, so no ``#id`` selector)."""
    return page.locator(f"[id={json.dumps(element_id)}]")


def item_row(page: Page, link_id: str, at: Sequence[int] = (1,)) -> Locator:
    """The whole row of an item: label, input(s) and messages."""
    return by_id(page, "item-" + item_id(link_id, at))


def open_questionnaire(page: Page, base_url: str, name: str) -> Locator:
    """Open a worksheet's preview page and wait until LHC-Forms has rendered it.

    Returns the form container.  Fails with the page's own message when the form
    could not be rendered.
    """
    page.goto(base_url.rstrip("/") + "/q/" + quote(name, safe=""))
    page.wait_for_selector(
        "body[data-form-state=ready], body[data-form-state=error]", timeout=STEP_TIMEOUT_MS
    )
    if page.get_attribute("body", "data-form-state") == "error":
        raise AssertionError(f"{name}: {page.text_content('#load-problem')}")
    return page.locator(_CONTAINER)


def _answer_label(page: Page, link_id: str, display: str, at: Sequence[int]) -> Locator:
    """The radio/check-box label of one answer option, found by its visible text."""
    prefix = item_id(link_id, at) + "|"
    labels = page.locator(f"label[id^={json.dumps(prefix)}]").filter(
        has_text=re.compile(rf"^\s*{re.escape(display)}\s*$")
    )
    expect(labels, f"{link_id}: one answer shown as {display!r}").to_have_count(
        1, timeout=STEP_TIMEOUT_MS
    )
    return labels


def click_answer(page: Page, link_id: str, display: str, at: Sequence[int] = (1,)) -> None:
    """Click a radio button or check box by its answer text (a check box toggles)."""
    _answer_label(page, link_id, display, at).click()


def is_answer_checked(page: Page, link_id: str, display: str, at: Sequence[int] = (1,)) -> bool:
    """Whether the radio button or check box with this answer text is checked."""
    return _answer_label(page, link_id, display, at).locator("input").is_checked()


def choose_other(page: Page, link_id: str, text: str, at: Sequence[int] = (1,)) -> None:
    """Pick the "Other" choice LHC-Forms adds to an open-choice item and type its text."""
    base = item_id(link_id, at)
    by_id(page, base + "|_other").click()
    other = by_id(page, base + "|_otherValue")
    other.fill(text)
    other.press("Tab")


def pick_from_list(
    page: Page,
    link_id: str,
    display: str,
    at: Sequence[int] = (1,),
    *,
    search: str | None = None,
) -> None:
    """Pick an answer from a drop-down or type-ahead: type, then click the result row.

    ``search`` is what the person types before picking (the answer text by default);
    typing narrows the list, as it would for a person.
    """
    box = by_id(page, item_id(link_id, at))
    box.click()
    box.fill("")
    box.press_sequentially(display if search is None else search)
    # Rows read "<n>:&nbsp; <display>"; match the display after the row number.
    row = page.locator(f"{_RESULT_LIST} li").filter(
        has_text=re.compile(rf"^\s*(\d+:\s*)?{re.escape(display)}\s*$")
    )
    expect(row, f"{link_id}: one list row {display!r}").to_have_count(1, timeout=STEP_TIMEOUT_MS)
    row.click()
    expect(page.locator(_RESULT_LIST)).to_be_hidden(timeout=STEP_TIMEOUT_MS)


def type_free_text_in_list(page: Page, link_id: str, text: str, at: Sequence[int] = (1,)) -> None:
    """Type an answer that is not in an open-choice type-ahead's list and leave the box."""
    box = by_id(page, item_id(link_id, at))
    box.click()
    box.fill("")
    box.press_sequentially(text)
    box.press("Tab")


def type_text(page: Page, link_id: str, text: str, at: Sequence[int] = (1,)) -> None:
    """Type into a string, text, integer or decimal item, then leave it (Tab)."""
    box = by_id(page, item_id(link_id, at))
    box.fill(text)
    box.press("Tab")


def type_number(page: Page, link_id: str, value: int | float, at: Sequence[int] = (1,)) -> None:
    """Type a number.  A slider itemControl renders as this same number box in 40.1.3
    (the preview's range input beside it follows what is typed)."""
    type_text(page, link_id, str(value), at)


def type_date(page: Page, link_id: str, value: dt.date, at: Sequence[int] = (1,)) -> None:
    """Type a date into the date picker as a person in the US locale would (MM/DD/YYYY)."""
    box = by_id(page, item_id(link_id, at)).locator("input")
    box.click()
    box.fill(value.strftime("%m/%d/%Y"))
    box.press("Enter")


def add_repeat(page: Page, link_id: str, at: Sequence[int] = (1,)) -> tuple[int, ...]:
    """Click the "+ <group text>" button under the repeat ``at`` of a repeating group.

    LHC-Forms shows that button only under the last repeat, so pass its index, and it
    adds nothing (showing a tooltip instead) while that repeat is still empty.  Returns
    the repeat indexes of the new repeat, ready for :func:`item_id`.
    """
    by_id(page, "add-" + item_id(link_id, at)).click()
    new_at = (*at[:-1], at[-1] + 1)
    new_row = item_row(page, link_id, new_at)
    refusal = page.get_by_role("tooltip")
    expect(new_row.or_(refusal).first).to_be_visible(timeout=STEP_TIMEOUT_MS)
    if not new_row.is_visible():
        raise AssertionError(
            f"{link_id}: LHC-Forms added no repeat after {item_id(link_id, at)} and said "
            f"{(refusal.first.text_content() or '').strip()!r} (it refuses while the last "
            "repeat is empty; answer something in it first)"
        )
    return new_at


def remove_repeat(page: Page, link_id: str, at: Sequence[int]) -> None:
    """Click the "-" button of one repeat of a repeating group."""
    by_id(page, "del-" + item_id(link_id, at)).click()


def is_shown(page: Page, link_id: str, at: Sequence[int] = (1,)) -> bool:
    """Whether the item is on the page (enableWhen false removes it)."""
    return item_row(page, link_id, at).count() > 0


def questionnaire_response(page: Page) -> dict[str, Any]:
    """The QuestionnaireResponse LHC-Forms makes of the form as it stands (FHIR R4)."""
    result = page.evaluate(
        "(sel) => LForms.Util.getFormFHIRData("
        "'QuestionnaireResponse', 'R4', document.querySelector(sel))",
        _CONTAINER,
    )
    assert isinstance(result, dict), f"getFormFHIRData returned {type(result).__name__}"
    return result


def validity_errors(page: Page) -> list[str]:
    """LHC-Forms' own checks (required, min/max, …); empty when the form passes.

    LHC-Forms sets ``status: completed`` regardless, so tests must call this.
    """
    errors = page.evaluate(
        "(sel) => LForms.Util.checkValidity(document.querySelector(sel))", _CONTAINER
    )
    return list(errors or [])


def show_questionnaire_response(page: Page) -> dict[str, Any]:
    """Press the page's "Show QuestionnaireResponse" button and read what it shows."""
    page.get_by_role("button", name="Show QuestionnaireResponse").click()
    output = page.locator("#qr-output")
    expect(output).to_be_visible(timeout=STEP_TIMEOUT_MS)
    shown = json.loads(output.text_content() or "null")
    assert isinstance(shown, dict), "the page showed no QuestionnaireResponse"
    return shown


def answers(response: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Flatten a QuestionnaireResponse into ``(path, answers)`` pairs in document order.

    ``path`` joins the linkIds from the top down with ``/``, numbering repeats of a
    group as ``linkId[n]`` (from 1) where the group occurs more than once, so tests can
    compare whole responses against what they typed without LHC-Forms' item texts.
    """
    flat: list[tuple[str, list[dict[str, Any]]]] = []

    def walk(items: list[dict[str, Any]], prefix: str) -> None:
        seen: dict[str, int] = {}
        totals: dict[str, int] = {}
        for item in items:
            totals[item["linkId"]] = totals.get(item["linkId"], 0) + 1
        for item in items:
            link_id = item["linkId"]
            seen[link_id] = seen.get(link_id, 0) + 1
            name = f"{link_id}[{seen[link_id]}]" if totals[link_id] > 1 else link_id
            path = f"{prefix}/{name}" if prefix else name
            if "answer" in item:
                flat.append((path, [_answer_value(a) for a in item["answer"]]))
                for answer in item["answer"]:
                    walk(answer.get("item", []), path)
            walk(item.get("item", []), path)

    walk(response.get("item", []), "")
    return flat


def _answer_value(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k.startswith("value")}


def save_screenshot(page: Page, path: Path) -> Path:
    """Full-page screenshot, for a person to look at what a test saw."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
