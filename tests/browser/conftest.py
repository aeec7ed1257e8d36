"""Fixtures for tests that render worksheets with LHC-Forms in Debian's headless Chromium.

Needs ``scripts/install-browser`` (``/usr/bin/chromium``) and ``scripts/install-lforms``.
Without them these tests skip locally and FAIL under ``CI=true``.

Playwright drives the system Chromium; its own browser downloads (``playwright install``)
are never used.  One browser runs per session; each test gets a new browser context (its
own cookies and storage) and a page whose console errors, failed requests and requests
leaving the preview server are recorded.  A full-page screenshot of every test's page
lands in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rejection_fhir.errors import ConfigError
from rejection_fhir.preview.page import resolve_lforms_dir
from rejection_fhir.preview.server import PreviewServer, serve

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
ARTIFACTS = REPO / "test-artifacts" / "browser"

#: Overrides the Chromium binary (default: Debian's).
CHROMIUM_ENV = "RFHIR_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

#: Running as root in a container: no sandbox, no GPU, and nothing that phones home
#: (the machines reach no network but package registries, and a fetch that hangs makes
#: tests slow and flaky).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must never pass by not running a browser test."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: a missing browser is a failure)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    path = Path(os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM)
    if not (path.is_file() and os.access(path, os.X_OK)):
        _unavailable(f"no Chromium at {path}; run scripts/install-browser")
    return path


@pytest.fixture(scope="session")
def lforms_dir() -> Path:
    try:
        return resolve_lforms_dir()
    except ConfigError as exc:
        _unavailable(str(exc).replace("\n", " "))
        raise  # unreachable: _unavailable always raises


def load_questionnaire(file_name: str) -> dict[str, Any]:
    """A hand-written test Questionnaire from tests/browser/data."""
    loaded = json.loads((DATA / file_name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="session")
def harness_questionnaire() -> dict[str, Any]:
    return load_questionnaire("harness-questionnaire.json")


ServeQuestionnaires = Callable[[Sequence[Mapping[str, Any]]], str]


@pytest.fixture(scope="session")
def preview_server(lforms_dir: Path) -> Iterator[ServeQuestionnaires]:
    """``preview_server(questionnaires) -> base URL``: a preview serving exactly these.

    One server per distinct list, started on first use and kept for the session, so
    modules that render the same Questionnaires share it.
    """
    servers: dict[str, tuple[PreviewServer, str]] = {}

    def start(questionnaires: Sequence[Mapping[str, Any]]) -> str:
        key = json.dumps(list(questionnaires), sort_keys=True)
        if key not in servers:
            servers[key] = serve(questionnaires, lforms_dir=lforms_dir)
        return servers[key][1]

    yield start
    for server, _ in servers.values():
        server.close()


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[Any]:
    # Playwright gives every launch() a fresh temporary profile of its own.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_path), args=list(CHROMIUM_ARGS), headless=True
        )
        yield launched
        launched.close()


@dataclass
class PageLog:
    """What a page did besides rendering: anything here usually means a broken page."""

    origin_prefixes: tuple[str, ...] = ("http://127.0.0.1:", "http://localhost:")
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)
    off_machine_requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [
            *(f"console: {m}" for m in self.console_errors),
            *(f"page error: {m}" for m in self.page_errors),
            *(f"HTTP {m}" for m in self.failed_responses),
            *(f"left the machine: {m}" for m in self.off_machine_requests),
        ]


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser: Any, page_log: PageLog, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    new_page = context.new_page()
    new_page.on(
        "console",
        lambda msg: page_log.console_errors.append(msg.text) if msg.type == "error" else None,
    )
    new_page.on("pageerror", lambda exc: page_log.page_errors.append(str(exc)))
    new_page.on(
        "response",
        lambda resp: (
            page_log.failed_responses.append(f"{resp.status} {resp.url}")
            if resp.status >= 400
            else None
        ),
    )
    new_page.on(
        "request",
        lambda req: (
            page_log.off_machine_requests.append(req.url)
            if not req.url.startswith((*page_log.origin_prefixes, "data:", "blob:", "about:"))
            else None
        ),
    )
    yield new_page
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        new_page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture(scope="session")
def fhir_server() -> str:
    """Base URL of the local HAPI FHIR server, found or started by ``tests/hapi_server.py``.

    Only browser tests that go on to sync ask for it; without a server they skip locally
    and FAIL under ``CI=true``.
    """
    from tests.conftest import unavailable
    from tests.hapi_server import answers, ensure_server

    try:
        base_url = ensure_server()
    except RuntimeError as exc:
        unavailable(f"no HAPI FHIR server: {exc}")
        raise  # unreachable: unavailable always raises
    if not answers(base_url):  # RFHIR_TEST_SERVER is taken as given, unchecked
        unavailable(f"the FHIR server at {base_url} does not answer GET metadata")
    return base_url


@pytest.fixture(scope="session", autouse=True)
def _clean_artifacts() -> None:
    """Start each session with an empty artifacts folder so stale screenshots mislead no one."""
    if ARTIFACTS.is_dir():
        shutil.rmtree(ARTIFACTS)
