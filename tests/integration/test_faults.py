"""Nothing lost, nothing duplicated: publish and sync through a fault-injecting proxy.

A proxy (tests/faults/proxy.py) sits between our client and HAPI and injects, by schedule
or at random from a seed: 429 with Retry-After; 500, 502, 503 and 504; answers so slow they
pass the client's timeout; connection resets in the middle of a body; truncated JSON; and
answers lost after the server committed (connection closed, or a gateway's 502).  Under
each, the end state on HAPI must equal the fault-free end state, entry by entry.

The fault-free state comes from a twin world (same seed, same scenario) synced through a
proxy that injects nothing; its own counts are checked against what the responses call
for, computed from the responses themselves.

Reproduce a random mix with ``RFHIR_FAULT_SEEDS=1234 pytest tests/integration/test_faults.py
-k random``.  Every row of the closing table lands in test-artifacts/faults/results.jsonl
(``python -m tests.faults.table``).
"""

from __future__ import annotations

import os
import time
import uuid

import pytest

from rejection_fhir import settings as settings_module
from rejection_fhir.commands.build import build_all
from rejection_fhir.commands.publish import publish
from rejection_fhir.errors import ExitCode, ServerUnavailableError
from rejection_fhir.publish import differences
from rejection_fhir.sync.run import SyncOptions, sync
from rejection_fhir.worksheet.catalog import catalog_from_build
from tests.faults.proxy import AFTER_COMMIT, FAULTS, FaultPlan, FaultProxy, Rule
from tests.faults.scenario import (
    RESPONSES,
    TIMEOUT,
    Outcome,
    new_base,
    proxied,
    run_scenario,
)
from tests.faults.table import record_row
from tests.faults.world import (
    compare,
    describe,
    end_state,
    ledger_written,
    published_counts,
    seed_cursor,
)

pytestmark = pytest.mark.integration

BATCH = 6  # four transactions in round 1, one for the amendments in round 2
SLOW = TIMEOUT + 1.0
#: Faults the client only notices by its read timeout.
TIMED_OUT = ("slow", "late")
#: Faults whose Retry-After the client waits for.
WAITED_ON = ("429", "503")
RANDOM_SEEDS = [int(s) for s in os.environ.get("RFHIR_FAULT_SEEDS", "20261126,7").split(",") if s]
RANDOM_RATE = 0.3


def check_against_baseline(
    outcome: Outcome, baseline: Outcome, proxy: FaultProxy, label: str, *, stage: str
) -> None:
    injected = proxy.injected()
    for phase, (got, want) in enumerate(zip(outcome.states, baseline.states, strict=True), 1):
        comparison = compare(got, want)
        if phase == len(outcome.states):
            record_row(
                label,
                stage=stage,
                faults=proxy.tally(),
                duplicates=comparison.duplicates,
                losses=comparison.losses,
                note="" if comparison.equal else "; ".join(comparison.lines[:3]),
            )
        assert comparison.equal, (
            f"{label}: after sync round {phase}, the end state differs from the fault-free one: "
            f"{comparison.duplicates} duplicate(s), {comparison.losses} loss(es), "
            f"{comparison.extras} extra, {comparison.changed} changed\n"
            + "\n".join(comparison.lines)
            + f"\nfaults injected:\n{describe(injected)}"
        )
    written = ledger_written(outcome.state_path, proxy.base_url)
    assert len(written) == RESPONSES + len(outcome.world.amended), label
    assert proxy.unsafe_posts() == [], f"{label}: the sync sent a request unsafe to retry"


def wait_quiet(proxy: FaultProxy) -> None:
    """Let late "slow" answers finish, so the record is complete."""
    deadline = time.monotonic() + SLOW + 2
    while proxy.in_flight() and time.monotonic() < deadline:
        time.sleep(0.1)


# --------------------------------------------------------------------------- sync


