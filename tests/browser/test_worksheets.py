"""The six worksheets end to end: a person fills each one in LHC-Forms, our engine checks
and summarises what LHC-Forms made of it, and the sync turns it into a note in HAPI.

Each test clicks, picks, ticks and types as a person would, then holds the renderer's
QuestionnaireResponse to three standards:

* LHC-Forms' own checks pass (it says ``completed`` even when they do not);
* ``validate_response`` finds no error against the built Questionnaire;
* the clinician summary (worksheet highlights and every question -> answer line) shows
  exactly what was typed and picked, in text, XHTML (markup typed by the client stays
  text) and Markdown.

Then the response goes to HAPI under a patient of its own, ``sync`` runs with a state file
of its own, and the note (DocumentReference) and Observations must carry the same answers.
That part needs the ``fhir_server`` fixture; without a server it skips locally and fails
under CI=true.  Timings per worksheet land in ``test-artifacts/browser/timings.json``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from rejection_fhir.response import (
    render_json,
    render_markdown,
    render_text,
    render_xhtml,
    summarize,
    validate_response,
)
from rejection_fhir.worksheet.catalog import catalog_from_build
from rejection_fhir.worksheet.summaries import worksheet_summarizers
from tests.browser import lforms_driver as lf
from tests.browser.conftest import ARTIFACTS

pytestmark = pytest.mark.browser

CODES = "https://rejection-fhir.org/fhir/CodeSystem/coping-with-rejection"
UCUM = "http://unitsofmeasure.org"
#: Every response is posted as authored at this instant, so notes and Observations are
#: dated predictably (LHC-Forms stamps the moment the form was read, in UTC with "Z").
AUTHORED = "2026-11-20T10:30:00+01:00"

Line = tuple[str, tuple[str, ...]]

#: Elements FHIR R4 allows in a narrative (Narrative.div, rule txt-1).
NARRATIVE_ELEMENTS = frozenset(
    (  # noqa: SIM905 - a word list reads better than fifty quoted strings
        "a abbr acronym b big blockquote br caption cite code col colgroup dd dfn div dl dt em "
        "h1 h2 h3 h4 h5 h6 hr i img li ol p pre q samp small span strong sub sup table tbody "
        "td tfoot th thead tr tt ul var"
    ).split()
)

#: What LHC-Forms 40.1.3 checkValidity reports on a correctly filled worksheet.  It checks
#: ``required`` on a group like a question's value, so no worksheet marks a group required
#: (future-focus requires the questions inside its "next step" group instead).
LFORMS_FALSE_ALARMS: dict[str, list[str]] = {}


@dataclass
class Filled:
    """What a person put into one worksheet, as the summary and the EHR should show it."""

    #: Summary lines in document order: (path, displayed values).
    lines: list[Line]
    #: The worksheet's highlights: (label, values).
    highlights: list[Line]
    #: Free text typed by the person; each must reach every rendering and the note.
    typed: list[str]
    #: Observations the sync should write: (code, code.text, value[x] key, value).
    observations: list[tuple[str, str, str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def worksheets(built: Any) -> dict[str, dict[str, Any]]:
    """The built Questionnaires by id."""
    return {q["id"]: q for q in built.questionnaires}


@pytest.fixture(scope="module")
def base_url(preview_server: Any, built: Any) -> str:
    return str(preview_server(built.questionnaires))


@pytest.fixture(scope="module")
def published_worksheets(
    fhir_server: str, repo: Path, built: Any, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The built worksheets on the HAPI server (publish is a no-op when they are there)."""
    from rejection_fhir.commands.publish import publish
    from rejection_fhir.settings import load_settings

    # An empty cwd: a developer's own rejection-fhir config must not redirect the tests.
    settings = load_settings({"server": fhir_server}, env={}, cwd=tmp_path_factory.mktemp("cfg"))
    report = publish(repo / "questionnaires", settings)
    published = {
        (s.url, s.version) for s in report.plan.steps if s.resource_type == "Questionnaire"
    }
    assert {(q["url"], q["version"]) for q in built.questionnaires} <= published
    return fhir_server


