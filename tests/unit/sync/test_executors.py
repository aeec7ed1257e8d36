"""The write executors: one plan, sent as chunked transactions, batches or single requests,
against the in-memory server (tests/fakefhir.py) with its fault hooks (lost answers,
transient entry refusals)."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qs

import pytest

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


def test_search_then_create_waits_out_a_503_and_searches_again(fake_fhir) -> None:
    fake_fhir.fail(503, when=NOTE_POST, times=1, headers={"Retry-After": "1"})
    result = _search_then_create_note()
    searches = [c for c in fake_fhir.requests if c.method == "GET"]
    posts = fake_fhir.writes("POST")
    assert len(posts) == 2 and len(searches) == 2  # searched again before the retry
    (made,) = fake_fhir.all("DocumentReference")
    assert result is not None and result.id == made["id"]