def sync_schedule(fault: str) -> list[Rule]:
    """Every kind of request the sync makes gets the fault at least once; the transaction
    twice in a row once, and the amendments' transaction (it carries an If-Match update).

    A fault that costs a client timeout is given to fewer requests: a page read, the first
    transaction, and the amendments' (6th POST once the first was retried); one whose
    Retry-After costs a second, to the search, the first transaction twice in a row, the
    amendments' and the read of the note they supersede.
    """
    if fault in TIMED_OUT:
        return [
            Rule(fault, "GET", r"\?_getpages=.*", nth=(2,)),
            Rule(fault, "POST", "", nth=(1, 6)),
        ]
    if fault in WAITED_ON:
        return [
            Rule(fault, "GET", r"QuestionnaireResponse\?.*", nth=(1,)),
            Rule(fault, "POST", "", nth=(1, 2, 7)),
            Rule(fault, "GET", r"DocumentReference/.*", nth=(1,)),
        ]
    return [
        Rule(fault, "GET", "metadata", nth=(1,)),
        Rule(fault, "GET", r"QuestionnaireResponse\?.*", nth=(1,)),
        Rule(fault, "GET", r"\?_getpages=.*", nth=(2,)),
        Rule(fault, "POST", "", nth=(1, 3, 4, 8)),
        Rule(fault, "GET", r"DocumentReference/.*", nth=(1,)),
    ]


def scheduled(rules: list[Rule]) -> int:
    return sum(len(rule.nth) for rule in rules)


@pytest.mark.parametrize("fault", FAULTS)
def test_sync_under_each_fault_equals_the_fault_free_state(
    fault, fhir_server, direct, fresh_world, baseline, tmp_path
):
    rules = sync_schedule(fault)
    with FaultProxy(fhir_server, FaultPlan(rules), slow_seconds=SLOW) as proxy:
        outcome = run_scenario(proxy, fresh_world, direct, tmp_path / "state.sqlite3", batch=BATCH)
        wait_quiet(proxy)
        injected = proxy.injected()
        assert len(injected) == scheduled(rules), f"the schedule ran: {describe(injected)}"
        if fault in AFTER_COMMIT:
            posts = [e for e in injected if e.method == "POST"]
            assert posts and all(e.committed for e in posts), "the server committed, then lost"
        for report in outcome.reports:
            assert report.ok, (fault, report.failed[:2], describe(injected))
        assert [r.tally.written for r in outcome.reports] == [RESPONSES, len(fresh_world.amended)]
        check_against_baseline(outcome, baseline, proxy, f"sync/{fault}", stage="sync")


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_sync_under_a_random_mix_equals_the_fault_free_state(
    seed, fhir_server, direct, fresh_world, baseline, tmp_path
):
    plan = FaultPlan.random(seed=seed, rate=RANDOM_RATE)
    with FaultProxy(fhir_server, plan, slow_seconds=SLOW) as proxy:
        outcome = run_scenario(proxy, fresh_world, direct, tmp_path / "state.sqlite3", batch=BATCH)
        wait_quiet(proxy)
        assert proxy.injected(), f"seed {seed}: the mix injected nothing"
        for report in outcome.reports:
            assert report.ok, (f"seed {seed}", report.failed[:2], describe(proxy.injected()))
        try:
            check_against_baseline(
                outcome, baseline, proxy, f"sync/random seed={seed}", stage="sync"
            )
        except AssertionError as exc:
            raise AssertionError(
                f"random mix, seed {seed} (RFHIR_FAULT_SEEDS={seed}): {exc}"
            ) from None


