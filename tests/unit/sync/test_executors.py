"""The write executors: one plan, sent as chunked transactions, batches or single requests,
against the in-memory server (tests/fakefhir.py) with its fault hooks (lost answers,
transient entry refusals)."""

from __future__ import annotations

import random
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from rejection_fhir.ehr.entries import ResponseVersion
from rejection_fhir.ehr.extract import ExtractedValue
from rejection_fhir.ehr.note import Note
from rejection_fhir.ehr.writeback import plan_writes
from rejection_fhir.errors import ExitCode, FhirServerError, ServerCannotError
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.sync.executors import WriteExecutor
from rejection_fhir.sync.modes import ExecMode, WriteSetup, _setup
from rejection_fhir.sync.staging import client_id, combined, resolve, stages
from rejection_fhir.sync.strategy import VersionCheck
from tests.fakefhir import BASE, FakeFhir, request_to

QR = {
    "resourceType": "QuestionnaireResponse",
    "id": "qr1",
    "status": "completed",
    "authored": "2026-11-20T10:00:00Z",
    "subject": {"reference": "Patient/p1"},
}
NOTE = Note("Log", "**x**", '<div xmlns="http://www.w3.org/1999/xhtml">x</div>')


def _value(n: int) -> ExtractedValue:
    return ExtractedValue(
        f"item{n}", {"system": "urn:test", "code": f"c{n}"}, f"item {n}", "valueInteger", n
    )


def _plan(rid: str = "qr1", values: int = 2, previous: dict[str, Any] | None = None) -> Any:
    ref = ResponseVersion(BASE, rid, "1")
    return plan_writes(
        {**QR, "id": rid},
        ref,
        NOTE,
        [_value(n) for n in range(values)],
        recorded="2026-11-26T12:00:00Z",
        previous_note=previous,
    )


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _client() -> FhirClient:
    return FhirClient(BASE, sleep=Sleeps(), rng=random.Random(1))


def _executor(mode: ExecMode, **kw: Any) -> WriteExecutor:
    return WriteExecutor(_client(), WriteSetup(mode, **kw), sleep=Sleeps())


NOTE_POST = request_to("POST", "DocumentReference")


def _bodies(fake: FakeFhir, method: str) -> list[dict[str, Any]]:
    return [seen.body for seen in fake.writes(method)]


def test_stages_put_provenance_after_what_it_names() -> None:
    plan = _plan()
    order = [[e["resource"]["resourceType"] for e in stage] for stage in stages(plan.entries)]
    assert order[-1] == ["Provenance"]
    assert "Provenance" not in order[0]
    assert len(order) == 2


def test_resolve_replaces_written_urns_and_drops_unwritten() -> None:
    value = {"who": {"reference": "urn:a", "display": "x"}, "t": [{"reference": "urn:b"}]}
    assert resolve(value, {"urn:b": "Note/1"}, {"urn:a"}) == {
        "who": {"display": "x"},
        "t": [{"reference": "Note/1"}],
    }


def test_transaction_without_limit_is_one_transaction(fake_fhir) -> None:
    plans = [_plan("a"), _plan("b")]
    done = _executor(ExecMode.TRANSACTION).execute(plans)
    assert len(fake_fhir.posted) == 1
    assert fake_fhir.posted[0]["type"] == "transaction"
    # the Device is sent once for both plans
    kinds = [e["resource"]["resourceType"] for e in fake_fhir.posted[0]["entry"]]
    assert kinds.count("Device") == 1
    assert [len(r.refs) for r in done.results] == [4, 4]


