"""The write executors: one plan, sent as chunked transactions, batches or single requests,
with the fault paths (lost answers, transient entry refusals) mocked with ``responses``."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from rejection_fhir.ehr.extract import ExtractedValue
from rejection_fhir.ehr.writeback import Note, ResponseVersion, plan_writes
from rejection_fhir.errors import FhirServerError
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.sync.executors import (
    ExecMode,
    WriteExecutor,
    WriteSetup,
    _setup,
    client_id,
    combined,
    resolve,
    stages,
)
from rejection_fhir.sync.strategy import VersionCheck

BASE = "https://ehr.test/fhir"
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


class Server:
    """A tiny server: answers bundles entry by entry and single writes, numbering ids."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.n = 0
        self.bundles: list[dict[str, Any]] = []
        self.entry_status: list[int] = []  # statuses to give bundle entries, in order
        rsps.add_callback(responses.POST, BASE, callback=self.bundle)

    def new_id(self) -> str:
        self.n += 1
        return str(self.n)

    def bundle(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        self.bundles.append(body)
        out = []
        for entry in body["entry"]:
            status = self.entry_status.pop(0) if self.entry_status else 201
            rtype = entry["resource"]["resourceType"]
            if status >= 300:
                out.append({"response": {"status": str(status)}})
            else:
                out.append(
                    {
                        "response": {
                            "status": f"{status}",
                            "location": f"{rtype}/{self.new_id()}/_history/1",
                        }
                    }
                )
        answer = {"resourceType": "Bundle", "type": f"{body['type']}-response", "entry": out}
        return 200, {}, json.dumps(answer)


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


@responses.activate
def test_transaction_without_limit_is_one_transaction() -> None:
    server = Server(responses.mock)
    plans = [_plan("a"), _plan("b")]
    done = _executor(ExecMode.TRANSACTION).execute(plans)
    assert len(server.bundles) == 1
    assert server.bundles[0]["type"] == "transaction"
    # the Device is sent once for both plans
    kinds = [e["resource"]["resourceType"] for e in server.bundles[0]["entry"]]
    assert kinds.count("Device") == 1
    assert [len(r.refs) for r in done.results] == [4, 4]


@responses.activate
def test_transaction_is_chunked_under_the_servers_entry_limit() -> None:
    server = Server(responses.mock)
    plans = [_plan("a"), _plan("b"), _plan("c")]
    total = len(combined(plans))
    assert total > 8
    done = _executor(ExecMode.TRANSACTION, max_entries=3).execute(plans)
    assert all(len(b["entry"]) <= 3 for b in server.bundles)
    assert sum(len(b["entry"]) for b in server.bundles) == total
    assert all(b["type"] == "transaction" for b in server.bundles)
    # Provenance goes after what it names, with the urns replaced by the ids answered
    provenances = [
        e["resource"]
        for b in server.bundles
        for e in b["entry"]
        if e["resource"]["resourceType"] == "Provenance"
    ]
    assert len(provenances) == 3
    for provenance in provenances:
        targets = [t["reference"] for t in provenance["target"]]
        assert all(not t.startswith("urn:") for t in targets)
        assert provenance["agent"][0]["who"]["reference"].startswith("Device/")
    assert all(len(r.refs) == 4 for r in done.results)


@responses.activate
def test_a_failed_chunk_raises_so_nothing_is_recorded() -> None:
    server = Server(responses.mock)
    server.entry_status = [201, 201, 201, 400]
    responses.replace(
        responses.POST,
        BASE,
        json={
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "invalid"}],
        },
        status=400,
    )
    with pytest.raises(FhirServerError):
        _executor(ExecMode.TRANSACTION, max_entries=3).execute([_plan("a"), _plan("b")])


@responses.activate
def test_batch_sends_transiently_refused_entries_again() -> None:
    server = Server(responses.mock)
    # first batch: the second entry gets 429; it alone is sent again
    server.entry_status = [201, 429]
    plan = _plan(values=0)  # Device, note | Provenance
    done = _executor(ExecMode.BATCH).execute([plan])
    sizes = [len(b["entry"]) for b in server.bundles]
    assert sizes == [2, 1, 1]
    assert all(b["type"] == "batch" for b in server.bundles)
    assert len(done.results[0].refs) == 2


