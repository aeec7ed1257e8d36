"""Concurrent commits: several transactions in flight, pages still recorded in order."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from rejection_fhir.errors import ServerUnavailableError
from rejection_fhir.settings import load_settings
from rejection_fhir.sync.run import SyncOptions, sync, transaction_bundle
from rejection_fhir.sync.state import SyncState
from rejection_fhir.worksheet.catalog import catalog_from_build
from tests.fakefhir import BASE, FakeFhir, Seen


def _sent_ids(bundle: dict) -> list[str]:
    """The response ids a transaction writes for (from each note's context)."""
    return [
        e["resource"]["context"]["related"][0]["reference"].split("/")[1]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "DocumentReference" and e["request"]["method"] == "POST"
    ]


def _in(seen: Seen, rid: str) -> bool:
    """Whether ``seen`` is a transaction writing for response ``rid``."""
    return seen.method == "POST" and not seen.path and rid in _sent_ids(seen.body)


def _hold(fake: FakeFhir, rid: str, released_by: Callable[[Seen], bool], why: str) -> None:
    """Hold the transaction writing for ``rid`` until a request ``released_by`` takes has
    arrived (fails with ``why`` after 10 s)."""
    released = threading.Event()

    def arrival(seen: Seen) -> None:
        if released_by(seen):
            released.set()
        if _in(seen, rid):
            assert released.wait(10), why

    fake.on_arrival = arrival


def _sent(fake: FakeFhir) -> list[list[str]]:
    return [_sent_ids(b) for b in fake.posted]


def _run(tmp_path, built, **kw):
    settings = load_settings({"server": BASE, "retries": "0"}, env={})
    options = SyncOptions(source=BASE, state_path=tmp_path / "state.sqlite3", batch_size=2, **kw)
    return sync(settings, options, catalog_from_build(built), recorded="2026-11-26T12:00:00Z")


def _at(minute: int) -> str:
    return f"2026-11-20T10:{minute:02d}:00Z"


def _responses(qr_at, count):
    """Responses r0, r1, ... last updated a minute apart; the sync reads them in pages of
    two (its batch size)."""
    return [qr_at(f"r{minute}", _at(minute)) for minute in range(count)]


def test_a_slow_transaction_does_not_hold_back_the_next(tmp_path, built, qr_at, fake_fhir):
    fake_fhir.add(*_responses(qr_at, 8))
    # Page 2's commit waits until page 3's transaction has arrived: only possible with
    # two transactions in flight.
    _hold(fake_fhir, "r2", lambda seen: _in(seen, "r4"), "held transaction was never released")
    report = _run(tmp_path, built, concurrency=3)
    assert report.ok and report.tally.written == 8
    assert report.cursor_after == "2026-11-20T10:07:00Z"
    sent = _sent(fake_fhir)
    # The first response goes alone (it creates the tool's Device), then the rest of
    # its page, before any other transaction is sent.
    assert sent[:2] == [["r0"], ["r1"]]
    assert sorted(rid for ids in sent for rid in ids) == sorted(f"r{i}" for i in range(8))
    assert len(fake_fhir.all("DocumentReference")) == 8
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert {e.response_id for e in state.entries(outcome="written")} == {
            f"r{i}" for i in range(8)
        }
        assert state.cursor(BASE) == "2026-11-20T10:07:00Z"


def test_a_failed_page_stops_the_cursor_though_a_later_one_committed(
    tmp_path, built, qr_at, fake_fhir
):
    fake_fhir.add(*_responses(qr_at, 6))
    released = threading.Event()

    def arrival(seen: Seen) -> None:
        if _in(seen, "r2"):
            assert released.wait(10), "held transaction was never released"

    # Page 3 commits first; only then does page 2 fail.
    fake_fhir.on_arrival = arrival
    fake_fhir.on_commit = lambda seen: released.set() if _in(seen, "r4") else None
    fake_fhir.fail(500, when=lambda seen: _in(seen, "r2"))
    with pytest.raises(ServerUnavailableError):
        _run(tmp_path, built, concurrency=2)
    assert ["r4", "r5"] in _sent(fake_fhir), "page 3 was sent while page 2 was in flight"
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.cursor(BASE) == "2026-11-20T10:01:00Z", "the cursor stays after page 1"
        assert {e.response_id for e in state.entries()} == {"r0", "r1"}

    fake_fhir.clear_faults()
    fake_fhir.on_arrival = lambda seen: None
    again = _run(tmp_path, built, concurrency=2)
    assert again.ok and again.tally.written == 4, "pages 2 and 3 replayed (conditional writes)"
    assert len(fake_fhir.all("DocumentReference")) == 6, "page 3's notes were not made twice"
    with SyncState(tmp_path / "state.sqlite3") as state:
        assert state.cursor(BASE) == "2026-11-20T10:05:00Z"


def test_an_amendment_waits_for_its_earlier_version_to_be_recorded(
    tmp_path, built, qr_at, fake_fhir
):
    # A server whose pages are not a snapshot can show an amended response again later:
    # r2 is amended while the sync reads the pages, before it asks for the third.
    fake_fhir.add(*_responses(qr_at, 4))
    fake_fhir.next_when_full = True
    amended = qr_at("r2", _at(9), version="2", status="amended")

    def arrival(seen: Seen) -> None:
        if seen.params.get("_getpagesoffset") == ["4"]:
            fake_fhir.add(amended)

    fake_fhir.on_arrival = arrival
    report = _run(tmp_path, built, concurrency=3)
    assert report.ok and report.tally.written == 5
    assert _sent(fake_fhir)[-1] == ["r2"]
    superseded = [
        e["resource"]
        for e in fake_fhir.posted[-1]["entry"]
        if e["request"]["method"] == "PUT" and e["resource"]["resourceType"] == "DocumentReference"
    ]
    assert [n["status"] for n in superseded] == ["superseded"], "the earlier note is replaced"
    with SyncState(tmp_path / "state.sqlite3") as state:
        versions = {(e.response_id, e.response_version) for e in state.entries()}
        assert ("r2", "1") in versions and ("r2", "2") in versions


def test_dry_run_shows_each_bundle_it_would_post(tmp_path, built, qr_at, fake_fhir):
    fake_fhir.add(*_responses(qr_at, 3))
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
    assert fake_fhir.writes() == []


def test_transaction_bundle_sends_shared_entries_once():
    from rejection_fhir.ehr.entries import WritePlan

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


def test_single_requests_share_one_pool_of_threads_across_pages(tmp_path, built, qr_at, fake_fhir):
    # Ledger-only (plain creates): every page (20 here) used to start threads of its own.
    fake_fhir.add(*_responses(qr_at, 40))
    senders: set[threading.Thread] = set()  # the objects: an ident may be reused
    fake_fhir.on_arrival = lambda seen: senders.add(threading.current_thread())
    report = _run(tmp_path, built, concurrency=2, write_mode="ledger-only")
    assert report.ok and report.tally.written == 40
    writers = {t for t in senders if t.name.startswith("rfhir-write")}
    assert 1 <= len(writers) <= 8, sorted(t.name for t in writers)
    assert not any(t.is_alive() for t in writers), "the run ends its threads"


def test_the_next_page_is_read_while_earlier_pages_commit(tmp_path, built, qr_at, fake_fhir):
    fake_fhir.add(*_responses(qr_at, 10))
    # Page 2's transaction (r2, r3) is held until the search for page 5 has arrived.  With
    # two pages in flight, pages 2 and 3 are sent and the run waits for page 2 before it
    # sends page 4: page 5 can only be asked for by reading ahead while the run waits.
    _hold(
        fake_fhir,
        "r2",
        lambda seen: seen.method == "GET" and seen.params.get("_getpagesoffset") == ["8"],
        "page 5 was not read while page 2 committed",
    )
    report = _run(tmp_path, built, concurrency=2)
    assert report.ok and report.tally.written == 10


@pytest.mark.parametrize("mode", ["transaction", "conditional", "ledger-only"])
def test_writes_ask_for_ids_only_and_work_from_the_location(
    tmp_path, built, qr_at, fake_fhir, mode
):
    # The server need not send back (and we need not parse) what we just sent.
    fake_fhir.add(*_responses(qr_at, 3))
    report = _run(tmp_path, built, concurrency=2, write_mode=mode)
    assert report.ok and report.tally.written == 3
    writes = fake_fhir.writes("POST") + fake_fhir.writes("PUT")
    assert writes and all(w.headers.get("Prefer") == "return=minimal" for w in writes)
    provenances = fake_fhir.all("Provenance")
    notes = {f"DocumentReference/{n['id']}" for n in fake_fhir.all("DocumentReference")}
    assert len(provenances) == 3
    assert all(p["target"][0]["reference"] in notes for p in provenances), (
        "later writes name what the earlier answers located"
    )