def test_sync_that_gives_up_says_so_and_a_later_run_completes(
    fhir_server, direct, fresh_world, baseline, tmp_path
):
    """Every transaction's answer lost after the commit: the client gives up on the first
    batch (which the server holds, once); a fault-free rerun completes the state."""
    plan = FaultPlan([Rule("drop", "POST", "", nth=())])
    state_path = tmp_path / "state.sqlite3"
    with FaultProxy(fhir_server, plan) as proxy:
        settings = proxied(proxy, retries=2)
        seed_cursor(state_path, proxy.base_url, fresh_world.since)
        options = SyncOptions(source=proxy.base_url, state_path=state_path, batch_size=BATCH)
        with pytest.raises(ServerUnavailableError) as caught:
            sync(settings, options, catalog_from_build(fresh_world.built))
        error = caught.value
        assert error.exit_code == ExitCode.SERVER_UNAVAILABLE
        assert "transaction Bundle" in str(error) and "gave up after 3 attempts" in str(error)
        assert "hint:" in str(error)
        posts = [e for e in proxy.record() if e.method == "POST"]
        assert len(posts) == 3 and all(e.committed for e in posts)
        partial = end_state(direct, fresh_world, proxy.base_url)
        assert partial.duplicates() == 0, "three commits of one batch, each written once"
        assert partial.total("DocumentReference") == BATCH
        assert ledger_written(state_path, proxy.base_url) == set(), "nothing recorded as done"

        proxy.plan = FaultPlan()  # the same proxy (same source URL), now fault-free
        report = sync(settings, options, catalog_from_build(fresh_world.built))
        assert report.ok and report.tally.written == RESPONSES
        done = end_state(direct, fresh_world, proxy.base_url)
        comparison = compare(done, baseline.states[0])
        record_row(
            "sync/gives up (drop every transaction), then reruns",
            stage="sync",
            faults={"drop": len(posts)},
            duplicates=comparison.duplicates,
            losses=comparison.losses,
        )
        assert comparison.equal, "\n".join(comparison.lines)


# --------------------------------------------------------------------------- publish


@pytest.fixture
def built_resources(repo):
    return lambda base: build_all(repo / "questionnaires", base_url=base)[0].resources


def publish_schedule(fault: str) -> list[Rule]:
    if fault in TIMED_OUT or fault in WAITED_ON:
        return [
            Rule(fault, "GET", r"(Questionnaire|CodeSystem|ValueSet)\?.*", nth=(3,)),
            Rule(fault, "POST", "", nth=(1,)),
        ]
    return [
        Rule(fault, "GET", "metadata", nth=(1,)),
        Rule(fault, "GET", r"(Questionnaire|CodeSystem|ValueSet)\?.*", nth=(1, 9)),
        Rule(fault, "POST", "", nth=(1, 2)),
    ]


def check_published(direct, resources, proxy: FaultProxy, label: str) -> None:
    held = published_counts(direct, resources)
    duplicates = sum(n - 1 for n in held.values() if n > 1)
    losses = sum(1 for n in held.values() if n == 0)
    changed = []
    for resource in resources:
        if held[f"{resource['resourceType']} {resource['url']}|{resource['version']}"] == 1:
            (server_copy,) = direct.search(
                resource["resourceType"], {"url": resource["url"], "version": resource["version"]}
            )
            if differences(resource, server_copy):
                changed.append(resource["url"])
    record_row(label, stage="publish", faults=proxy.tally(), duplicates=duplicates, losses=losses)
    assert (duplicates, losses, changed) == (0, 0, []), (
        f"{label}: {duplicates} duplicate(s), {losses} loss(es), changed {changed}\n"
        + "\n".join(f"  {k}: {n}" for k, n in held.items() if n != 1)
        + f"\nfaults injected:\n{describe(proxy.injected())}"
    )
    assert proxy.unsafe_posts() == [], f"{label}: publish sent a request unsafe to retry"