@responses.activate
def test_batch_reports_a_refused_entry_never_drops_it() -> None:
    server = Server(responses.mock)
    server.entry_status = [201, 422]
    with pytest.raises(FhirServerError) as caught:
        _executor(ExecMode.BATCH).execute([_plan(values=0)])
    assert "1 of 2 entries failed" in str(caught.value)


def _single_server(
    rsps: responses.RequestsMock, found: dict[str, list[dict[str, Any]]]
) -> list[Any]:
    calls: list[Any] = []
    counter = iter(range(1, 1000))

    def write(request: Any) -> tuple[int, dict[str, str], str]:
        calls.append(request)
        rtype = urlsplit(request.url).path.rsplit("/fhir/", 1)[1].split("/")[0]
        rid = str(next(counter))
        if request.method == "PUT" and "/" in urlsplit(request.url).path.rsplit("/fhir/", 1)[1]:
            rid = urlsplit(request.url).path.rsplit("/", 1)[1]
        return 201, {"Location": f"{BASE}/{rtype}/{rid}/_history/1"}, request.body

    def search(request: Any) -> tuple[int, dict[str, str], str]:
        calls.append(request)
        rtype = urlsplit(request.url).path.rsplit("/", 1)[1]
        hits = found.get(rtype, [])
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in hits],
        }
        return 200, {}, json.dumps(bundle)

    import re

    rsps.add_callback(responses.POST, re.compile(rf"{BASE}/\w+$"), callback=write)
    rsps.add_callback(responses.PUT, re.compile(rf"{BASE}/\w+.*"), callback=write)
    rsps.add_callback(responses.GET, re.compile(rf"{BASE}/\w+\?.*"), callback=search)
    return calls


@responses.activate
def test_conditional_mode_sends_if_none_exist_and_conditional_updates() -> None:
    calls = _single_server(responses.mock, {})
    done = _executor(ExecMode.CONDITIONAL).execute([_plan(values=1)])
    posts = [c for c in calls if c.method == "POST"]
    puts = [c for c in calls if c.method == "PUT"]
    assert all("If-None-Exist" in c.headers for c in posts)
    assert [urlsplit(p.url).path.rsplit("/", 1)[1] for p in puts] == ["Observation"]
    assert "identifier" in parse_qs(urlsplit(puts[0].url).query)
    provenance = json.loads(posts[-1].body)
    assert provenance["resourceType"] == "Provenance"
    assert all(t["reference"].count("/") == 1 for t in provenance["target"])
    assert len(done.results[0].refs) == 3


@responses.activate
def test_put_mode_uses_client_ids_from_the_keys() -> None:
    calls = _single_server(responses.mock, {})
    plan = _plan(values=1)
    _executor(ExecMode.PUT).execute([plan])
    assert {c.method for c in calls} == {"PUT"}
    assert not any("/Device/" in c.url for c in calls)  # named by display only
    note = next(e for e in plan.entries if e["resource"]["resourceType"] == "DocumentReference")
    key = f"DocumentReference?{note['request']['ifNoneExist']}"
    assert any(c.url.endswith(f"/DocumentReference/{client_id(key)}") for c in calls)


@responses.activate
def test_search_then_create_uses_what_it_finds() -> None:
    calls = _single_server(responses.mock, {"Device": [{"resourceType": "Device", "id": "d9"}]})
    done = _executor(ExecMode.SEARCH_THEN_CREATE).execute([_plan(values=0)])
    posted = [urlsplit(c.url).path.rsplit("/", 1)[1] for c in calls if c.method == "POST"]
    assert posted == ["DocumentReference", "Provenance"]  # the Device was found
    provenance = json.loads(calls[-1].body)
    assert provenance["agent"][0]["who"]["reference"] == "Device/d9"
    assert len(done.results[0].refs) == 2


