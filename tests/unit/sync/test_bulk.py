"""Bulk Data export as the sync's source: kick-off, polling, streamed NDJSON, the cursor."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import responses

from rejection_fhir.errors import FhirServerError, ServerUnavailableError
from rejection_fhir.fhir.auth import BearerAuth, Secret
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.settings import load_settings
from rejection_fhir.sync.bulk import (
    export_since,
    iter_ndjson,
    kick_off,
    wait_for_export,
)
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.sync.state import SyncState, window_shard
from rejection_fhir.worksheet.catalog import catalog_from_build
from tests.fakefhir import FakeFhir

BASE = "http://127.0.0.1:9999/fhir"
STATUS_PATH = "$export-poll-status"
STATUS = f"{BASE}/{STATUS_PATH}?_jobId=42"
FILE = f"{BASE}/Binary/out-1"
DATA = Path(__file__).parents[2] / "data"
JSON = {"Content-Type": "application/fhir+json"}
NDJSON = {"Content-Type": "application/fhir+ndjson"}
NOW = "2026-11-26T10:00:00.000+00:00"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def _manifest(outputs=(FILE,), errors=()):
    return {
        "transactionTime": NOW,
        "request": f"{BASE}/$export?_type=QuestionnaireResponse",
        "requiresAccessToken": True,
        "output": [{"type": "QuestionnaireResponse", "url": u} for u in outputs],
        "error": [{"type": "OperationOutcome", "url": u} for u in errors],
    }


def _client(**kw) -> FhirClient:
    return FhirClient(BASE, sleep=lambda s: None, **kw)


def _ndjson(resources) -> str:
    return "".join(json.dumps(r) + "\n" for r in resources)


@responses.activate
def test_kick_off_asks_for_an_async_export_of_responses_since_the_cursor():
    responses.get(f"{BASE}/$export", status=202, headers={"Content-Location": STATUS})
    assert kick_off(_client(), "2026-11-20T10:00:00Z") == STATUS
    sent = responses.calls[0].request
    assert sent.headers["Prefer"] == "respond-async"
    assert sent.params["_type"] == "QuestionnaireResponse"
    assert sent.params["_since"] == "2026-11-20T09:59:59.000+00:00", (
        "a second early: _since is exclusive"
    )


@responses.activate
def test_a_server_without_export_gets_a_hint_to_sync_without_bulk():
    responses.get(f"{BASE}/$export", status=404, json={"resourceType": "OperationOutcome"})
    with pytest.raises(FhirServerError) as caught:
        kick_off(_client(), None)
    assert "without --bulk" in str(caught.value)
    assert "_since" not in responses.calls[0].request.params


@responses.activate
def test_kick_off_without_a_status_url_is_an_error():
    responses.get(f"{BASE}/$export", status=202)
    with pytest.raises(FhirServerError, match="Content-Location"):
        kick_off(_client(), None)


@responses.activate
def test_polling_backs_off_and_treats_retry_after_as_an_upper_bound():
    for retry_after in ("120", "120", "1"):
        responses.get(
            STATUS,
            status=202,
            headers={"Retry-After": retry_after, "X-Progress": "IN_PROGRESS"},
        )
    responses.get(STATUS, json=_manifest())
    clock = Clock()
    manifest = wait_for_export(_client(), STATUS, sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [0.5, 1.0, 1.0]
    assert manifest.transaction_time == NOW and manifest.outputs == (FILE,)


@responses.activate
def test_an_export_that_never_finishes_gives_up_at_the_deadline():
    responses.get(STATUS, status=202, headers={"X-Progress": "still going"})
    clock = Clock()
    with pytest.raises(ServerUnavailableError, match="did not finish within 60 s"):
        wait_for_export(_client(), STATUS, timeout=60, sleep=clock.sleep, clock=clock)
    assert sum(clock.sleeps) <= 60


@responses.activate
def test_export_failure_is_raised_with_the_servers_outcome():
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": "job failed"}],
    }
    responses.get(STATUS, status=400, json=outcome)
    with pytest.raises(FhirServerError) as caught:
        wait_for_export(_client(), STATUS, sleep=lambda s: None)
    assert caught.value.status == 400


@responses.activate
def test_ndjson_is_read_line_by_line_skipping_blank_lines():
    body = '{"resourceType":"QuestionnaireResponse","id":"a"}\n\n{"resourceType":"QuestionnaireResponse","id":"b"}'
    responses.get(FILE, body=body, content_type="application/fhir+ndjson")
    assert [r["id"] for r in iter_ndjson(_client(), FILE)] == ["a", "b"]
    assert responses.calls[0].request.headers["Accept"] == "application/fhir+ndjson"


@responses.activate
def test_a_broken_line_names_its_number_and_not_its_content():
    body = '{"resourceType":"QuestionnaireResponse","id":"a"}\n{"item": "I feel awful' + "\n"
    responses.get(FILE, body=body)
    read = iter_ndjson(_client(), FILE)
    assert next(read)["id"] == "a"
    with pytest.raises(FhirServerError) as caught:
        next(read)
    assert "line 2" in str(caught.value) and "awful" not in str(caught.value)


@responses.activate
def test_credentials_never_leave_the_servers_origin():
    token = BearerAuth(Secret("s3cret"))
    elsewhere = "https://files.example.org/export/1.ndjson?signature=abc"
    with pytest.raises(FhirServerError, match="refusing to send credentials"):
        list(iter_ndjson(_client(auth=token), elsewhere, requires_access_token=True))
    assert not responses.calls
    responses.get(elsewhere, body='{"resourceType":"QuestionnaireResponse","id":"x"}\n')
    got = list(iter_ndjson(_client(auth=token), elsewhere, requires_access_token=False))
    assert [r["id"] for r in got] == ["x"]
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_a_file_that_keeps_failing_is_reported_without_its_query():
    responses.get(FILE + "?token=abc", status=503)
    client = _client()
    with pytest.raises(ServerUnavailableError) as caught:
        list(iter_ndjson(client, FILE + "?token=abc", sleep=lambda s: None))
    assert "token" not in str(caught.value)
    assert len(responses.calls) == client.retry.retries + 1


def test_export_since_is_a_second_before_the_cursor():
    assert export_since("2026-11-20T10:00:00Z") == "2026-11-20T09:59:59.000+00:00"
    assert export_since("2026-11-20T10:00:00.250+01:00") == "2026-11-20T09:59:59.250+01:00"
    assert export_since("not a date") == "not a date"


# --------------------------------------------------------------------------- the sync


def _responses_on_server():
    qr = json.loads((DATA / "qr-rejection-log.json").read_text())
    out = []
    for n in range(5):
        copied = copy.deepcopy(qr)
        copied["id"] = f"r{n}"
        copied["meta"] = {"versionId": "1", "lastUpdated": f"2026-11-25T1{n}:00:00.000+00:00"}
        out.append(copied)
    return out


def _export(fake: FakeFhir, manifest: dict, files: dict[str, str]) -> None:
    """The server's side of an export: kick-off, one "in progress" poll, the manifest, the
    files, and the DELETE that ends it; transactions are the fake's own."""
    fake.route("GET", "$export", (202, {"Content-Location": STATUS}, ""))
    fake.route(
        "GET", STATUS_PATH, (202, {"Retry-After": "0"}, ""), (200, JSON, json.dumps(manifest))
    )
    fake.route("DELETE", STATUS_PATH, (202, {}, ""))
    for url, text in files.items():
        fake.route("GET", url.removeprefix(f"{BASE}/"), (200, NDJSON, text))