def test_transaction_is_chunked_under_the_servers_entry_limit(fake_fhir) -> None:
    plans = [_plan("a"), _plan("b"), _plan("c")]
    total = len(combined(plans))
    assert total > 8
    done = _executor(ExecMode.TRANSACTION, max_entries=3).execute(plans)
    assert all(len(b["entry"]) <= 3 for b in fake_fhir.posted)
    assert sum(len(b["entry"]) for b in fake_fhir.posted) == total
    assert all(b["type"] == "transaction" for b in fake_fhir.posted)
    # Provenance goes after what it names, with the urns replaced by the ids answered
    provenances = [
        e["resource"]
        for b in fake_fhir.posted
        for e in b["entry"]
        if e["resource"]["resourceType"] == "Provenance"
    ]
    assert len(provenances) == 3
    for provenance in provenances:
        targets = [t["reference"] for t in provenance["target"]]
        assert all(not t.startswith("urn:") for t in targets)
        assert provenance["agent"][0]["who"]["reference"].startswith("Device/")
    assert all(len(r.refs) == 4 for r in done.results)


@pytest.mark.parametrize(
    ("refuse", "committed"),
    [
        # The first chunk commits, the second is refused (400) as a whole.
        pytest.param(lambda fake: fake.fail_entries(201, 201, 201, 400), 1, id="second-chunk"),
        pytest.param(lambda fake: fake.fail(400, when=request_to("POST")), 0, id="first-chunk"),
    ],
)
def test_a_failed_chunk_raises_so_nothing_is_recorded(fake_fhir, refuse, committed) -> None:
    refuse(fake_fhir)
    with pytest.raises(FhirServerError):
        _executor(ExecMode.TRANSACTION, max_entries=3).execute([_plan("a"), _plan("b")])
    assert len(fake_fhir.posted) == committed + 1, "nothing sent after the refused chunk"
    assert len(fake_fhir.committed) == committed


def test_batch_sends_transiently_refused_entries_again(fake_fhir) -> None:
    # first batch: the second entry gets 429; it alone is sent again
    fake_fhir.fail_entries(201, 429)
    plan = _plan(values=0)  # Device, note | Provenance
    done = _executor(ExecMode.BATCH).execute([plan])
    sizes = [len(b["entry"]) for b in fake_fhir.posted]
    assert sizes == [2, 1, 1]
    assert all(b["type"] == "batch" for b in fake_fhir.posted)
    assert len(done.results[0].refs) == 2


def test_batch_reports_a_refused_entry_never_drops_it(fake_fhir) -> None:
    fake_fhir.fail_entries(201, 422)
    with pytest.raises(FhirServerError) as caught:
        _executor(ExecMode.BATCH).execute([_plan(values=0)])
    assert "1 of 2 entries failed" in str(caught.value)


def test_conditional_mode_sends_if_none_exist_and_conditional_updates(fake_fhir) -> None:
    done = _executor(ExecMode.CONDITIONAL).execute([_plan(values=1)])
    posts = fake_fhir.writes("POST")
    puts = fake_fhir.writes("PUT")
    assert all("If-None-Exist" in c.headers for c in posts)
    assert [p.path for p in puts] == ["Observation"]
    assert "identifier" in puts[0].params
    provenance = posts[-1].body
    assert provenance["resourceType"] == "Provenance"
    assert all(t["reference"].count("/") == 1 for t in provenance["target"])
    assert len(done.results[0].refs) == 3


def test_put_mode_uses_client_ids_from_the_keys(fake_fhir) -> None:
    plan = _plan(values=1)
    _executor(ExecMode.PUT).execute([plan])
    calls = fake_fhir.requests
    assert {c.method for c in calls} == {"PUT"}
    assert not any("/Device/" in c.url for c in calls)  # named by display only
    note = next(e for e in plan.entries if e["resource"]["resourceType"] == "DocumentReference")
    key = f"DocumentReference?{note['request']['ifNoneExist']}"
    assert any(c.url.endswith(f"/DocumentReference/{client_id(key)}") for c in calls)
    assert fake_fhir.get("DocumentReference", client_id(key)) is not None