def _search_then_create_note(search: Any, post: Any) -> Any:
    """Write one note in search-then-create mode against a server whose searches and posts
    of DocumentReference are answered by ``search`` and ``post``; the executor's result."""
    import re

    responses.add_callback(
        responses.GET, re.compile(rf"{BASE}/DocumentReference\?.*"), callback=search
    )
    responses.add_callback(responses.POST, f"{BASE}/DocumentReference", callback=post)
    plan = _plan(values=0)
    note = next(e for e in plan.entries if e["resource"]["resourceType"] == "DocumentReference")
    return _executor(ExecMode.SEARCH_THEN_CREATE)._one(note)


@responses.activate
def test_search_then_create_settles_a_lost_answer_by_searching_again() -> None:
    state = {"posted": 0}

    def search(request: Any) -> tuple[int, dict[str, str], str]:
        rtype = urlsplit(request.url).path.rsplit("/", 1)[1]
        hits = [{"resourceType": rtype, "id": "n1"}] if state["posted"] else []
        entries = [{"resource": h} for h in hits]
        return (
            200,
            {},
            json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries}),
        )

    def post(request: Any) -> Any:
        state["posted"] += 1
        raise requests.exceptions.ConnectionError("reset after sending")

    result = _search_then_create_note(search, post)
    assert state["posted"] == 1  # never posted twice
    assert result is not None and result.id == "n1"


@responses.activate
def test_ledger_only_records_a_lost_answer_as_uncertain_and_does_not_retry() -> None:
    posts: list[str] = []

    def post(request: Any) -> Any:
        rtype = urlsplit(request.url).path.rsplit("/", 1)[1]
        posts.append(rtype)
        if rtype == "DocumentReference":
            raise requests.exceptions.ConnectionError("reset after sending")
        return 201, {"Location": f"{BASE}/{rtype}/{len(posts)}/_history/1"}, "{}"

    import re

    responses.add_callback(responses.POST, re.compile(rf"{BASE}/\w+$"), callback=post)
    done = _executor(ExecMode.LEDGER_ONLY).execute([_plan("a", values=0), _plan("b", values=0)])
    # no Device in ledger-only mode; each note posted once; nothing after a lost note
    assert posts == ["DocumentReference", "DocumentReference"]
    assert [r.uncertain is not None for r in done.results] == [True, True]
    assert done.error is None


@responses.activate
def test_ledger_only_stops_on_an_unavailable_server_before_writing() -> None:
    responses.add(
        responses.POST, f"{BASE}/DocumentReference", status=503, headers={"Retry-After": "1"}
    )
    done = _executor(ExecMode.LEDGER_ONLY).execute([_plan("a", values=0), _plan("b", values=0)])
    assert done.results == []
    assert done.error is not None


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
@responses.activate
def test_superseding_uses_the_servers_version_check(check, header, absent) -> None:
    calls = _single_server(responses.mock, {})
    previous = {
        "resourceType": "DocumentReference",
        "id": "old",
        "status": "current",
        "meta": {"versionId": "3", "lastUpdated": "2026-11-20T10:00:00.000+00:00"},
    }
    _executor(ExecMode.CONDITIONAL, version_check=check).execute(
        [_plan(values=0, previous=previous)]
    )
    update = next(c for c in calls if c.url.endswith("/DocumentReference/old"))
    if header:
        assert header in update.headers
    assert absent not in update.headers
    if check is VersionCheck.IF_UNMODIFIED_SINCE:
        assert update.headers["If-Unmodified-Since"] == "Fri, 20 Nov 2026 10:00:00 GMT"


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


@responses.activate
def test_search_then_create_waits_out_a_503_and_searches_again() -> None:
    state = {"posted": 0}

    def search(request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset"})

    def post(request: Any) -> Any:
        state["posted"] += 1
        if state["posted"] == 1:
            return 503, {"Retry-After": "1"}, ""
        return 201, {"Location": f"{BASE}/DocumentReference/n2/_history/1"}, "{}"

    result = _search_then_create_note(search, post)
    searches = [c for c in responses.calls if c.request.method == "GET"]
    assert state["posted"] == 2 and len(searches) == 2  # searched again before the retry
    assert result is not None and result.id == "n2"