#: Stages timed per worksheet, in the order they happen.
STAGES = (
    "browser_render_s",  # open the page until LHC-Forms has drawn the form
    "browser_fill_s",  # a person's clicks and typing, checkValidity, getFormFHIRData
    "engine_s",  # validate_response + summarize + the four renderings, with their checks
    "post_s",  # Patient + QuestionnaireResponse POSTed to HAPI
    "sync_s",  # sync from the response's _lastUpdated: validate, summarise, one transaction
    "resync_s",  # the same sync again from the saved cursor (writes nothing new)
    "read_back_s",  # search the note and Observations back
    "total_s",
)


@pytest.fixture(scope="module")
def timings() -> Iterator[dict[str, dict[str, float]]]:
    """Seconds per worksheet and stage, written where `-s` is not needed to see them."""
    recorded: dict[str, dict[str, float]] = {}
    yield recorded
    if not recorded:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(
        json.dumps(recorded, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    for row in recorded.values():
        row["total_s"] = round(sum(row.values()), 3)
    stages = [s for s in STAGES if any(s in row for row in recorded.values())]
    table = ["| worksheet | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    for name, row in sorted(recorded.items()):
        cells = [f"{row[s]:.2f}" if s in row else "" for s in stages]
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    (ARTIFACTS / "timings.md").write_text(
        "Seconds per stage (time.perf_counter)\n\n" + "\n".join(table) + "\n", encoding="utf-8"
    )


# ---------------------------------------------------------------------- page helpers


def expect_absent(page: Page, link_id: str, at: Sequence[int] = (1,)) -> None:
    """enableWhen is false: LHC-Forms has removed the item (row and input) from the page."""
    expect(lf.item_row(page, link_id, at)).to_have_count(0)
    expect(lf.by_id(page, lf.item_id(link_id, at))).to_have_count(0)


def expect_shown(page: Page, link_id: str, at: Sequence[int] = (1,)) -> None:
    """enableWhen turned true: the item's input box is on the page (LHC-Forms adds it
    asynchronously after a drop-down pick, so this waits)."""
    expect(lf.by_id(page, lf.item_id(link_id, at))).to_be_visible()


def screenshot(page: Page, request: pytest.FixtureRequest, suffix: str) -> None:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    lf.save_screenshot(page, ARTIFACTS / f"{name}-{suffix}.png")


# ---------------------------------------------------------------------- the six fills


def fill_rejection_log(page: Page) -> Filled:
    happened = "Zephyr <b>& co</b> cancelled our plans\nagain, by text at 23:40"
    kind_other = "Quilted bandmate snub"
    emotion_other = "Flustered vexation"

    lf.type_text(page, "what-happened", happened)
    expect_absent(page, "kind-other")
    lf.click_answer(page, "kind", "Social")
    expect_absent(page, "kind-other")
    lf.click_answer(page, "kind", "Other")  # a person changes their mind
    expect_shown(page, "kind-other")
    lf.type_text(page, "kind-other", kind_other)
    lf.type_date(page, "when", dt.date(2026, 10, 3))

    lf.pick_from_list(page, "emotion.name", "Hurt", at=(1, 1), search="hu")
    lf.type_number(page, "emotion.intensity", 8, at=(1, 1))
    second = lf.add_repeat(page, "emotion", at=(1,))
    expect_absent(page, "emotion.other", (*second, 1))
    lf.pick_from_list(page, "emotion.name", "Other", at=(*second, 1))
    expect_shown(page, "emotion.other", (*second, 1))
    lf.type_text(page, "emotion.other", emotion_other, at=(*second, 1))
    lf.type_number(page, "emotion.intensity", 6, at=(*second, 1))
    third = lf.add_repeat(page, "emotion", at=second)
    lf.pick_from_list(page, "emotion.name", "Social anxiety", at=(*third, 1), search="soc")
    lf.type_number(page, "emotion.intensity", 3, at=(*third, 1))

    lf.click_answer(page, "reactions", "Low mood")
    lf.click_answer(page, "reactions", "Avoiding people or situations")
    lf.click_answer(page, "reactions", "Going over it again and again")
    lf.click_answer(page, "reactions", "Avoiding people or situations")  # …untick it again
    lf.type_number(page, "worth-impact", 7)

    intensity = "Intensity of an emotion after rejection (0-10)"
    return Filled(
        lines=[
            ("what-happened", (happened,)),
            ("kind", ("Other",)),
            ("kind-other", (kind_other,)),
            ("when", ("2026-10-03",)),
            ("emotion[0]/emotion.name", ("Hurt",)),
            ("emotion[0]/emotion.intensity", ("8",)),
            ("emotion[1]/emotion.name", ("Other",)),
            ("emotion[1]/emotion.other", (emotion_other,)),
            ("emotion[1]/emotion.intensity", ("6",)),
            ("emotion[2]/emotion.name", ("Social anxiety",)),
            ("emotion[2]/emotion.intensity", ("3",)),
            ("reactions", ("Low mood", "Going over it again and again")),
            ("worth-impact", ("7",)),
        ],
        highlights=[
            ("Kind of rejection", (f"Other: {kind_other}",)),
            ("Strongest emotions", (f"Hurt 8/10, {emotion_other} 6/10, Social anxiety 3/10",)),
            ("Reactions", ("Low mood, Going over it again and again",)),
            ("Feels it says about my worth", ("7/10",)),
        ],
        typed=[happened, kind_other, emotion_other],
        observations=[
            ("emotion-intensity", f"{intensity}: Hurt", "valueInteger", 8),
            # An "Other" instance is named by what the client typed, so trends stay apart.
            ("emotion-intensity", f"{intensity}: {emotion_other}", "valueInteger", 6),
            ("emotion-intensity", f"{intensity}: Social anxiety", "valueInteger", 3),
            (
                "worth-impact",
                "How much the rejection feels like it says about my worth (0-10)",
                "valueInteger",
                7,
            ),
        ],
    )


def fill_validate_emotions(page: Page) -> Filled:
    feeling_other = "Wistful static"
    body_other = "Jaw & temples <clenched>"
    mattered = "Being <em>chosen</em> & seen by Marisol's crew"
    kind = "It makes sense that I feel flat,\nbecause I cared about the trip a lot."

    lf.pick_from_list(page, "feeling.name", "Disappointment", at=(1, 1), search="disa")
    lf.type_number(page, "feeling.intensity", 7, at=(1, 1))
    second = lf.add_repeat(page, "feeling", at=(1,))
    expect_absent(page, "feeling.other", (*second, 1))
    lf.pick_from_list(page, "feeling.name", "Other", at=(*second, 1))
    expect_shown(page, "feeling.other", (*second, 1))
    lf.type_text(page, "feeling.other", feeling_other, at=(*second, 1))
    lf.type_number(page, "feeling.intensity", 5, at=(*second, 1))
    third = lf.add_repeat(page, "feeling", at=second)
    lf.pick_from_list(page, "feeling.name", "Loneliness", at=(*third, 1))
    lf.type_number(page, "feeling.intensity", 9, at=(*third, 1))

    lf.click_answer(page, "body", "Chest")
    lf.click_answer(page, "body", "Stomach")
    expect_absent(page, "body-other")
    lf.click_answer(page, "body", "Other")
    expect_shown(page, "body-other")
    lf.type_text(page, "body-other", body_other)
    lf.type_text(page, "what-mattered", mattered)
    lf.type_text(page, "kind-sentence", kind)

    intensity = "Intensity of a named feeling (0-10)"
    return Filled(
        lines=[
            ("feeling[0]/feeling.name", ("Disappointment",)),
            ("feeling[0]/feeling.intensity", ("7",)),
            ("feeling[1]/feeling.name", ("Other",)),
            ("feeling[1]/feeling.other", (feeling_other,)),
            ("feeling[1]/feeling.intensity", ("5",)),
            ("feeling[2]/feeling.name", ("Loneliness",)),
            ("feeling[2]/feeling.intensity", ("9",)),
            ("body", ("Chest", "Stomach", "Other")),
            ("body-other", (body_other,)),
            ("what-mattered", (mattered,)),
            ("kind-sentence", (kind,)),
        ],
        highlights=[
            ("Feelings", (f"Loneliness 9/10, Disappointment 7/10, {feeling_other} 5/10",)),
            ("What mattered", (mattered,)),
            ("Kind sentence", (kind,)),
        ],
        typed=[feeling_other, body_other, mattered, kind],
        observations=[
            ("feeling-intensity", f"{intensity}: Disappointment", "valueInteger", 7),
            ("feeling-intensity", f"{intensity}: {feeling_other}", "valueInteger", 5),
            ("feeling-intensity", f"{intensity}: Loneliness", "valueInteger", 9),
        ],
    )


def fill_reframe_redirection(page: Page) -> Filled:
    situation = "Turned down for the Kestrel Labs role"
    aligned = "Partly: the pay, yes; the 60-hour weeks, no."
    guiding = "Maybe toward the co-op bakery job I keep mentioning."
    learned = "I can ask for feedback <directly> & calmly"
    possible = "Apply to Oakhollow Co-op\nand finish my portfolio by spring"

    lf.type_text(page, "situation", situation)
    lf.type_text(page, "values-aligned", aligned)
    lf.type_text(page, "guiding-toward", guiding)
    lf.type_text(page, "learned", learned)
    lf.type_text(page, "possible-now", possible)
    lf.type_number(page, "hopefulness", 6)

    return Filled(
        lines=[
            ("situation", (situation,)),
            ("values-aligned", (aligned,)),
            ("guiding-toward", (guiding,)),
            ("learned", (learned,)),
            ("possible-now", (possible,)),
            ("hopefulness", ("6",)),
        ],
        highlights=[
            ("What is possible now", (possible,)),
            ("What I learned", (learned,)),
            ("Hopefulness", ("6/10",)),
        ],
        typed=[situation, aligned, guiding, learned, possible],
        observations=[
            (
                "hopefulness",
                "Hopefulness about what is possible now (0-10)",
                "valueInteger",
                6,
            ),
        ],
    )


def fill_self_compassion(page: Page) -> Filled:
    situation = "Left on read by Juniper"
    friend = "You matter <more> than one silence & one evening"
    self_talk = "Dear me,\nit hurt, and that is allowed.\nTomorrow I'll call Ines."
    practice_other = "Humming lullabies at dusk"

    lf.type_text(page, "situation", situation)
    lf.type_text(page, "friend", friend)
    lf.type_text(page, "self-talk", self_talk)
    expect_absent(page, "practice-other")
    lf.click_answer(page, "practice", "Journaling")
    expect_absent(page, "practice-other")
    lf.click_answer(page, "practice", "Other")
    expect_shown(page, "practice-other")
    lf.type_text(page, "practice-other", practice_other)
    lf.click_answer(page, "frequency", "A few times a week")
    lf.type_number(page, "self-kindness", 4)

    return Filled(
        lines=[
            ("situation", (situation,)),
            ("friend", (friend,)),
            ("self-talk", (self_talk,)),
            ("practice", ("Other",)),
            ("practice-other", (practice_other,)),
            ("frequency", ("A few times a week",)),
            ("self-kindness", ("4",)),
        ],
        highlights=[
            ("Would tell a friend", (friend,)),
            ("Practice", (f"Other: {practice_other}, a few times a week",)),
            ("Self-kindness now", ("4/10",)),
        ],
        typed=[situation, friend, self_talk, practice_other],
        observations=[
            ("self-kindness", "How kind I am being to myself (0-10)", "valueInteger", 4),
        ],
    )


def fill_core_beliefs(page: Page) -> Filled:
    situation = "Book club vote held without me"
    belief_other = "I'm only ever tolerated, never chosen"
    echoes = "Picked last for teams, 1998-2003"
    evidence_for = "Nobody asked me before the vote."
    evidence_against = "Tamsin rang me twice this week;\nthe club chose MY book in June."
    alternative = "Even though <they> forgot me & voted, it is also true that I belong there"

    lf.type_text(page, "situation", situation)
    expect_absent(page, "belief-other")
    lf.click_answer(page, "belief", "I'm unlovable")
    expect_absent(page, "belief-other")
    lf.click_answer(page, "belief", "Other")
    expect_shown(page, "belief-other")
    lf.type_text(page, "belief-other", belief_other)
    lf.type_number(page, "strength-before", 80)
    lf.type_text(page, "echoes", echoes)
    lf.type_text(page, "evidence-for", evidence_for)
    lf.type_text(page, "evidence-against", evidence_against)
    lf.type_text(page, "alternative", alternative)
    lf.type_number(page, "strength-after", 45)

    percent = {"unit": "%", "system": UCUM, "code": "%"}
    return Filled(
        lines=[
            ("situation", (situation,)),
            ("belief", ("Other",)),
            ("belief-other", (belief_other,)),
            ("strength-before", ("80 %",)),
            ("echoes", (echoes,)),
            ("evidence-for", (evidence_for,)),
            ("evidence-against", (evidence_against,)),
            ("alternative", (alternative,)),
            ("strength-after", ("45 %",)),
        ],
        highlights=[
            ("Belief", (f"Other: {belief_other}",)),
            ("Strength before → after", ("80 % → 45 % (−35)",)),
            ("Balanced alternative", (alternative,)),
        ],
        typed=[situation, belief_other, echoes, evidence_for, evidence_against, alternative],
        observations=[
            (
                "belief-strength-before",
                "Strength of the core belief before the worksheet (%)",
                "valueQuantity",
                {"value": 80, **percent},
            ),
            (
                "belief-strength-after",
                "Strength of the core belief after the worksheet (%)",
                "valueQuantity",
                {"value": 45, **percent},
            ),
        ],
    )


def fill_future_focus(page: Page) -> Filled:
    values = "Honesty <i>first</i> & time with Ravi's family"
    relationships = "Friends who answer within a week"
    work = "Small teams that say what they mean"
    goals = "Run the Fernhill 10k"
    insights = "I may say no to last-minute plans.\nI don't owe anyone an instant reply."
    action = "Email Priya about the ceramics class"

    lf.type_text(page, "values", values)
    lf.type_text(page, "fit.relationships", relationships, at=(1, 1))
    lf.type_text(page, "fit.work", work, at=(1, 1))
    lf.type_text(page, "fit.goals", goals, at=(1, 1))
    lf.type_text(page, "insights", insights)
    lf.type_text(page, "next-step.action", action, at=(1, 1))
    lf.type_date(page, "next-step.date", dt.date(2026, 12, 5), at=(1, 1))

    return Filled(
        lines=[
            ("values", (values,)),
            ("fit/fit.relationships", (relationships,)),
            ("fit/fit.work", (work,)),
            ("fit/fit.goals", (goals,)),
            ("insights", (insights,)),
            ("next-step/next-step.action", (action,)),
            ("next-step/next-step.date", ("2026-12-05",)),
        ],
        highlights=[
            ("Values", (values,)),
            ("Next step", (f"{action} (by 2026-12-05)",)),
            ("Boundaries and insights", (insights,)),
        ],
        typed=[values, relationships, work, goals, insights, action],
        observations=[],
    )


WORKSHEETS: dict[str, tuple[str, Callable[[Page], Filled]]] = {
    # Questionnaire id: (preview page name, how a person fills it)
    "rejection-log": ("RejectionLog", fill_rejection_log),
    "validate-emotions": ("ValidateEmotions", fill_validate_emotions),
    "reframe-redirection": ("ReframeRedirection", fill_reframe_redirection),
    "self-compassion": ("SelfCompassion", fill_self_compassion),
    "core-beliefs": ("CoreBeliefs", fill_core_beliefs),
    "future-focus": ("FutureFocus", fill_future_focus),
}


# ---------------------------------------------------------------------- summary checks


def summary_lines(entries: Sequence[Mapping[str, Any]]) -> list[Line]:
    """Every question -> answer line of a rendered-JSON summary, depth first."""
    out: list[Line] = []
    for entry in entries:
        if entry["kind"] == "section":
            out.extend(summary_lines(entry["entries"]))
        else:
            out.append((entry["path"], tuple(entry["values"])))
            out.extend(summary_lines(entry["children"]))
    return out


def text_lines(value: str) -> list[str]:
    """What a renderer keeps of a typed value: its non-blank lines, stripped."""
    return [line.strip() for line in value.split("\n") if line.strip()]


def markdown_unescaped(markdown: str) -> str:
    """Markdown with CommonMark backslash escapes read back (and hard breaks as newlines)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown.replace("\\\n", "\n"))


def check_summary(
    qr: dict[str, Any], questionnaire: Mapping[str, Any], filled: Filled
) -> dict[str, str]:
    """The summary shows exactly what was filled, in every rendering; returns them."""
    summary = summarize(qr, questionnaire, summarizers=worksheet_summarizers([questionnaire]))
    as_json = render_json(summary)
    assert as_json["title"] == questionnaire["title"]
    assert as_json["alerts"] == []
    assert [(h["label"], tuple(h["values"])) for h in as_json["highlights"]] == filled.highlights
    assert summary_lines(as_json["sections"]) == filled.lines

    text = render_text(summary)
    for label, values in filled.highlights:
        assert f"  {label}: {values[0].splitlines()[0]}" in text, (label, text)
    for _, values in filled.lines:
        for value in values:
            for line in text_lines(value):
                assert line in text, (line, text)

    xhtml = render_xhtml(summary)
    root = ET.fromstring(xhtml)  # well-formed: typed markup did not become markup
    assert root.tag == "{http://www.w3.org/1999/xhtml}div"
    shown = "\n".join(root.itertext())
    tags = {element.tag.split("}")[1] for element in root.iter()}
    assert tags <= NARRATIVE_ELEMENTS, tags
    for typed in filled.typed:
        for line in text_lines(typed):
            assert line in shown, (line, shown)
            assert html.escape(line, quote=True) in xhtml
            if "<" in line:
                assert line not in xhtml, f"raw markup in the XHTML: {line!r}"

    markdown = render_markdown(summary)
    read_back = markdown_unescaped(markdown)
    for typed in filled.typed:
        for line in text_lines(typed):
            assert line in read_back, (line, markdown)
            if "<" in line:  # "&" opens markup only before an entity name
                assert line not in markdown, f"unescaped markup in the Markdown: {line!r}"
    return {"text": text, "xhtml": xhtml, "markdown": markdown}


# ---------------------------------------------------------------------- the tests


@pytest.mark.parametrize("worksheet", list(WORKSHEETS))
def test_worksheet_filled_in_the_browser_becomes_a_note(
    worksheet: str,
    page: Page,
    page_log: Any,
    base_url: str,
    worksheets: dict[str, dict[str, Any]],
    timings: dict[str, dict[str, float]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    questionnaire = worksheets[worksheet]
    name, fill = WORKSHEETS[worksheet]
    times = timings.setdefault(worksheet, {})

    started = time.perf_counter()
    lf.open_questionnaire(page, base_url, name)
    rendered = time.perf_counter()
    filled = fill(page)
    errors = lf.validity_errors(page)
    qr = lf.questionnaire_response(page)
    done = time.perf_counter()
    times["browser_render_s"] = round(rendered - started, 3)
    times["browser_fill_s"] = round(done - rendered, 3)
    screenshot(page, request, "filled")

    assert errors == LFORMS_FALSE_ALARMS.get(worksheet, []), errors
    assert qr["status"] == "completed"
    assert qr["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    findings = validate_response(qr, questionnaire)
    assert [str(f) for f in findings if f.severity != "information"] == []
    check_summary(qr, questionnaire, filled)
    times["engine_s"] = round(time.perf_counter() - done, 3)
    assert page_log.problems() == []

    synced = post_and_sync(request, qr, tmp_path, authored=AUTHORED)
    times.update(synced.seconds)
    check_note(synced, questionnaire, filled)


@dataclass
class Synced:
    """A response posted to HAPI for a patient of its own, synced, and what came of it."""

    response_id: str
    patient_id: str
    #: What either sync run rejected or failed of this response (findings or server refusal).
    problems: list[Any]
    notes: list[dict[str, Any]]
    notes_by_response: list[dict[str, Any]]
    observations: list[dict[str, Any]]
    seconds: dict[str, float]


def post_and_sync(
    request: pytest.FixtureRequest, qr: Mapping[str, Any], tmp_path: Path, *, authored: str | None
) -> Synced:
    """POST the response (subject: a new Patient; ``authored`` replaced unless None), run
    ``sync`` twice with a state file of this test's own, and read back what it wrote.

    The first run starts at the response's ``_lastUpdated``, so it does not wade through
    every response other tests left on the server; the second runs from the saved cursor
    and must change nothing.
    """
    from rejection_fhir import settings as settings_module
    from rejection_fhir.sync.run import SyncOptions, sync

    base: str = request.getfixturevalue("published_worksheets")
    built = request.getfixturevalue("built")
    settings = settings_module.load_settings({"server": base}, env={}, cwd=tmp_path)
    state = tmp_path / "s.sqlite3"

    started = time.perf_counter()
    with settings_module.make_client(settings) as client:
        patient = client.create(
            {
                "resourceType": "Patient",
                "identifier": [
                    {"system": "urn:rejection-fhir:browser-test", "value": str(uuid.uuid4())}
                ],
                "name": [{"family": "Browser", "given": [request.node.name]}],
            }
        )
        assert patient.id
        posted = {**qr, "subject": {"reference": f"Patient/{patient.id}"}}
        if authored is not None:
            posted["authored"] = authored
        created = client.create(posted, sensitive=True)
        assert created.id
        since = client.read("QuestionnaireResponse", created.id)["meta"]["lastUpdated"]
    posted_at = time.perf_counter()

    mine = f"QuestionnaireResponse/{created.id}/"
    first = SyncOptions(source=base, state_path=state, since=since)
    report = sync(settings, first, catalog_from_build(built))
    synced = time.perf_counter()
    again = sync(settings, SyncOptions(source=base, state_path=state), catalog_from_build(built))
    resynced = time.perf_counter()
    # Other tests' responses may be on the server too; only this one's fate counts here.
    problems = [
        p
        for p in (*report.rejected, *report.failed, *again.rejected, *again.failed)
        if p.response.startswith(mine)
    ]

    with settings_module.make_client(settings) as client:
        subject = {"subject": f"Patient/{patient.id}"}
        result = Synced(
            response_id=created.id,
            patient_id=patient.id,
            problems=problems,
            notes=list(client.search("DocumentReference", subject)),
            notes_by_response=list(
                client.search("DocumentReference", {"related": mine.rstrip("/")})
            ),
            observations=list(client.search("Observation", subject)),
            seconds={},
        )
    result.seconds = {
        "post_s": round(posted_at - started, 3),
        "sync_s": round(synced - posted_at, 3),
        "resync_s": round(resynced - synced, 3),
        "read_back_s": round(time.perf_counter() - resynced, 3),
    }
    return result


def attachment_text(note: Mapping[str, Any], content_type: str) -> str:
    for content in note["content"]:
        if content["attachment"]["contentType"] == content_type:
            return base64.b64decode(content["attachment"]["data"]).decode("utf-8")
    raise AssertionError(f"the note has no {content_type} attachment")


def check_note(synced: Synced, questionnaire: Mapping[str, Any], filled: Filled) -> None:
    """Exactly one note for the response, carrying every answer; Observations as typed."""
    response = f"QuestionnaireResponse/{synced.response_id}"
    assert [str(p) for p in synced.problems] == []
    assert len(synced.notes) == 1, [n.get("id") for n in synced.notes]
    note = synced.notes[0]
    assert [n["id"] for n in synced.notes_by_response] == [note["id"]]
    assert note["status"] == "current"
    assert note["docStatus"] == "final"
    assert note["context"]["related"][0]["reference"] == response
    assert note["date"] == AUTHORED
    assert note["description"] == f"{questionnaire['title']} (2026-11-20)"

    markdown = attachment_text(note, "text/markdown; charset=utf-8")
    read_back = markdown_unescaped(markdown)
    xhtml = attachment_text(note, "application/xhtml+xml; charset=utf-8")
    shown = "\n".join(ET.fromstring(xhtml).itertext())
    narrative = "\n".join(ET.fromstring(note["text"]["div"]).itertext())
    for typed in filled.typed:
        for line in text_lines(typed):
            assert line in read_back, (line, markdown)
            assert line in shown, (line, xhtml)
            assert line in narrative, (line, note["text"]["div"])
    for label, values in filled.highlights:
        assert f"**{label}:** {values[0].splitlines()[0]}" in read_back, (label, markdown)
    for path, values in filled.lines:
        for value in values:
            for line in text_lines(value):
                assert line in read_back, (path, line, markdown)

    got = sorted(
        (
            o["code"]["coding"][0]["code"],
            o["code"]["text"],
            *next((k, v) for k, v in o.items() if k.startswith("value")),
        )
        for o in synced.observations
    )
    assert got == sorted(filled.observations, key=lambda o: (o[0], o[1], o[2]))
    for observation in synced.observations:
        assert observation["status"] == "final"
        assert observation["code"]["coding"][0]["system"] == CODES
        assert observation["derivedFrom"] == [{"reference": response}]
        assert observation["effectiveDateTime"] == AUTHORED


def test_missing_required_answers_are_caught_by_lforms_by_our_checks_and_by_sync(
    page: Page,
    page_log: Any,
    base_url: str,
    worksheets: dict[str, dict[str, Any]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """Required items left empty, including ones that only become required once shown;
    the sync records the response as rejected and writes nothing for it."""
    questionnaire = worksheets["rejection-log"]
    lf.open_questionnaire(page, base_url, "RejectionLog")
    lf.type_text(page, "what-happened", "Waved at Odile; she walked past")
    lf.click_answer(page, "kind", "Other")
    expect_shown(page, "kind-other")  # …and left empty
    lf.pick_from_list(page, "emotion.name", "Embarrassment", at=(1, 1))
    lf.type_number(page, "emotion.intensity", 5, at=(1, 1))
    second = lf.add_repeat(page, "emotion", at=(1,))
    lf.pick_from_list(page, "emotion.name", "Shame", at=(*second, 1))  # no intensity
    # worth-impact left empty as well
    screenshot(page, request, "incomplete")

    errors = lf.validity_errors(page)
    assert sorted(errors) == sorted(
        [
            "Please describe the kind of rejection requires a value",
            "How strong was it? (0 = not at all, 10 = the strongest I can imagine) "
            "requires a value",
            "How much does this feel like it says about your worth as a person? "
            "(0 = nothing, 10 = everything) requires a value",
        ]
    ), errors
    qr = lf.questionnaire_response(page)
    assert qr["status"] == "completed"  # LHC-Forms says so regardless

    findings = [f for f in validate_response(qr, questionnaire) if f.severity == "error"]
    assert sorted((f.path, f.code) for f in findings) == [
        ("emotion[1]/emotion.intensity", "required-missing"),
        ("kind-other", "required-missing"),
        ("worth-impact", "required-missing"),
    ]
    assert page_log.problems() == []

    synced = post_and_sync(request, qr, tmp_path, authored=AUTHORED)
    try:
        # Rejected once, then left alone: the rerun finds it in the ledger.
        assert [p.response.split("/_history/")[0] for p in synced.problems] == [
            f"QuestionnaireResponse/{synced.response_id}"
        ]
        assert sorted((f["path"], f["code"]) for f in synced.problems[0].findings) == [
            ("emotion[1]/emotion.intensity", "required-missing"),
            ("kind-other", "required-missing"),
            ("worth-impact", "required-missing"),
        ]
        assert synced.notes == synced.notes_by_response == synced.observations == []
    finally:
        # Other suites sync the same server; an invalid response left behind would show up
        # as a rejection in their reports.
        from rejection_fhir import settings as settings_module

        base = request.getfixturevalue("fhir_server")
        settings = settings_module.load_settings({"server": base}, env={}, cwd=tmp_path)
        with settings_module.make_client(settings) as client:
            client.delete("QuestionnaireResponse", synced.response_id)


def test_note_is_dated_with_the_authored_instant_lhc_forms_wrote(
    page: Page,
    base_url: str,
    worksheets: dict[str, dict[str, Any]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    lf.open_questionnaire(page, base_url, "ReframeRedirection")
    filled = fill_reframe_redirection(page)
    qr = lf.questionnaire_response(page)
    authored = qr["authored"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", authored), authored

    synced = post_and_sync(request, qr, tmp_path, authored=None)
    assert [str(p) for p in synced.problems] == []
    assert len(synced.notes) == 1
    assert [o["effectiveDateTime"] for o in synced.observations] == [authored]
    assert filled.typed[0] in attachment_text(synced.notes[0], "text/markdown; charset=utf-8")
    assert synced.notes[0].get("date") == authored