def test_search_then_create_uses_what_it_finds(fake_fhir) -> None:
    plan = _plan(values=0)
    device = next(e for e in plan.entries if e["resource"]["resourceType"] == "Device")
    system, _, value = parse_qs(device["request"]["ifNoneExist"])["identifier"][0].partition("|")
    fake_fhir.add(
        {"resourceType": "Device", "id": "d9", "identifier": [{"system": system, "value": value}]}
    )
    done = _executor(ExecMode.SEARCH_THEN_CREATE).execute([plan])
    posted = [c.path for c in fake_fhir.writes("POST")]
    assert posted == ["DocumentReference", "Provenance"]  # the Device was found
    provenance = fake_fhir.writes("POST")[-1].body
    assert provenance["agent"][0]["who"]["reference"] == "Device/d9"
    assert len(done.results[0].refs) == 2


def _search_then_create_note() -> Any:
    """Write one note in search-then-create mode; the executor's result."""
    plan = _plan(values=0)
    note = next(e for e in plan.entries if e["resource"]["resourceType"] == "DocumentReference")
    return _executor(ExecMode.SEARCH_THEN_CREATE)._one(note)


def test_search_then_create_settles_a_lost_answer_by_searching_again(fake_fhir) -> None:
    fake_fhir.lose_answers(when=NOTE_POST)
    result = _search_then_create_note()
    assert len(fake_fhir.writes("POST")) == 1  # never posted twice
    (made,) = fake_fhir.all("DocumentReference")
    assert result is not None and result.id == made["id"]


def test_ledger_only_records_a_lost_answer_as_uncertain_and_does_not_retry(fake_fhir) -> None:
    fake_fhir.lose_answers(None, when=NOTE_POST)
    done = _executor(ExecMode.LEDGER_ONLY).execute([_plan("a", values=0), _plan("b", values=0)])
    # no Device in ledger-only mode; each note posted once; nothing after a lost note
    assert [c.path for c in fake_fhir.writes("POST")] == ["DocumentReference", "DocumentReference"]
    assert [r.uncertain is not None for r in done.results] == [True, True]
    assert done.error is None


def test_ledger_only_stops_on_an_unavailable_server_before_writing(fake_fhir) -> None:
    fake_fhir.fail(503, when=NOTE_POST, headers={"Retry-After": "1"})
    done = _executor(ExecMode.LEDGER_ONLY).execute([_plan("a", values=0), _plan("b", values=0)])
    assert done.results == []
    assert done.error is not None
    assert fake_fhir.all("DocumentReference") == []


@responses.activate
def test_ledger_only_backs_off_on_429_and_sends_the_create_again() -> None:
    """429 says the server did not take it: sending it again cannot write it twice."""
    responses.add(
        responses.POST, f"{BASE}/DocumentReference", status=429, headers={"Retry-After": "1"}
    )
    responses.add(
        responses.POST,
        f"{BASE}/DocumentReference",
        status=201,
        headers={"Location": f"{BASE}/DocumentReference/n1/_history/1"},
        body="{}",
    )
    responses.add(
        responses.POST,
        f"{BASE}/Provenance",
        status=201,
        headers={"Location": f"{BASE}/Provenance/p1/_history/1"},
        body="{}",
    )
    executor = _executor(ExecMode.LEDGER_ONLY)
    done = executor.execute([_plan("a", values=0)])
    assert done.error is None and [r.uncertain for r in done.results] == [None]
    assert len(executor._sleep) == 1  # type: ignore[arg-type]  # backed off once
    assert len(responses.calls) == 3  # the note twice (429, then 201), the Provenance once


