"""Tokens, passwords and clients' answers never reach logs, errors or -vv output.

publish, sync and summarize run in-process with -vv (DEBUG) against ``responses`` fakes with
a distinctive token, basic password and distinctive answers.  The fake servers are hostile
on purpose: their error bodies echo the request (answers included), the Authorization
header and the token in diagnostics, as some servers and proxies do.  Everything printed and
logged is scanned.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import responses

from rejection_fhir.cli import main
from rejection_fhir.errors import ExitCode
from tests.conftest import QUESTIONNAIRES

BASE = "https://ehr.leak.test/fhir"
TOKEN = "tok-LEAKCHECK-7c2e91aa"
USER, PASSWORD = "sync-user", "pw-LEAKCHECK-b3d04f"
ANSWERS = ["ANSWER-LEAKCHECK-first-4d2", "ANSWER-LEAKCHECK-other-9e1"]
DATA = Path(__file__).parents[2] / "data"


def _secrets() -> list[str]:
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return [TOKEN, PASSWORD, basic, *ANSWERS]


@dataclass
class Output:
    code: int
    out: str
    err: str
    log: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    def invoke(*args: str) -> Output:
        caplog.set_level(logging.DEBUG)  # what -vv turns on
        caplog.clear()
        code: Any = 0
        try:
            main(["-vv", *args])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return Output(int(code or 0), out, err, caplog.text)

    return invoke


def assert_no_secret(result: Output, *, answers_in_stdout: bool = False) -> None:
    scanned = {"stderr": result.err, "log": result.log}
    if not answers_in_stdout:
        scanned["stdout"] = result.out
    for where, text in scanned.items():
        for secret in _secrets():
            assert secret not in text, f"{secret!r} in {where}:\n{text[-3000:]}"
    for secret in (TOKEN, PASSWORD):
        assert secret not in result.out, f"{secret!r} in stdout"
    assert "Traceback" not in result.err + result.log


def _response(rid: str, updated: str) -> dict[str, Any]:
    qr = json.loads((DATA / "qr-rejection-log.json").read_text())
    qr["id"] = rid
    qr["meta"] = {"versionId": "1", "lastUpdated": updated}
    qr["item"][0]["answer"] = [{"valueString": ANSWERS[0]}]
    qr["item"][4]["item"][1]["answer"] = [{"valueString": ANSWERS[1]}]
    return qr


class Hostile:
    """A FHIR server whose errors echo what it was sent, credentials included."""

    def __init__(self, mock: responses.RequestsMock, write_status: int, read_status: int = 200):
        self.write_status = write_status
        self.read_status = read_status
        self.writes = 0
        mock.add_callback(responses.GET, f"{BASE}/metadata", callback=self.metadata)
        mock.add_callback(responses.GET, f"{BASE}/QuestionnaireResponse", callback=self.search)
        mock.add_callback(responses.GET, f"{BASE}/Questionnaire", callback=self.empty)
        mock.add_callback(responses.GET, re.compile(f"{re.escape(BASE)}/.*"), callback=self.empty)
        mock.add_callback(responses.POST, BASE, callback=self.write)
        mock.add_callback(responses.POST, re.compile(f"{re.escape(BASE)}/.*"), callback=self.write)

    @staticmethod
    def _echo(request: Any, status: int) -> tuple[int, dict[str, str], str]:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        echoed = f"{request.headers.get('Authorization')} {body}"
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "invalid",
                    "diagnostics": f"rejected: {echoed}",
                    "details": {"text": echoed},
                    "expression": ["Bundle.entry[0]"],
                }
            ],
        }
        headers = {
            "Content-Type": "application/fhir+json",
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{echoed[:300]}"',
            "Retry-After": "0",
        }
        return status, headers, json.dumps(outcome)

    def metadata(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.read_status != 200:
            return self._echo(request, self.read_status)
        body = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(body)

    def search(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.read_status != 200:
            return self._echo(request, self.read_status)
        qrs = [_response("a", "2026-11-20T10:00:00Z"), _response("b", "2026-11-20T11:00:00Z")]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": q, "search": {"mode": "match"}} for q in qrs],
        }
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)

    def empty(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.read_status != 200:
            return self._echo(request, self.read_status)
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)

    def write(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.writes += 1
        if self.write_status != 200:
            return self._echo(request, self.write_status)
        sent = json.loads(request.body)
        entries = [
            {"response": {"status": "201 Created", "location": f"X/{i}/_history/1"}}
            for i, _ in enumerate(sent.get("entry") or [])
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)


CREDENTIALS = {
    "bearer": {"RFHIR_TOKEN": TOKEN},
    "basic": {"RFHIR_BASIC_USER": USER, "RFHIR_BASIC_PASSWORD": PASSWORD},
}


@pytest.fixture(params=sorted(CREDENTIALS))
def credentials(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("RFHIR_TOKEN", "RFHIR_TOKEN_FILE", "RFHIR_BASIC_USER", "RFHIR_BASIC_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS[request.param].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RFHIR_SERVER", BASE)
    return str(request.param)


@pytest.mark.parametrize(
    ("write_status", "read_status", "code"),
    [
        (200, 200, ExitCode.OK),
        (422, 200, ExitCode.SERVER_REFUSED),  # the refusal quotes the answers back
        (500, 200, ExitCode.SERVER_REFUSED),  # so does the error page, then again on retry
        (401, 200, ExitCode.SERVER_REFUSED),  # and the 401 quotes the Authorization header
        (200, 401, ExitCode.AUTH),
        (200, 403, ExitCode.AUTH),
    ],
)
def test_sync_leaks_nothing(
    credentials: str,
    run: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_status: int,
    read_status: int,
    code: int,
) -> None:
    monkeypatch.setenv("RFHIR_RETRY_BUDGET", "1")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        server = Hostile(mock, write_status, read_status)
        result = run(
            "sync",
            "--state",
            str(tmp_path / "state.sqlite3"),
            "--worksheets",
            str(QUESTIONNAIRES),
            "--since",
            "2026-11-01T00:00:00Z",
        )
    if read_status == 200:
        assert server.writes >= 1  # the answers were sent, so they could have been echoed
    assert result.code in (code, ExitCode.AUTH, ExitCode.SERVER_UNAVAILABLE), result.err
    assert_no_secret(result)


@pytest.mark.parametrize("status", [200, 401, 412, 500])
def test_publish_leaks_nothing(
    credentials: str, run: Any, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    monkeypatch.setenv("RFHIR_RETRY_BUDGET", "1")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        Hostile(mock, status)
        result = run("publish", "--worksheets", str(QUESTIONNAIRES))
    assert_no_secret(result)
    if status != 200:
        assert result.code != ExitCode.OK and result.err.count("error:") == 1


def test_summarize_leaks_nothing_but_prints_the_summary(
    credentials: str, run: Any, tmp_path: Path
) -> None:
    path = tmp_path / "responses.ndjson"
    good = _response("a", "2026-11-20T10:00:00Z")
    broken = copy.deepcopy(good)
    broken["item"][0]["answer"] = [{"valueString": ["not", "text", ANSWERS[0]]}]
    path.write_text(json.dumps(good) + "\n" + json.dumps(broken) + "\n" + "{" + ANSWERS[1] + "\n")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        Hostile(mock, 200, read_status=401)
        result = run("summarize", "--fetch-questionnaires", str(path))
    assert ANSWERS[0] in result.out  # the summary is for the clinician and shows the answer
    assert_no_secret(result, answers_in_stdout=True)
    assert result.code == ExitCode.INPUT  # the unreadable line is named, not quoted
