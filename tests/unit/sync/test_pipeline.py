"""Concurrent commits: several transactions in flight, pages still recorded in order."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import responses

from rejection_fhir.errors import ServerUnavailableError
from rejection_fhir.settings import load_settings
from rejection_fhir.sync.run import SyncOptions, sync, transaction_bundle
from rejection_fhir.sync.state import SyncState
from rejection_fhir.worksheet.catalog import catalog_from_build

BASE = "http://127.0.0.1:9999/fhir"
DATA = Path(__file__).parents[2] / "data"
JSON = {"Content-Type": "application/fhir+json"}


def _response(template: dict, rid: str, minute: int, version: str = "1") -> dict:
    qr = copy.deepcopy(template)
    qr["id"] = rid
    qr["meta"] = {"versionId": version, "lastUpdated": f"2026-11-20T10:{minute:02d}:00Z"}
    return qr


def _sent_ids(bundle: dict) -> list[str]:
    """The response ids a transaction writes for (from each note's context)."""
    return [
        e["resource"]["context"]["related"][0]["reference"].split("/")[1]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DocumentReference" and e["request"]["method"] == "POST"
    ]


class PagedServer:
    """Serves fixed pages of responses through next links; transactions by callback."""

    def __init__(self, rsps: responses.RequestsMock, pages: list[list[dict]]) -> None:
        self.pages = pages
        self.lock = threading.Lock()
        self.bundles: list[dict] = []
        self.next_id = 0
        self.hold: dict[str, threading.Event] = {}  # response id -> released when set
        self.fail: set[str] = set()  # a transaction holding one of these answers 500
        self.arrived: Callable[[list[str]], None] = lambda ids: None
        self.committed: Callable[[list[str]], None] = lambda ids: None
        rsps.get(
            f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
        )
        rsps.add_callback(responses.GET, f"{BASE}/QuestionnaireResponse", callback=self.search)
        rsps.add_callback(responses.POST, BASE, callback=self.transaction)
        rsps.add_callback(
            responses.GET,
            re.compile(rf"{re.escape(BASE)}/DocumentReference/\d+"),
            callback=self.note,
        )

    @property
    def sent(self) -> list[list[str]]:
        return [_sent_ids(b) for b in self.bundles]

    def note(self, request):
        rid = request.url.rsplit("/", 1)[1]
        body = {"resourceType": "DocumentReference", "id": rid, "status": "current"}
        return 200, JSON, json.dumps(body)

    def search(self, request):
        n = int(request.params.get("page", "0"))
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": qr, "search": {"mode": "match"}} for qr in self.pages[n]],
        }
        if n + 1 < len(self.pages):
            bundle["link"] = [
                {"relation": "next", "url": f"{BASE}/QuestionnaireResponse?page={n + 1}"}
            ]
        return 200, JSON, json.dumps(bundle)

    def transaction(self, request):
        bundle = json.loads(request.body)
        ids = _sent_ids(bundle)
        with self.lock:
            self.bundles.append(bundle)
        self.arrived(ids)
        for rid in ids:
            if rid in self.hold:
                assert self.hold[rid].wait(10), "held transaction was never released"
        if self.fail & set(ids):
            return 500, JSON, json.dumps({"resourceType": "OperationOutcome", "issue": []})
        out = []
        with self.lock:
            for entry in bundle["entry"]:
                self.next_id += 1
                rtype = entry["resource"]["resourceType"]
                out.append(
                    {
                        "response": {
                            "status": "201 Created",
                            "location": f"{rtype}/{self.next_id}/_history/1",
                        }
                    }
                )
        body = {"resourceType": "Bundle", "type": "transaction-response", "entry": out}
        self.committed(ids)
        return 200, JSON, json.dumps(body)


@pytest.fixture
def qr():
    return json.loads((DATA / "qr-rejection-log.json").read_text())


def _run(tmp_path, built, **kw):
    settings = load_settings({"server": BASE, "retries": "0"}, env={})
    options = SyncOptions(source=BASE, state_path=tmp_path / "state.sqlite3", batch_size=2, **kw)
    return sync(settings, options, catalog_from_build(built), recorded="2026-11-26T12:00:00Z")


def _pages(qr, sizes):
    pages, minute = [], 0
    for size in sizes:
        page = []
        for _ in range(size):
            page.append(_response(qr, f"r{minute}", minute))
            minute += 1
        pages.append(page)
    return pages