@pytest.mark.parametrize(
    ("check", "header", "absent"),
    [
        (VersionCheck.IF_MATCH, "If-Match", "If-Unmodified-Since"),
        (VersionCheck.IF_UNMODIFIED_SINCE, "If-Unmodified-Since", "If-Match"),
        (VersionCheck.NONE, None, "If-Match"),
    ],
)
def test_superseding_uses_the_servers_version_check(check, header, absent, fake_fhir) -> None:
    previous = {
        "resourceType": "DocumentReference",
        "id": "old",
        "status": "current",
        "meta": {"versionId": "3", "lastUpdated": "2026-11-20T10:00:00.000+00:00"},
    }
    fake_fhir.add(previous)
    _executor(ExecMode.CONDITIONAL, version_check=check).execute(
        [_plan(values=0, previous=previous)]
    )
    update = next(c for c in fake_fhir.requests if c.url.endswith("/DocumentReference/old"))
    if header:
        assert header in update.headers
    assert absent not in update.headers
    if check is VersionCheck.IF_UNMODIFIED_SINCE:
        assert update.headers["If-Unmodified-Since"] == "Fri, 20 Nov 2026 10:00:00 GMT"
    assert fake_fhir.get("DocumentReference", "old")["status"] == "superseded"


def _statement(software: str, **doc: Any) -> dict[str, Any]:
    resource = {
        "type": "DocumentReference",
        "interaction": [{"code": "create"}, {"code": "update"}],
        "conditionalCreate": True,
        **doc,
    }
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "software": {"name": software},
        "rest": [
            {
                "mode": "server",
                "resource": [resource],
                "interaction": [{"code": "transaction"}],
            }
        ],
    }


def test_setup_from_a_statement() -> None:
    medplum = _setup(_statement("Medplum", versioning="versioned-update"), "auto")
    assert medplum.mode is ExecMode.TRANSACTION
    assert medplum.max_entries == 8
    assert any("chunks" in n for n in medplum.notes)
    plain = _setup(_statement("HAPI FHIR"), "auto")
    assert plain.version_check is VersionCheck.NONE
    assert any("no version check" in n for n in plain.notes)
    forced = _setup(_statement("HAPI FHIR"), "put")
    assert forced.mode is ExecMode.PUT
    # a statement that lists nothing keeps today's transaction
    empty = _setup({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}, "auto")
    assert empty.mode is ExecMode.TRANSACTION and empty.notes == ()


def test_a_server_that_takes_no_note_stops_sync_with_check_servers_exit_code() -> None:
    """athenahealth takes no DocumentReference over FHIR: the same verdict (exit 12) as
    check-server, before anything is written."""
    statement = _statement("athenaOne", interaction=[{"code": "read"}, {"code": "search-type"}])
    with pytest.raises(ServerCannotError, match="does not take DocumentReference") as raised:
        _setup(statement, "auto")
    assert raised.value.exit_code is ExitCode.SERVER_CANNOT


def test_search_then_create_waits_out_a_503_and_searches_again(fake_fhir) -> None:
    fake_fhir.fail(503, when=NOTE_POST, times=1, headers={"Retry-After": "1"})
    result = _search_then_create_note()
    searches = [c for c in fake_fhir.requests if c.method == "GET"]
    posts = fake_fhir.writes("POST")
    assert len(posts) == 2 and len(searches) == 2  # searched again before the retry
    (made,) = fake_fhir.all("DocumentReference")
    assert result is not None and result.id == made["id"]


# ------------------------------------------- single requests: several responses in flight


def _note_of(request: Any) -> str | None:
    """Which response a written note belongs to (its derived identifier names it)."""
    body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
    found = re.search(r"QuestionnaireResponse/(r\d+)", body)
    return found.group(1) if found else None


