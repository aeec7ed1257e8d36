"""``rejection-fhir report``: one client's progress report from the EHR, as HTML (PDF, PNG).

Reads what the sync wrote for the patient, following every page: survey Observations
(scores and trended answers), current questionnaire-response notes (DocumentReference,
LOINC 74465-6) and Flags.  The server filters by search parameters; the report model checks
everything again (patient, status, our identifiers), because a server may ignore a
parameter it does not support.

Each search asks only what the server's CapabilityStatement says it takes, as ``sync``
does (:func:`rejection_fhir.sync.strategy.search_usable`): by ``subject`` or else
``patient``, with the filters it lists (``status`` is left to the model where it is not
searchable, as on Epic), and not at all for a type it does not let be searched (no Flag on
Epic, Oracle, athena or Canvas).  What could not be read, and why, goes into the report
(:func:`plan_searches`); a search the server refuses all the same is said there too.  PDF
and PNG are printed by Debian's Chromium through Playwright, imported only when asked for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rejection_fhir import settings as settings_module
from rejection_fhir.ehr.note import LOINC, NOTE_TYPE
from rejection_fhir.ehr.observations import SURVEY
from rejection_fhir.errors import AuthError, ConfigError, FhirServerError, UsageError, output_error
from rejection_fhir.fhir.capabilities import parse_capability_statement
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.report.markup import esc
from rejection_fhir.report.model import Report, build_report, patient_reference
from rejection_fhir.report.page import render_html
from rejection_fhir.sync.strategy import Evidence, search_usable
from rejection_fhir.worksheet.catalog import Catalog

JsonDict = dict[str, Any]

#: Overrides the Chromium binary used for --pdf/--png (default: Debian's).
CHROMIUM_ENV = "RFHIR_CHROMIUM"
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and nothing that phones home: the page needs no network at all.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Resources per page asked of the server (it may send fewer; next links are followed).
PAGE_SIZE = 100
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass
class PatientRecords:
    """What the server holds for one patient, as plain dicts."""

    observations: list[JsonDict] = field(default_factory=list)
    documents: list[JsonDict] = field(default_factory=list)
    flags: list[JsonDict] = field(default_factory=list)
    #: The Patient resource (name, birth date), or None when the server would not give it.
    patient: JsonDict | None = None
    #: Resource types that could not be read, with why (see :func:`plan_searches`).
    not_read: dict[str, str] = field(default_factory=dict)


#: What each search asks besides the patient: the server narrows where it can, the model
#: checks all of it again.  R4 defines no ``status`` search for Flag: every Flag of the
#: patient comes back and the model keeps the active ones.
FILTERS: dict[str, dict[str, str]] = {
    "Observation": {"category": f"{SURVEY['system']}|{SURVEY['code']}"},
    "DocumentReference": {"type": f"{LOINC}|{NOTE_TYPE['code']}", "status": "current"},
    "Flag": {},
}
#: The patient's search parameter, preferred first.
PATIENT_PARAMS = ("subject", "patient")
#: Refusals of a search that leave the report to say what it could not read.  401 and 403
#: (AuthError) are the credentials' problem and stop the report: a token without the
#: scope for a type must be fixed, not worked around.
_REFUSED = (400, 404, 405, 422, 501)


@dataclass(frozen=True)
class SearchPlan:
    resource_type: str
    #: The search's parameters, or None when the server does not let it be made.
    params: dict[str, str] | None
    #: Why not, when ``params`` is None.
    reason: str = ""


def plan_searches(
    statement: dict[str, Any], patient: str, *, page_size: int = PAGE_SIZE
) -> list[SearchPlan]:
    """The report's three searches for *patient* (``Patient/id``) on the server that sent
    ``statement``: only the parameters it lists, none of a type it cannot search.

    A statement that lists no resources, or a type with no search parameters listed,
    says nothing about them: the full search is sent, as before (the model checks all)."""
    caps = parse_capability_statement(statement)
    evidence = Evidence()
    plans = []
    for kind, filters in FILTERS.items():
        full = {"subject": patient, **filters, "_count": str(page_size)}
        found = caps.resource(kind)
        if not caps.resources:
            plans.append(SearchPlan(kind, full))
        elif found is None or not found.can("search-type"):
            plans.append(SearchPlan(kind, None, f"this EHR does not let {kind} be searched"))
        elif not (found.search_params or caps.common_search_params):
            plans.append(SearchPlan(kind, full))
        else:
            by = next((p for p in PATIENT_PARAMS if search_usable(caps, evidence, kind, p)), None)
            if by is None:
                plans.append(
                    SearchPlan(kind, None, f"this EHR does not let {kind} be searched by patient")
                )
                continue
            params = {by: patient}
            params.update(
                (name, value)
                for name, value in filters.items()
                if search_usable(caps, evidence, kind, name)
            )
            params["_count"] = str(page_size)
            plans.append(SearchPlan(kind, params))
    return plans


@dataclass(frozen=True)
class ReportOutput:
    report: Report
    html_path: Path
    pdf_path: Path | None = None
    png_path: Path | None = None


def patient_id(patient: str) -> str:
    """``123`` or ``Patient/123`` -> ``123``; anything else is a usage error."""
    value = patient.strip().removeprefix("Patient/")
    if not _ID.match(value):
        raise UsageError(
            "--patient must be a FHIR Patient id (letters, digits, '-' and '.', up to 64) "
            "or Patient/<id>",
            hint="copy the id from the EHR, e.g. --patient 12345",
        )
    return value


def fetch_records(
    client: FhirClient, patient: str, *, page_size: int = PAGE_SIZE
) -> PatientRecords:
    """Everything the report needs for *patient* (an id), all pages of each search the
    server allows (:func:`plan_searches`); what it does not allow is in ``not_read``."""
    subject = patient_reference(patient_id(patient))
    found: dict[str, list[JsonDict]] = {kind: [] for kind in FILTERS}
    not_read: dict[str, str] = {}
    for plan in plan_searches(client.capabilities(), subject, page_size=page_size):
        if plan.params is None:
            not_read[plan.resource_type] = plan.reason
            continue
        try:
            found[plan.resource_type] = list(client.search(plan.resource_type, plan.params))
        except FhirServerError as exc:
            if isinstance(exc, AuthError) or exc.status not in _REFUSED:
                raise
            first = (exc.message.splitlines() or ["refused"])[0]
            not_read[plan.resource_type] = (
                f"this EHR refused the {plan.resource_type} search ({first})"
            )
    records = PatientRecords(
        found["Observation"], found["DocumentReference"], found["Flag"], not_read=not_read
    )
    # Name and birth date let the reader check whose report it is.  A server that hides
    # the Patient (404, or 403 for a token scoped to the clinical data only) still gets a
    # report, by id; the page says the name is not available.
    try:
        records.patient = client.read("Patient", patient_id(patient))
    except FhirServerError as exc:
        if exc.status not in (403, 404, 410):
            raise
    return records


def make_report(
    settings: settings_module.Settings,
    patient: str,
    catalog: Catalog,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Report:
    """Fetch and build the report (no files written); ``catalog`` titles and scales the
    worksheets' charts (their Observations are coded in the CodeSystem it was built with)."""
    pid = patient_id(patient)
    client = settings_module.make_client(settings)
    try:
        client.check_fhir_version()
        records = fetch_records(client, pid)
        server = client.base_url
    finally:
        client.close()
    return build_report(
        pid,
        observations=records.observations,
        documents=records.documents,
        flags=records.flags,
        not_read=records.not_read,
        generated_at=now(),
        server=server,
        patient_resource=records.patient,
        measures=catalog.measures,
    )


