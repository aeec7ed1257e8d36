"""Exactly once in every write mode, against the real servers, with faults.

- HAPI (plain): the sync scenario of tests/faults (round 1, amendments, round 2) with
  ``write_mode`` forced to each mode HAPI supports, through the fault proxy; the end state
  must equal the fault-free transaction run's: 0 duplicates, 0 losses.
- HAPI, ``ledger-only``: plain creates sent once; an answer lost after the server committed
  is recorded as *uncertain*, never retried: 0 duplicates, and every response either has
  its note or is in the ledger as uncertain.
- Medplum's router (servers/medplum): it refuses a transaction of more than 8 conditional
  entries; the sync's transactions are chunked, succeed, and a full replay (a fresh ledger)
  writes nothing twice.

Each run adds a row to test-artifacts/faults/results.jsonl (server, write mode, fault →
duplicates, losses, uncertain); the module writes them as a Markdown table to
test-artifacts/faults/write-modes.md (``python -m tests.faults.table --modes`` prints it).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from rejection_fhir import settings as settings_module
from rejection_fhir.commands.build import build_all
from rejection_fhir.ehr.entries import DERIVED_SYSTEM
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.settings import load_settings
from rejection_fhir.sync.reconcile import reconcile_state
from rejection_fhir.sync.run import SyncOptions, SyncReport, sync
from rejection_fhir.sync.state import SyncState
from rejection_fhir.worksheet.catalog import catalog_from_build
from rejection_fhir.worksheet.synthetic import ResponseFactory, patient
from tests.faults.proxy import FaultPlan, FaultProxy, Rule
from tests.faults.scenario import RESPONSES, WORLD_SEED, new_base, proxied
from tests.faults.table import record_row
from tests.faults.world import (
    World,
    amend,
    compare,
    describe,
    end_state,
    make_world,
    seed_cursor,
)

pytestmark = pytest.mark.integration

BATCH = 6
#: The modes plain HAPI supports besides ledger-only (it has transactions, batches,
#: conditional create/update, identifier search and client-assigned ids).
HAPI_MODES = ("transaction", "batch", "conditional", "search-then-create", "put")
FAULTS = ("none", "503", "reset", "drop")


@pytest.fixture(scope="module", autouse=True)
def table() -> Iterator[None]:
    """Write the server × write mode × fault table next to the rows, for the closing note."""
    yield
    from tests.faults.table import RESULTS, modes_markdown

    if RESULTS.exists():
        (RESULTS.parent / "write-modes.md").write_text(modes_markdown() + "\n", encoding="utf-8")


def schedule(fault: str, mode: str = "transaction") -> list[Rule]:
    """Writes of every kind get the fault: the first write, a later one, an update."""
    if fault == "none":
        return []
    if mode == "put":  # every write is a PUT
        return [Rule(fault, "PUT", ".*", nth=(1, 3, 6))]
    return [
        Rule(fault, "POST", ".*", nth=(1, 4)),
        Rule(fault, "PUT", ".*", nth=(2,)),
    ]


def run_round(proxy: FaultProxy, world: World, state: Path, mode: str) -> SyncReport:
    options = SyncOptions(
        source=proxy.base_url, state_path=state, batch_size=BATCH, write_mode=mode
    )
    return sync(proxied(proxy), options, catalog_from_build(world.built))


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("mode", HAPI_MODES)
def test_hapi_each_write_mode_under_faults_equals_the_fault_free_state(
    mode, fault, repo, fhir_server, direct_settings, direct, baseline, tmp_path
):
    world = make_world(
        repo, direct_settings, direct, new_base(), responses=RESPONSES, seed=WORLD_SEED
    )
    state = tmp_path / "state.sqlite3"
    try:
        with FaultProxy(fhir_server, FaultPlan(schedule(fault, mode))) as proxy:
            seed_cursor(state, proxy.base_url, world.since)
            first = run_round(proxy, world, state, mode)
            amend(direct, world)
            second = run_round(proxy, world, state, mode)
            got = end_state(direct, world, proxy.base_url)
            injected = proxy.injected()
        comparison = compare(got, baseline.states[1])
        uncertain = first.tally.uncertain + second.tally.uncertain
        record_row(
            f"write-modes/hapi/{mode}/{fault}",
            stage="write-modes",
            faults=proxy.tally(),
            duplicates=comparison.duplicates,
            losses=comparison.losses,
            note="" if comparison.equal else "; ".join(comparison.lines[:3]),
            server="hapi",
            write_mode=mode,
            fault=fault,
            uncertain=uncertain,
        )
        assert first.ok and second.ok, (first.failed[:2], second.failed[:2], describe(injected))
        assert [first.tally.written, second.tally.written] == [RESPONSES, len(world.amended)]
        assert uncertain == 0
        assert comparison.equal, "\n".join(comparison.lines) + "\n" + describe(injected)
        if fault != "none":
            assert injected, "the schedule injected nothing"
    finally:
        world.close()


def _notes(client: FhirClient, world: World) -> Counter[str]:
    """Our notes for the world, by identifier (a count above 1 is a duplicate)."""
    found: Counter[str] = Counter()
    for subject in world.patients:
        for note in client.search("DocumentReference", {"subject": subject, "_count": "100"}):
            for identifier in note.get("identifier") or []:
                if identifier.get("system") == DERIVED_SYSTEM:
                    found[identifier["value"]] += 1
    return found


@pytest.mark.parametrize("fault", ("none", "drop", "reset"))
def test_hapi_ledger_only_marks_lost_answers_uncertain_never_writes_twice(
    fault, repo, fhir_server, direct_settings, direct, tmp_path
):
    world = make_world(repo, direct_settings, direct, new_base(), responses=12, seed=WORLD_SEED)
    state = tmp_path / "state.sqlite3"
    try:
        rules = [] if fault == "none" else [Rule(fault, "POST", r"DocumentReference", nth=(2, 5))]
        with FaultProxy(fhir_server, FaultPlan(rules)) as proxy:
            seed_cursor(state, proxy.base_url, world.since)
            report = run_round(proxy, world, state, "ledger-only")
            # nothing is retried, and what is uncertain is reported again until settled
            again = run_round(proxy, world, state, "ledger-only")
            injected = proxy.injected()
            source_base = proxied(proxy).server
            notes = _notes(direct, world)
            with SyncState(state) as ledger:
                rows = {e.response_id: e for e in ledger.entries(source_base)}
                settled = reconcile_state(ledger, direct, direct, source_base)
            settled_run = run_round(proxy, world, state, "ledger-only")  # quiet once settled
        duplicates = sum(n - 1 for n in notes.values() if n > 1)
        noted = {key.split("/")[1] for key in notes}
        losses = sum(1 for qr in world.qrs if qr["id"] not in noted and rows.get(qr["id"]) is None)
        uncertain = sum(1 for e in rows.values() if e.outcome == "uncertain")
        record_row(
            f"write-modes/hapi/ledger-only/{fault}",
            stage="write-modes",
            faults=proxy.tally(),
            duplicates=duplicates,
            losses=losses,
            server="hapi",
            write_mode="ledger-only",
            fault=fault,
            uncertain=uncertain,
        )
        assert duplicates == 0
        assert losses == 0
        assert report.tally.uncertain == uncertain
        assert again.tally.written == 0 and again.tally.uncertain == uncertain
        assert {p.response for p in again.uncertain} == {p.response for p in report.uncertain}, (
            "the same writes, each once"
        )
        if fault == "none":
            assert uncertain == 0 and report.tally.written == 12 and len(notes) == 12
        else:
            assert uncertain == len(injected) == 2, describe(injected)
            assert report.tally.written + uncertain == 12
            # the committed-but-lost notes are there: uncertain, not lost
            assert len(notes) == 12
        # reconcile finds each uncertain note (the server committed before the answer was
        # lost): settled as written, nothing uncertain left
        assert len(settled.found) == uncertain and not settled.absent
        assert not settled.still_uncertain
        with SyncState(state) as ledger:
            assert ledger.entries(outcome="uncertain") == []
        assert settled_run.ok and settled_run.tally.uncertain == 0, settled_run.uncertain
    finally:
        world.close()


# ---------------------------------------------------------------------------- Medplum


def _medplum_world(repo: Path, client: FhirClient, responses: int) -> World:
    """Questionnaires, two patients and responses created one by one (publish's single
    conditional transaction is itself above Medplum's limit)."""
    base = f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"
    built, _ = build_all(repo / "questionnaires", base_url=base)
    for resource in built.resources:
        client.create({k: v for k, v in resource.items() if k != "id"})
    subjects = []
    for i in range(2):
        created = client.create(patient(f"{base}-{i}", given=f"Client{i}"))
        subjects.append(f"Patient/{created.id}")
    since = client.read("Patient", subjects[0].split("/")[1])["meta"]["lastUpdated"]
    qrs = list(ResponseFactory(seed=WORLD_SEED).many(built.questionnaires, subjects, responses))
    for qr in qrs:
        qr["id"] = client.create(qr, sensitive=True).id
    return World(base, built, subjects, qrs, since)


@pytest.mark.parametrize("fault", ("none", "503", "reset", "drop"))
def test_medplum_chunked_transactions_succeed_under_faults_and_replay_writes_nothing_twice(
    fault, repo, medplum_server, tmp_path
):
    settings = load_settings({"server": medplum_server}, env={})
    with settings_module.make_client(settings) as client:
        world = _medplum_world(repo, client, responses=8)
        bundles: list[int] = []
        rules = [] if fault == "none" else [Rule(fault, "POST", "", nth=(1, 3))]
        with FaultProxy(medplum_server, FaultPlan(rules)) as proxy:
            for attempt in ("first", "replay"):
                if attempt == "replay":
                    proxy.rearm()
                state = tmp_path / f"{attempt}.sqlite3"  # a fresh ledger: all again
                seed_cursor(state, proxy.base_url, world.since)
                options = SyncOptions(source=proxy.base_url, state_path=state, batch_size=20)
                report = sync(
                    proxied(proxy),
                    options,
                    catalog_from_build(world.built),
                    on_transaction=lambda b: bundles.append(len(b["entry"])),
                )
                assert report.ok, report.failed[:2]
                assert report.tally.written == 8
                assert any("chunks" in note for note in report.notes)
            injected = proxy.injected()
        notes = _notes(client, world)
        duplicates = sum(n - 1 for n in notes.values() if n > 1)
        record_row(
            f"write-modes/medplum/transaction-chunked/{fault}",
            stage="write-modes",
            faults=proxy.tally(),
            duplicates=duplicates,
            losses=8 - len(notes),
            server="medplum",
            write_mode="transaction (chunks of 8)",
            fault=f"{fault}, then a full replay",
            uncertain=0,
        )
        # one batch of 8 responses plans well over 8 conditional entries
        assert max(bundles) <= 8 and len(bundles) > 4
        assert len(notes) == 8 and duplicates == 0
        if fault != "none":
            assert len(injected) == 2, describe(injected)


# ------------------------------------------------------------------ kill -9 per write mode


@pytest.mark.parametrize("mode", ("batch", "conditional", "search-then-create", "put"))
def test_hapi_each_write_mode_killed_after_a_commit_then_resumed(
    mode, repo, fhir_server, direct_settings, direct, baseline, tmp_path
):
    """``sync --write-mode MODE`` (a subprocess) killed with SIGKILL while the server has
    committed a write whose answer the proxy holds back, twice; then a run completes.
    Round 1 of the scenario must end as the fault-free run's round 1."""
    from tests.integration.test_crash import RUN_TIMEOUT, Cli, kill_9

    world = make_world(
        repo, direct_settings, direct, new_base(), responses=RESPONSES, seed=WORLD_SEED
    )
    state = tmp_path / "state.sqlite3"
    kills = 0
    try:
        with FaultProxy(fhir_server) as proxy:
            cli = Cli(repo, proxy, world, state, tmp_path)
            seed_cursor(state, proxy.base_url, world.since)
            for n, nth in enumerate((3, 2)):
                # The nth write: a bundle, a create, or in put mode an update-as-create.
                method = "PUT" if mode == "put" else "POST"
                proxy.rearm(FaultPlan([Rule("hold", method, ".*", nth=(nth,))]))
                process = cli.start("--write-mode", mode, name=f"crash{n}")
                held = proxy.wait_held_while(process, RUN_TIMEOUT)
                kill_9(process)
                proxy.release()
                if held is not None:
                    assert held["upstream_status"] in (200, 201), "the server committed it"
                    kills += 1
                assert end_state(direct, world, proxy.base_url).duplicates() == 0
            proxy.rearm()
            final = cli.start("--write-mode", mode, name="final")
            code = final.wait(timeout=RUN_TIMEOUT)
            assert code == 0, cli.output("final")
            got = end_state(direct, world, proxy.base_url)
        comparison = compare(got, baseline.states[0])
        record_row(
            f"write-modes/hapi/{mode}/kill-9",
            stage="write-modes",
            faults={"kill -9 after commit": kills},
            duplicates=comparison.duplicates,
            losses=comparison.losses,
            note="" if comparison.equal else "; ".join(comparison.lines[:3]),
            server="hapi",
            write_mode=mode,
            fault="kill -9 after commit",
            uncertain=0,
        )
        assert kills == 2
        assert comparison.equal, "\n".join(comparison.lines)
    finally:
        world.close()


def test_medplum_publish_in_chunks_then_again_changes_nothing(repo, medplum_server):
    """publish's one conditional transaction is above Medplum's limit: it goes in chunks."""
    from rejection_fhir.commands.publish import publish

    settings = load_settings({"server": medplum_server}, env={})
    base = f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"
    built, _ = build_all(repo / "questionnaires", base_url=base)
    assert len(built.resources) > 8
    first = publish(repo / "questionnaires", settings, base_url=base)
    assert first.counts() == {"create": len(built.resources)}
    again = publish(repo / "questionnaires", settings, base_url=base)
    assert again.counts() == {"unchanged": len(built.resources)}


# --------------------------------------------- concurrent single requests on a profile


def _overlap(exchanges: list[Any]) -> int:
    """Most requests in flight at once, from when the proxy began and finished each."""
    edges = sorted([(e.started, 1) for e in exchanges] + [(e.finished, -1) for e in exchanges])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


@pytest.mark.parametrize("fault", ("none", "429"))
def test_oracle_like_concurrent_ledger_only_writes_give_no_duplicates(
    fault, repo, fhir_server, tmp_path
):
    """oracle-like takes neither transactions nor conditional creates: ledger-only, plain
    POSTs, several responses in flight (sync.concurrency).  With or without 429s from the
    server (the window halves, the refused POST is sent again: the server did not take it),
    every response gets exactly one note, nothing is uncertain, and a rerun that polls the
    patients the ledger knows (``--patients-from ledger``) finds them all and writes nothing."""
    from rejection_fhir.cli.options import built_catalog
    from rejection_fhir.commands.seed import TEST_ACCESS_HEADER, seed
    from rejection_fhir.ehr.entries import derived_id

    profile = f"{fhir_server}/oracle-like"
    base = f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"
    catalog = built_catalog(None, base)
    questionnaires = list(catalog.questionnaires)
    direct = load_settings({"server": profile}, env={})
    seeded = [seed(direct, questionnaires, rounds=2, seed_value=n) for n in range(2)]
    patients = tmp_path / "patients.txt"
    patients.write_text("\n".join(s.patient for s in seeded), encoding="utf-8")
    responses = [ref.split("/")[1] for s in seeded for ref in s.responses]
    rules = [] if fault == "none" else [Rule("429", "POST", "DocumentReference", nth=(2, 3, 9))]
    state = tmp_path / "state.sqlite3"
    with FaultProxy(profile, FaultPlan(rules)) as proxy:
        options = SyncOptions(source=proxy.base_url, state_path=state, patients_file=patients)
        first = sync(proxied(proxy), options, catalog)
        # The rerun polls the patients the ledger knows (their responses, found by _id)
        again = sync(
            proxied(proxy),
            replace(options, patients_file=None, patients_from="ledger"),
            catalog,
        )
        exchanges = proxy.record()
        source_base = proxied(proxy).server
    assert source_base is not None
    assert first.ok and again.ok, (first.failed[:2], first.uncertain[:2])
    assert first.tally.written == len(responses) and first.tally.uncertain == 0
    assert again.tally.written == 0 and again.tally.unchanged == len(responses)
    posts = [e for e in exchanges if e.method == "POST" and e.forwarded]
    assert _overlap(posts) > 1, "the writes went one at a time"
    if fault == "429":
        assert len([e for e in exchanges if e.fault == "429"]) == 3
    with settings_module.make_client(direct) as client:
        notes: list[str] = []
        for s in seeded:
            found = client.request(
                "GET",
                "DocumentReference",
                params={"patient": s.patient.split("/")[1], "_count": "500"},
                headers={TEST_ACCESS_HEADER: "all"},
            ).body
            assert found is not None
            notes += [
                str(e["resource"]) + str(e["resource"].get("identifier"))
                for e in found.get("entry") or []
            ]
    ours = Counter()
    for rid in responses:
        key = derived_id(source_base, rid, "1", "note")
        ours[rid] = sum(1 for text in notes if key in text)
    duplicates = sum(n - 1 for n in ours.values() if n > 1)
    losses = sum(1 for n in ours.values() if n == 0)
    record_row(
        f"write-modes/oracle-like/ledger-only-concurrent/{fault}",
        stage="write-modes",
        faults={"429": 3} if fault == "429" else {},
        duplicates=duplicates,
        losses=losses,
        server="hapi oracle-like",
        write_mode="ledger-only, concurrent",
        fault=fault,
        uncertain=0,
    )
    assert duplicates == 0 and losses == 0, ours
