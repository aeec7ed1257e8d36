"""The sync on a server that takes less: the strategy from its statement drives the writes."""

from __future__ import annotations

import json

import pytest
import responses

from rejection_fhir.sync.state import SyncState
from tests.unit.sync.test_run import (
    BASE,
    DATA,
    FakeServer,
    _copy,
    _run,
    summaries,  # noqa: F401  (autouse fixture)
)


@pytest.fixture
def qr():
    return json.loads((DATA / "qr-rejection-log.json").read_text())


def _statement(*writable: str) -> dict:
    def resource(kind: str) -> dict:
        return {
            "type": kind,
            "interaction": [{"code": "create"}, {"code": "update"}, {"code": "search-type"}],
            "conditionalCreate": True,
            "searchParam": [{"name": "_lastUpdated", "type": "date"}],
        }

    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "software": {"name": "Some EHR"},
        "rest": [
            {
                "mode": "server",
                "interaction": [{"code": "transaction"}],
                "resource": [resource(k) for k in ("QuestionnaireResponse", *writable)],
            }
        ],
    }


@responses.activate
def test_what_the_server_does_not_take_is_left_out_and_said_once(tmp_path, built, qr) -> None:
    server = FakeServer(responses.mock, [_copy(qr, "a", "2026-11-01T00:00:00Z")])
    responses.replace(
        responses.GET, f"{BASE}/metadata", json=_statement("DocumentReference", "Provenance")
    )
    report = _run(tmp_path, built)
    assert report.ok and report.tally.written == 1
    kinds = {e["resource"]["resourceType"] for t in server.transactions for e in t["entry"]}
    assert kinds == {"DocumentReference", "Provenance"}
    assert report.tally.left_out["Observation"] >= 1 and report.tally.left_out["Device"] == 1
    left = [n for n in report.notes if n.startswith("left out")]
    assert any("Observation" in n for n in left) and any("Device" in n for n in left)
    provenance = next(
        e["resource"]
        for t in server.transactions
        for e in t["entry"]
        if e["resource"]["resourceType"] == "Provenance"
    )
    assert all("reference" not in a["who"] for a in provenance["agent"])
    with SyncState(tmp_path / "state.sqlite3") as state:
        (entry,) = state.entries(BASE)
    assert [r.split("/")[0] for r in entry.resources] == ["DocumentReference", "Provenance"]


@responses.activate
def test_a_forced_write_mode_is_used_and_said(tmp_path, built, qr) -> None:
    FakeServer(responses.mock, [_copy(qr, "a", "2026-11-01T00:00:00Z")])
    posted: list[str] = []

    def create(request):
        kind = request.url.rsplit("/", 1)[1]
        posted.append(kind)
        assert "If-None-Exist" in request.headers
        return 201, {"Location": f"{BASE}/{kind}/{len(posted)}/_history/1"}, "{}"

    import re

    responses.add_callback(responses.POST, re.compile(rf"{BASE}/\w+$"), callback=create)
    responses.add_callback(
        responses.PUT,
        re.compile(rf"{BASE}/Observation\?.*"),
        callback=lambda r: (201, {"Location": f"{BASE}/Observation/9/_history/1"}, "{}"),
    )
    report = _run(tmp_path, built, write_mode="conditional")
    assert report.ok and report.tally.written == 1
    assert posted[0] == "Device" and posted[1] == "DocumentReference" and posted[-1] == "Provenance"
    assert any("write mode conditional (set" in n for n in report.notes)