@responses.activate
def test_a_slow_transaction_does_not_hold_back_the_next(tmp_path, built, qr):
    server = PagedServer(responses.mock, _pages(qr, [2, 2, 2, 2]))
    # Page 2's commit waits until page 3's transaction has arrived: only possible with
    # two transactions in flight.
    released = threading.Event()
    server.hold = {"r2": released}
    server.arrived = lambda ids: released.set() if "r4" in ids else None
    report = _run(tmp_path, built, concurrency=3)
    assert report.ok and report.tally.written == 8
    assert report.cursor_after == "2026-11-20T10:07:00Z"
    assert server.sent[0] == ["r0", "r1"], "the first transaction goes alone"
    assert sorted(rid for ids in server.sent for rid in ids) == sorted(f"r{i}" for i in range(8))
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert {e.response_id for e in state.entries(outcome="written")} == {
            f"r{i}" for i in range(8)
        }
        assert state.cursor(BASE) == "2026-11-20T10:07:00Z"


@responses.activate
def test_a_failed_page_stops_the_cursor_though_a_later_one_committed(tmp_path, built, qr):
    server = PagedServer(responses.mock, _pages(qr, [2, 2, 2]))
    released = threading.Event()
    server.hold = {"r2": released}
    server.fail = {"r2"}
    # Page 3 commits first; only then does page 2 fail.
    server.committed = lambda ids: released.set() if "r4" in ids else None
    with pytest.raises(ServerUnavailableError):
        _run(tmp_path, built, concurrency=2)
    assert ["r4", "r5"] in server.sent, "page 3 was sent while page 2 was in flight"
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.cursor(BASE) == "2026-11-20T10:01:00Z", "the cursor stays after page 1"
        assert {e.response_id for e in state.entries()} == {"r0", "r1"}

    server.fail = set()
    server.hold = {}
    again = _run(tmp_path, built, concurrency=2)
    assert again.ok and again.tally.written == 4, "pages 2 and 3 replayed (conditional writes)"
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.cursor(BASE) == "2026-11-20T10:05:00Z"


@responses.activate
def test_an_amendment_waits_for_its_earlier_version_to_be_recorded(tmp_path, built, qr):
    # A server whose pages are not a snapshot can show an amended response again later.
    pages = _pages(qr, [2, 2])
    amended = _response(qr, "r2", 9, version="2")
    amended["status"] = "amended"
    pages.append([amended])
    server = PagedServer(responses.mock, pages)
    report = _run(tmp_path, built, concurrency=3)
    assert report.ok and report.tally.written == 5
    assert server.sent[-1] == ["r2"]
    superseded = [
        e["resource"]
        for e in server.bundles[-1]["entry"]
        if e["request"]["method"] == "PUT" and e["resource"]["resourceType"] == "DocumentReference"
    ]
    assert [n["status"] for n in superseded] == ["superseded"], "the earlier note is replaced"
    with SyncState(tmp_path / "state.sqlite3") as state:
        versions = {(e.response_id, e.response_version) for e in state.entries()}
        assert ("r2", "1") in versions and ("r2", "2") in versions


@responses.activate
def test_dry_run_shows_each_bundle_it_would_post(tmp_path, built, qr):
    PagedServer(responses.mock, _pages(qr, [2, 1]))
    seen: list[dict] = []
    settings = load_settings({"server": BASE}, env={})
    options = SyncOptions(
        source=BASE, state_path=tmp_path / "s2.sqlite3", batch_size=2, dry_run=True
    )
    report = sync(settings, options, catalog_from_build(built), on_transaction=seen.append)
    assert report.tally.written == 3
    assert [_sent_ids(b) for b in seen] == [["r0", "r1"], ["r2"]]
    devices = [e for e in seen[0]["entry"] if e["resource"]["resourceType"] == "Device"]
    assert len(devices) == 1


def test_transaction_bundle_sends_shared_entries_once():
    from rejection_fhir.ehr.writeback import WritePlan

    device = {"fullUrl": "urn:uuid:d", "resource": {"resourceType": "Device"}, "request": {}}
    one = WritePlan(
        [device, {"fullUrl": "urn:uuid:a", "resource": {}, "request": {}}], ["urn:uuid:a"]
    )
    two = WritePlan(
        [device, {"fullUrl": "urn:uuid:b", "resource": {}, "request": {}}], ["urn:uuid:b"]
    )
    bundle, position = transaction_bundle([one, two])
    assert [e["fullUrl"] for e in bundle["entry"]] == ["urn:uuid:d", "urn:uuid:a", "urn:uuid:b"]
    assert position == {"urn:uuid:d": 0, "urn:uuid:a": 1, "urn:uuid:b": 2}