def _chromium() -> Path:
    path = Path(os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ConfigError(
            f"--pdf/--png need Chromium, and there is none at {path}",
            hint="install Chromium (Debian/Ubuntu: sudo apt-get install chromium; in a clone "
            f"of the repository: scripts/install-browser) or set {CHROMIUM_ENV} to a Chromium "
            "binary; the HTML report needs no browser",
        )
    return path


def _playwright() -> None:
    """Fail before anything is fetched or written when Playwright is missing."""
    try:
        import playwright.sync_api  # noqa: F401  (heavy: only for --pdf/--png)
    except ImportError:
        raise ConfigError(
            "--pdf/--png need the Python package playwright, which is not installed; "
            "nothing was written",
            hint="pip install 'rejection-fhir[browser]' (its own browser download is not "
            "needed: Playwright drives the system's Chromium)",
        ) from None


def _footer_template(report: Report) -> str:
    # Chromium fills .pageNumber/.totalPages; the patient reference is escaped like all text.
    return (
        '<div style="width:100%;font-size:8px;color:#555;padding:0 12mm;'
        'display:flex;justify-content:space-between;font-family:sans-serif">'
        f"<span>Progress report: {esc(report.patient)}</span>"
        '<span>Page <span class="pageNumber"></span> of <span class="totalPages"></span></span>'
        "</div>"
    )


def print_report(
    html: str,
    report: Report,
    *,
    pdf: Path | None = None,
    png: Path | None = None,
    chromium: Path | None = None,
) -> None:
    """Print *html* to PDF (A4) and/or a full-page PNG in headless Chromium, offline."""
    if pdf is None and png is None:
        return
    executable = chromium or _chromium()
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        _playwright()
        raise
    footer = _footer_template(report)

    def run() -> None:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(executable), args=list(CHROMIUM_ARGS), headless=True
            )
            try:
                context = browser.new_context(
                    viewport={"width": 1100, "height": 1400},
                    java_script_enabled=False,
                    offline=True,
                )
                page = context.new_page()
                # The page is self-contained; anything it tries to fetch is a defect.
                page.route("**/*", lambda route: route.abort())
                page.set_content(html, wait_until="load")
                if png is not None:
                    page.screenshot(path=str(png), full_page=True)
                if pdf is not None:
                    page.emulate_media(media="print")
                    page.pdf(
                        path=str(pdf),
                        format="A4",
                        print_background=True,
                        prefer_css_page_size=True,
                        display_header_footer=True,
                        header_template="<span></span>",
                        footer_template=footer,
                    )
            finally:
                browser.close()

    # Playwright's sync API refuses to start where an asyncio loop runs (a notebook, or a
    # caller already driving a browser); a thread of its own has none.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-print") as pool:
        try:
            pool.submit(run).result()
        except PlaywrightError as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(
                f"Chromium at {executable} could not print the report: {first_line}",
                hint="check that Chromium runs (sudo apt-get install chromium, or "
                f"{CHROMIUM_ENV}); the HTML report was written and needs no browser",
            ) from None


def write_report(
    settings: settings_module.Settings,
    patient: str,
    catalog: Catalog,
    *,
    out: Path,
    pdf: Path | None = None,
    png: Path | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReportOutput:
    """Fetch, render and write the HTML (then PDF/PNG when asked)."""
    if pdf is not None or png is not None:
        # Fail before any request, and before any file is written, when printing cannot work.
        _chromium()
        _playwright()
    report = make_report(settings, patient, catalog, now=now)
    html = render_html(report)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise output_error(out, exc, what="cannot write the report") from None
    for path in (pdf, png):
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise output_error(path, exc, what="cannot write the report") from None
    print_report(html, report, pdf=pdf, png=png)
    return ReportOutput(report, out, pdf, png)