def _counting_server(
    rsps: responses.RequestsMock, answer: Any = None
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Single writes answered after a short pause, counting requests in flight at once.
    ``answer(request)`` may answer instead (a 429, a failure) or return None."""
    sent: list[tuple[str, str]] = []
    gauge = {"now": 0, "peak": 0}
    lock = threading.Lock()
    counter = iter(range(1, 10_000))

    def write(request: Any) -> tuple[int, dict[str, str], str]:
        with lock:
            gauge["now"] += 1
            gauge["peak"] = max(gauge["peak"], gauge["now"])
        try:
            time.sleep(0.01)  # long enough for the others to pile up
            special = answer(request) if answer is not None else None
            if special is not None:
                return special  # type: ignore[no-any-return]
            rtype = urlsplit(request.url).path.rsplit("/fhir/", 1)[1].split("/")[0]
            with lock:
                sent.append((request.method, rtype))
                rid = str(next(counter))
            return 201, {"Location": f"{BASE}/{rtype}/{rid}/_history/1"}, "{}"
        finally:
            with lock:
                gauge["now"] -= 1

    rsps.add_callback(responses.POST, re.compile(rf"{BASE}/\w+$"), callback=write)
    rsps.add_callback(responses.PUT, re.compile(rf"{BASE}/\w+.*"), callback=write)
    return sent, gauge


def _plans(n: int, values: int = 1) -> list[Any]:
    return [_plan(f"r{i}", values=values) for i in range(n)]


@responses.activate
def test_single_requests_keep_several_responses_in_flight_within_the_cap() -> None:
    sent, gauge = _counting_server(responses.mock)
    executor = _executor(ExecMode.CONDITIONAL, in_flight=3)
    done = executor.execute(_plans(9))
    assert done.error is None and len(done.results) == 9
    assert all(len(r.refs) == 3 for r in done.results)  # note, Observation, Provenance
    assert 1 < gauge["peak"] <= 3
    assert sent.count(("POST", "Device")) == 1  # the first response writes it, alone
    again = executor.execute(_plans(2))  # the run's next page reuses it
    assert again.error is None and sent.count(("POST", "Device")) == 1


@responses.activate
def test_a_429_halves_the_window_and_the_write_is_sent_again_once() -> None:
    refused = {"n": 0}

    def answer(request: Any) -> Any:
        if urlsplit(request.url).path.endswith("/Observation") and refused["n"] < 3:
            refused["n"] += 1
            return 429, {"Retry-After": "7"}, ""
        return None

    sent, _ = _counting_server(responses.mock, answer)
    sleeps = Sleeps()
    executor = WriteExecutor(_client(), WriteSetup(ExecMode.CONDITIONAL), sleep=sleeps)
    done = executor.execute(_plans(8))
    assert done.error is None and len(done.results) == 8
    assert executor.window.decreases >= 1 and executor.window.limit < 8
    assert sleeps == [7.0, 7.0, 7.0]  # one wait per 429, as long as the server asked
    # every Observation written exactly once, although three were refused first
    assert sent.count(("PUT", "Observation")) == 8


@responses.activate
def test_ledger_only_sends_a_429_again_it_was_not_taken() -> None:
    refused = {"n": 0}

    def answer(request: Any) -> Any:
        if refused["n"] == 0:
            refused["n"] += 1
            return 429, {"Retry-After": "5"}, ""
        return None

    sent, _ = _counting_server(responses.mock, answer)
    sleeps = Sleeps()
    executor = WriteExecutor(_client(), WriteSetup(ExecMode.LEDGER_ONLY), sleep=sleeps)
    done = executor.execute(_plans(3, values=0))
    assert done.error is None and [r.uncertain for r in done.results] == [None] * 3
    assert sleeps == [5.0]  # the plain create waited as asked, then went again
    assert sent.count(("POST", "DocumentReference")) == 3


@responses.activate
def test_results_come_in_plan_order_whatever_order_the_writes_finish() -> None:
    later_done = threading.Event()

    def answer(request: Any) -> Any:
        if _note_of(request) == "r1":
            later_done.wait(5)  # r1's note finishes after everything of r2
        elif _note_of(request) == "r2" and "Provenance" in request.url:
            later_done.set()
        return None

    _counting_server(responses.mock, answer)
    done = _executor(ExecMode.PUT, in_flight=4).execute(_plans(3, values=0))
    assert later_done.is_set()
    assert done.error is None
    assert [r.refs[0].split("/")[0] for r in done.results] == ["DocumentReference"] * 3
    ids = [r.refs for r in done.results]
    assert len({tuple(x) for x in ids}) == 3


@responses.activate
def test_nothing_after_a_failed_response_is_recorded_and_its_writes_are_kept() -> None:
    """r0 is refused while r1 is written: the results stop before r0 (the cursor stays
    before it); r1's writes are kept for the rest's next execute, not sent again."""
    r1_done = threading.Event()

    def answer(request: Any) -> Any:
        if _note_of(request) == "r0":
            r1_done.wait(5)
            return 400, {}, ""
        if _note_of(request) == "r1" and "Provenance" in request.url:
            r1_done.set()
        return None

    sent, _ = _counting_server(responses.mock, answer)
    executor = _executor(ExecMode.PUT, in_flight=4)
    plans = _plans(2, values=0)
    done = executor.execute(plans)
    assert done.results == [] and isinstance(done.error, FhirServerError)
    writes = len(sent)
    rest = executor.execute(plans[1:])  # what the run does after a refused response
    assert rest.error is None and len(rest.results) == 1 and rest.results[0].refs
    assert len(sent) == writes  # kept, not written twice


@responses.activate
def test_ledger_only_records_a_failed_response_uncertain_when_later_ones_were_created() -> None:
    """Plain creates cannot be sent again: when the run must stop at r0 (the server
    unavailable) while r1 was created meanwhile, r0 is recorded uncertain ("not written")
    so that r1 is recorded too and never posted twice."""
    r1_done = threading.Event()

    def answer(request: Any) -> Any:
        if _note_of(request) == "r0":
            r1_done.wait(5)
            return 503, {}, ""
        if _note_of(request) == "r1" and "Provenance" in request.url:
            r1_done.set()
        return None

    sent, _ = _counting_server(responses.mock, answer)
    done = _executor(ExecMode.LEDGER_ONLY, in_flight=4).execute(_plans(2, values=0))
    assert done.error is None
    first, second = done.results
    assert first.uncertain is not None and first.uncertain.startswith("not written")
    assert first.refs == [] and second.uncertain is None and second.refs
    assert sent.count(("POST", "DocumentReference")) == 1


def test_the_chunks_of_one_stage_go_at_once_and_stages_in_order(fake_fhir) -> None:
    """With ``chunks_in_flight``, chunks that reference only earlier stages are sent
    together; a stage starts only once every chunk of the one before answered."""
    lock = threading.Lock()
    gauge = {"now": 0, "peak": 0}
    log: list[tuple[str, set[str]]] = []

    def kinds(seen: Any) -> set[str]:
        return {e["resource"]["resourceType"] for e in seen.body["entry"]}

    def arrive(seen: Any) -> None:
        if seen.method != "POST" or not isinstance(seen.body, dict):
            return
        with lock:
            gauge["now"] += 1
            gauge["peak"] = max(gauge["peak"], gauge["now"])
            log.append(("start", kinds(seen)))
        time.sleep(0.02)  # long enough for the other chunks of the stage to arrive

    def commit(seen: Any) -> None:
        if seen.method != "POST" or not isinstance(seen.body, dict):
            return
        with lock:
            gauge["now"] -= 1
            log.append(("end", kinds(seen)))

    fake_fhir.on_arrival = arrive
    fake_fhir.on_commit = commit
    plans = [_plan(f"r{n}") for n in range(6)]
    done = _executor(ExecMode.TRANSACTION, max_entries=3, chunks_in_flight=3).execute(plans)
    assert all(len(r.refs) == 4 for r in done.results)
    assert 1 < gauge["peak"] <= 3
    first_provenance = next(i for i, (what, k) in enumerate(log) if "Provenance" in k)
    assert all(what == "end" or "Provenance" in k for what, k in log[first_provenance:])
    assert sum(1 for what, _ in log[:first_provenance] if what == "start") == sum(
        1 for what, _ in log[:first_provenance] if what == "end"
    )
