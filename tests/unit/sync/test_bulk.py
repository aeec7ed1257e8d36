"""Bulk Data export as the sync's source: kick-off, polling, streamed NDJSON, the cursor."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import responses

from rejection_fhir.errors import ConfigError, ExitCode, FhirServerError, ServerUnavailableError
from rejection_fhir.fhir.auth import BearerAuth, Secret
from rejection_fhir.fhir.capabilities import parse_capability_statement
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.settings import load_settings
from rejection_fhir.sync.bulk import (
    ExportLevel,
    choose_export_level,
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


def _export(fake: FakeFhir, manifest: dict, files: dict[str, str], kick: str = "$export") -> None:
    """The server's side of an export: kick-off (at ``kick``), one "in progress" poll, the
    manifest, the files, and the DELETE that ends it; transactions are the fake's own."""
    fake.route("GET", kick, (202, {"Content-Location": STATUS}, ""))
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


# --------------------------------------------------------------------------- the level


def _statement(levels: tuple[str, ...], *qr_params: str) -> dict:
    """A server that writes in transactions, finds responses by ``qr_params`` only, and
    offers ``$export`` at ``levels`` (Oracle Health: ``("Group",)``, ``patient``)."""

    def resource(kind: str, *interactions: str, params: tuple[str, ...] = ()) -> dict:
        entry: dict = {
            "type": kind,
            "interaction": [{"code": c} for c in interactions],
            "conditionalCreate": True,
            "searchParam": [{"name": p, "type": "token"} for p in params],
        }
        if kind in levels:
            entry["operation"] = [{"name": "export", "definition": f"{kind.lower()}-export"}]
        return entry

    rest: dict = {
        "mode": "server",
        "interaction": [{"code": "transaction"}],
        "resource": [
            resource("QuestionnaireResponse", "read", "search-type", params=qr_params),
            *(
                resource(k, "create", "update", "read", "search-type")
                for k in ("DocumentReference", "Observation", "Flag", "Provenance", "Device")
            ),
            resource("Patient", "read"),
            resource("Group", "read"),
        ],
    }
    if "system" in levels:
        rest["operation"] = [{"name": "export", "definition": "export"}]
    return {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": [rest]}


@pytest.mark.parametrize(
    ("levels", "group", "expected"),
    [
        (("system", "Patient", "Group"), None, "$export"),
        (("Patient", "Group"), None, "Patient/$export"),
        (("system", "Group"), "g1", "Group/g1/$export"),
        (("Group",), "g1", "Group/g1/$export"),
        ((), None, "$export"),  # the statement says nothing: the server decides
        ((), "g1", "Group/g1/$export"),
    ],
)
def test_the_export_level_follows_what_the_statement_offers(levels, group, expected):
    caps = parse_capability_statement(_statement(levels, "patient"))
    assert caps.has_export() == levels
    assert choose_export_level(caps, group).path == expected


def test_a_group_only_export_without_a_group_says_what_to_give():
    caps = parse_capability_statement(_statement(("Group",), "_id", "patient"))
    with pytest.raises(ConfigError) as caught:
        choose_export_level(caps, None)
    assert caught.value.exit_code == ExitCode.CONFIG
    hint = caught.value.hint or ""
    assert "--patients-group GROUP_ID" in hint
    assert "--patients FILE" in hint and "--patients-from ledger" in hint
    # No per-patient search either: the Group is the only way.
    only = parse_capability_statement(_statement(("Group",), "_id"))
    with pytest.raises(ConfigError) as caught:
        choose_export_level(only, None)
    assert "--patients FILE" not in (caught.value.hint or "")


def test_a_group_on_a_server_without_group_export_is_refused():
    caps = parse_capability_statement(_statement(("system",), "patient"))
    with pytest.raises(ConfigError, match="not for a Group") as caught:
        choose_export_level(caps, "g1")
    assert "drop --patients-group" in (caught.value.hint or "")


@responses.activate
@pytest.mark.parametrize(
    "level",
    [ExportLevel("system"), ExportLevel("Patient"), ExportLevel("Group", "clinic 7")],
    ids=["system", "Patient", "Group"],
)
def test_every_level_is_asked_for_responses_since_the_cursor(level):
    path = {"system": "$export", "Patient": "Patient/$export"}.get(
        level.level, "Group/clinic%207/$export"
    )
    responses.get(f"{BASE}/{path}", status=202, headers={"Content-Location": STATUS})
    until = "2026-11-21T00:00:00Z"
    assert kick_off(_client(), "2026-11-20T10:00:00Z", until, level) == STATUS
    sent = responses.calls[0].request
    assert sent.path_url.split("?")[0] == f"/fhir/{path}"
    assert sent.headers["Prefer"] == "respond-async"
    assert sent.params["_type"] == "QuestionnaireResponse"
    assert sent.params["_since"] == "2026-11-20T09:59:59.000+00:00"
    assert sent.params["_typeFilter"] == f"QuestionnaireResponse?_lastUpdated=lt{until}"


@responses.activate
def test_a_refused_group_export_names_the_level():
    responses.get(f"{BASE}/Group/g1/$export", status=405, json={"resourceType": "OperationOutcome"})
    with pytest.raises(FhirServerError, match="at Group/g1") as caught:
        kick_off(_client(), None, level=ExportLevel("Group", "g1"))
    assert "Group/g1/$export" in (caught.value.hint or "")


def _kicks(fake: FakeFhir) -> list[tuple[str, dict[str, list[str]]]]:
    return [(seen.path, seen.params) for seen in fake.requests if seen.path.endswith("$export")]


def test_bulk_sync_of_a_group_exports_that_group_and_resumes_from_transaction_time(
    tmp_path, built, fake_fhir
):
    fake_fhir.statement = _statement(("Group",), "_id", "patient")
    qrs = _responses_on_server()
    _export(fake_fhir, _manifest(), {FILE: _ndjson(qrs)}, kick="Group/g1/$export")
    report = _sync(tmp_path, built, patients_group="g1")
    assert report.ok and report.tally.written == 5
    assert report.cursor_after == NOW
    ((path, params),) = _kicks(fake_fhir)
    assert path == "Group/g1/$export" and "_since" not in params
    assert params["_type"] == ["QuestionnaireResponse"]
    assert not fake_fhir.searched("QuestionnaireResponse"), "no search: the export is the read"

    again = _sync(tmp_path, built, patients_group="g1")
    assert again.ok and again.tally.written == 0
    path, params = _kicks(fake_fhir)[-1]
    assert path == "Group/g1/$export"
    assert params["_since"] == ["2026-11-26T09:59:59.000+00:00"], "transactionTime, a second early"


def test_bulk_sync_without_a_group_on_a_group_only_server_reads_nothing(tmp_path, built, fake_fhir):
    fake_fhir.statement = _statement(("Group",), "_id", "patient")
    with pytest.raises(ConfigError, match="only for a Group") as caught:
        _sync(tmp_path, built)
    assert "--patients-group GROUP_ID" in (caught.value.hint or "")
    assert not _kicks(fake_fhir) and not fake_fhir.searched("QuestionnaireResponse")
    assert fake_fhir.committed == []


def test_bulk_sync_uses_patient_export_where_there_is_no_system_export(tmp_path, built, fake_fhir):
    fake_fhir.statement = _statement(("Patient", "Group"), "_id")
    _export(fake_fhir, _manifest(), {FILE: _ndjson(_responses_on_server())}, kick="Patient/$export")
    report = _sync(tmp_path, built)
    assert report.ok and report.tally.written == 5
    assert [path for path, _ in _kicks(fake_fhir)] == ["Patient/$export"]


# --------------------------------------------------------------------------- auto


def _auto(tmp_path, built, **kw):
    settings = load_settings({"server": BASE}, env={})
    options = SyncOptions(source=BASE, state_path=tmp_path / "state.sqlite3", batch_size=2, **kw)
    return sync(settings, options, catalog_from_build(built), recorded="2026-11-26T12:00:00Z")


def test_auto_with_a_group_on_a_group_only_server_exports_the_group(tmp_path, built, fake_fhir):
    fake_fhir.statement = _statement(("Group",), "_id", "patient")
    _export(
        fake_fhir, _manifest(), {FILE: _ndjson(_responses_on_server())}, kick="Group/g1/$export"
    )
    report = _auto(tmp_path, built, patients_group="g1")
    assert report.ok and report.tally.written == 5 and report.cursor_after == NOW
    assert [path for path, _ in _kicks(fake_fhir)] == ["Group/g1/$export"]
    assert not fake_fhir.searched("QuestionnaireResponse")
    assert not [seen for seen in fake_fhir.requests if seen.path == "Group/g1"], (
        "the export reads the Group's members, not the sync"
    )


def test_auto_without_a_group_on_a_group_only_server_never_sends_the_user_to_bulk(
    tmp_path, built, fake_fhir
):
    fake_fhir.statement = _statement(("Group",), "_id", "patient")
    with pytest.raises(ConfigError) as caught:
        _auto(tmp_path, built)
    hint = caught.value.hint or ""
    assert "--bulk" not in hint.replace("without --bulk", "")
    assert "--patients-group GROUP_ID" in hint and "--patients FILE" in hint
    assert not _kicks(fake_fhir) and not fake_fhir.searched("QuestionnaireResponse")


def test_auto_with_a_patient_list_on_a_group_only_server_reads_per_patient(
    tmp_path, built, fake_fhir
):
    fake_fhir.statement = _statement(("Group",), "_id", "patient")
    qrs = _responses_on_server()
    for qr in qrs:
        qr["subject"] = {"reference": "Patient/p1"}
    fake_fhir.add(*qrs[:2])
    listing = tmp_path / "patients.txt"
    listing.write_text("p1\n")
    report = _auto(tmp_path, built, patients_file=listing)
    assert report.ok and report.tally.written == 2
    assert [q["patient"] for q in fake_fhir.searched("QuestionnaireResponse")] == [["p1"]]
    assert not _kicks(fake_fhir)


def test_auto_on_a_system_export_server_sends_the_user_to_bulk_which_works(
    tmp_path, built, fake_fhir
):
    fake_fhir.statement = _statement(("system",), "_id")
    with pytest.raises(ConfigError) as caught:
        _auto(tmp_path, built)
    assert caught.value.hint == "run sync --bulk"
    _export(fake_fhir, _manifest(), {FILE: _ndjson(_responses_on_server())})
    report = _sync(tmp_path, built)
    assert report.ok and report.tally.written == 5


@pytest.mark.parametrize(
    "given", [{"patients_file": "file"}, {"patients_from": "ledger"}], ids=["file", "ledger"]
)
def test_a_patient_list_with_bulk_is_refused_not_ignored(tmp_path, built, fake_fhir, given):
    if "patients_file" in given:
        listed = tmp_path / "patients.txt"
        listed.write_text("p1\n", encoding="utf-8")
        given = {"patients_file": listed}
    with pytest.raises(ConfigError, match="do not narrow it") as caught:
        _sync(tmp_path, built, **given)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "--patients-group GROUP_ID" in (caught.value.hint or "")
    assert not _kicks(fake_fhir) and fake_fhir.committed == []