def _deleted(fake: FakeFhir) -> int:
    return sum(1 for seen in fake.requests if seen.method == "DELETE")


def _sync(tmp_path, built, **kw):
    settings = load_settings({"server": BASE}, env={})
    options = SyncOptions(
        source=BASE, state_path=tmp_path / "state.sqlite3", bulk=True, batch_size=2, **kw
    )
    return sync(settings, options, catalog_from_build(built), recorded="2026-11-26T12:00:00Z")


def test_bulk_sync_writes_every_exported_response_and_moves_the_cursor_once(
    tmp_path, built, fake_fhir
):
    qrs = _responses_on_server()
    other = {"resourceType": "Patient", "id": "p"}  # servers may add what was not asked for
    _export(
        fake_fhir,
        _manifest(outputs=(FILE, FILE + "-2")),
        {FILE: _ndjson([qrs[3], qrs[0], other, qrs[4]]), FILE + "-2": _ndjson(qrs[1:3])},
    )
    report = _sync(tmp_path, built, concurrency=2)
    assert report.ok and report.tally.written == 5 and report.tally.fetched == 5
    # Batches of two, across the files; the very first response goes alone (it creates
    # the tool's Device before two transactions can be in flight).
    assert len(fake_fhir.committed) == 4
    assert len(fake_fhir.all("DocumentReference")) == 5
    assert report.cursor_after == NOW
    assert _deleted(fake_fhir) == 1, "the export is deleted once read"
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.cursor(BASE) == NOW
        assert {e.response_id for e in state.entries(outcome="written")} == {
            f"r{n}" for n in range(5)
        }


def test_an_export_with_errors_keeps_the_cursor(tmp_path, built, fake_fhir):
    qrs = _responses_on_server()
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "exception",
                "diagnostics": "QuestionnaireResponse/r9 unreadable",
            }
        ],
    }
    _export(
        fake_fhir,
        _manifest(outputs=(FILE,), errors=(f"{BASE}/Binary/err",)),
        {FILE: _ndjson(qrs[:2]), f"{BASE}/Binary/err": _ndjson([outcome])},
    )
    report = _sync(tmp_path, built)
    assert report.tally.written == 2 and not report.ok
    assert report.failed[0].response == "$export" and "r9" not in report.failed[0].message
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.cursor(BASE) is None, "a rerun asks for the export again"
        assert len(state.entries(outcome="written")) == 2


def test_bulk_dry_run_moves_no_cursor(tmp_path, built, fake_fhir):
    qrs = _responses_on_server()
    _export(fake_fhir, _manifest(), {FILE: _ndjson(qrs)})
    report = _sync(tmp_path, built, dry_run=True)
    assert report.tally.written == 5 and fake_fhir.committed == []
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.cursor(BASE) is None


def test_a_bulk_window_asks_for_its_end_keeps_its_share_and_caps_its_cursor(
    tmp_path, built, fake_fhir
):
    qrs = _responses_on_server()  # last updated 10:00 to 14:00
    _export(fake_fhir, _manifest(), {FILE: _ndjson(qrs)})  # a server ignoring _typeFilter
    until = "2026-11-25T12:00:00Z"
    report = _sync(tmp_path, built, since="2026-11-25T00:00:00Z", until=until)
    kick = next(seen for seen in fake_fhir.requests if seen.path == "$export")
    assert kick.params["_typeFilter"] == [f"QuestionnaireResponse?_lastUpdated=lt{until}"]
    assert report.tally.fetched == 2 and report.tally.written == 2  # r0, r1: before 12:00
    assert report.cursor_after == until  # capped: the export's transactionTime is later
    with SyncState(
        tmp_path / "state.sqlite3", shard=window_shard("2026-11-25T00:00:00Z", until)
    ) as state:
        assert state.cursor(BASE) == until