@pytest.mark.parametrize("fault", FAULTS)
def test_publish_under_each_fault_publishes_everything_once(
    fault, repo, fhir_server, direct, built_resources
):
    base = new_base()
    resources = built_resources(base)
    rules = publish_schedule(fault)
    with FaultProxy(fhir_server, FaultPlan(rules), slow_seconds=SLOW) as proxy:
        report = publish(repo / "questionnaires", proxied(proxy), base_url=base)
        wait_quiet(proxy)
        assert len(proxy.injected()) == scheduled(rules), describe(proxy.injected())
        assert len(report.results) == len(resources)
        check_published(direct, resources, proxy, f"publish/{fault}")


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_publish_under_a_random_mix_publishes_everything_once(
    seed, repo, fhir_server, direct, built_resources
):
    base = new_base()
    resources = built_resources(base)
    plan = FaultPlan.random(seed=seed, rate=RANDOM_RATE)
    with FaultProxy(fhir_server, plan, slow_seconds=SLOW) as proxy:
        publish(repo / "questionnaires", proxied(proxy), base_url=base)
        wait_quiet(proxy)
        assert proxy.injected(), f"seed {seed}: the mix injected nothing"
        try:
            check_published(direct, resources, proxy, f"publish/random seed={seed}")
        except AssertionError as exc:
            raise AssertionError(
                f"random mix, seed {seed} (RFHIR_FAULT_SEEDS={seed}): {exc}"
            ) from None


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_publish_that_gives_up_says_so_and_a_later_run_completes(
    fault, repo, fhir_server, direct, built_resources
):
    base = new_base()
    resources = built_resources(base)
    with FaultProxy(fhir_server, FaultPlan([Rule(fault, "POST", "", nth=())])) as proxy:
        with pytest.raises(ServerUnavailableError) as caught:
            publish(repo / "questionnaires", proxied(proxy, retries=2), base_url=base)
        assert caught.value.exit_code == ExitCode.SERVER_UNAVAILABLE
        assert "gave up after 3 attempts" in str(caught.value)
        held = published_counts(direct, resources)
        expected_now = 1 if fault == "drop" else 0  # committed-then-lost, or never reached
        assert set(held.values()) == {expected_now}, held
        proxy.plan = FaultPlan()
        publish(repo / "questionnaires", proxied(proxy), base_url=base)
        check_published(
            direct, resources, proxy, f"publish/gives up ({fault} every time), then reruns"
        )


def test_a_plain_create_is_not_retried_blindly(fhir_server, direct):
    """The one non-idempotent write the client has (seed's plain POST): an answer lost after
    the commit is reported, not retried into a second copy."""
    from rejection_fhir.worksheet.synthetic import patient

    marker = f"fault-{uuid.uuid4().hex[:10]}"
    with FaultProxy(fhir_server, FaultPlan([Rule("drop", "POST", "Patient", nth=())])) as proxy:
        with (
            settings_module.make_client(proxied(proxy)) as client,
            pytest.raises(ServerUnavailableError, match="not retried") as caught,
        ):
            client.create(patient(marker))
        assert "may already have applied it" in str(caught.value)
        posts = [e for e in proxy.record() if e.method == "POST"]
        assert len(posts) == 1 and posts[0].committed and posts[0].retry_safe is False
    held = list(
        direct.search(
            "Patient",
            {"identifier": f"https://rejection-fhir.org/fhir/sid/synthetic-patient|{marker}"},
        )
    )
    assert len(held) == 1


def test_the_comparison_sees_a_duplicate_a_loss_and_a_change(
    fhir_server, direct, fresh_world, baseline, tmp_path
):
    """The harness itself: a note written twice, a Provenance lost and an Observation
    changed must each show, or the tests above could not fail."""
    with FaultProxy(fhir_server) as proxy:
        outcome = run_scenario(proxy, fresh_world, direct, tmp_path / "state.sqlite3", batch=BATCH)
        assert compare(outcome.states[1], baseline.states[1]).equal
        subject = fresh_world.patients[0]
        (note, *_) = direct.search("DocumentReference", {"subject": subject})
        direct.create({k: v for k, v in note.items() if k not in ("id", "meta")})
        (provenance,) = direct.search("Provenance", {"target": f"DocumentReference/{note['id']}"})
        direct.delete("Provenance", provenance["id"])
        (observation, *_) = direct.search("Observation", {"subject": subject})
        observation["status"] = "cancelled"
        direct.update(observation)
        comparison = compare(end_state(direct, fresh_world, proxy.base_url), baseline.states[1])
    assert (comparison.duplicates, comparison.losses, comparison.changed) == (1, 1, 1), (
        comparison.lines
    )
