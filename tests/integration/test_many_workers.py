"""Many workers, nothing lost: sync processes over shards and time windows of one HAPI
source, sharing one PostgreSQL state, killed (-9) at random, their leases stolen, restarted.

Shards: two time windows of the world's history ([t0, t1), [t1, t2), each with ``--until``)
and the incremental sync from t2; then the world's core-beliefs responses are amended and
the incremental shard runs again, so its notes supersede notes the windows wrote (the
ledger is shared).  Each worker is a separate ``rejection-fhir sync`` process.  A seeded
schedule kills workers (SIGKILL), takes a running worker's lease over (a new fencing
token, as a run does once the holder stalled past its expiry) and starts a rival on its shard (the victim's next ``record`` must be refused: exit 8, "lost"), and restarts
whatever did not finish.  The end state must hold exactly one note per response version
(the amended ones superseded), every other derived resource once, and the ledger every
version.  The table goes to the test output and test-artifacts/many-workers.md.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.sync.pgstate import PostgresState
from tests.faults.scenario import new_base
from tests.faults.world import KINDS, World, amend, end_state, expected_counts, make_world

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("RFHIR_CHAOS_SEED", "20261202"))
RESPONSES = 48
BATCH = 2
LEASE_TTL = 3.0
KILLS = 4
STEALS = 2
#: The whole test gives up after this long (every phase together).
DEADLINE_S = 420.0
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "many-workers.md"


@dataclass
class Shard:
    name: str
    since: str
    until: str | None = None
    done: bool = False


@dataclass
class Worker:
    shard: Shard
    process: subprocess.Popen[str]
    started: float
    stolen: bool = False


@dataclass
class Tally:
    runs: int = 0
    kills: int = 0
    steals: int = 0
    fenced: int = 0
    busy: int = 0
    #: Most worker processes running at once.
    peak: int = 0
    outputs: list[str] = field(default_factory=list)


def _instants(client: FhirClient, world: World) -> list[str]:
    """Each response's lastUpdated on the server, sorted."""
    found: list[str] = []
    ids = [qr["id"] for qr in world.qrs]
    for start in range(0, len(ids), 50):
        chunk = ",".join(ids[start : start + 50])
        for bundle in client.search_bundles(
            "QuestionnaireResponse", {"_id": chunk, "_count": "50"}
        ):
            found += [e["resource"]["meta"]["lastUpdated"] for e in bundle.get("entry") or []]
    return sorted(found)


def _start(shard: Shard, source: str, state: str, world: World, repo: Path) -> Worker:
    args = [
        sys.executable,
        "-m",
        "rejection_fhir",
        "sync",
        "--source-server",
        source,
        "--state",
        state,
        "--since",
        shard.since,
        "--batch-size",
        str(BATCH),
        "--lease-ttl",
        str(LEASE_TTL),
        "--wait",
        "1",
        "--worksheets",
        str(repo / "questionnaires"),
        "--base-url",
        world.canonical_base,
    ]
    if shard.until:
        args += ["--until", shard.until]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RFHIR_")}
    process = subprocess.Popen(
        args,
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Worker(shard, process, time.monotonic())


def _steal(state: str, shard: Shard, source: str) -> bool:
    """Take the shard's lease over, as another run does once the holder stalled past its
    expiry: a new fencing token.  The thief's lease runs out at once, so the rival
    worker started next takes the shard."""
    with psycopg.connect(state, autocommit=True) as db:
        changed = db.execute(
            "UPDATE sync_lease SET token = token + 1, holder = 'thief', "
            "expires_at = now() + interval '0.5 second' "
            "WHERE shard = %s AND source = %s AND expires_at > now()",
            (shard.name, source),
        ).rowcount
    return changed > 0


def _run_until_done(
    shards: list[Shard],
    *,
    source: str,
    state: str,
    world: World,
    repo: Path,
    rng: random.Random,
    tally: Tally,
    kills: int,
    steals: int,
    deadline: float,
) -> None:
    """Keep workers on every unfinished shard, with the seeded kills and steals, until each
    shard's run ends with exit 0."""
    running: list[Worker] = []
    try:
        while not all(s.done for s in shards):
            assert time.monotonic() < deadline, "the workers did not finish in time"
            for worker in list(running):
                code = worker.process.poll()
                if code is None:
                    continue
                running.remove(worker)
                out, err = worker.process.communicate()
                tally.outputs.append(f"[{worker.shard.name}] exit {code}: {err.strip()[-300:]}")
                if code == 0:
                    worker.shard.done = True
                elif code == -signal.SIGKILL:
                    pass
                elif code == 8 and "lost" in err:
                    tally.fenced += 1
                elif code == 8:
                    tally.busy += 1
                else:
                    pytest.fail(f"a worker on {worker.shard.name} exited {code}:\n{out}\n{err}")
            # One worker per unfinished shard (a rival only when a lease was stolen).
            for shard in shards:
                if not shard.done and not any(w.shard is shard and not w.stolen for w in running):
                    running.append(_start(shard, source, state, world, repo))
                    tally.runs += 1
            tally.peak = max(tally.peak, len(running))
            mature = [w for w in running if time.monotonic() - w.started > 1.5 and not w.stolen]
            if mature and tally.kills < kills and rng.random() < 0.25:
                victim = rng.choice(mature)
                victim.process.send_signal(signal.SIGKILL)
                tally.kills += 1
            elif mature and tally.steals < steals and rng.random() < 0.25:
                victim = rng.choice(mature)
                if _steal(state, victim.shard, source):
                    victim.stolen = True  # it runs on; a rival takes the shard over
                    tally.steals += 1
                    running.append(_start(victim.shard, source, state, world, repo))
                    tally.runs += 1
            time.sleep(0.2)
    finally:
        for worker in running:
            worker.process.kill()
            worker.process.communicate()


def test_many_workers_lose_nothing_and_fenced_commits_are_refused(
    repo, fhir_server, direct_settings, direct, pg_state
):
    rng = random.Random(SEED)
    deadline = time.monotonic() + DEADLINE_S
    world = make_world(repo, direct_settings, direct, new_base(), responses=RESPONSES, seed=SEED)
    try:
        instants = sorted(set(_instants(direct, world)))
        assert len(instants) >= 6, instants
        t1, t2 = instants[len(instants) // 3], instants[2 * len(instants) // 3]
        shards = [
            Shard(f"window {world.since}..{t1}", world.since, t1),
            Shard(f"window {t1}..{t2}", t1, t2),
            Shard("", t2),  # the incremental sync
        ]
        PostgresState(pg_state).close()  # the schema, before the first steal looks for a lease
        tally = Tally()
        common = {"source": fhir_server, "state": pg_state, "world": world, "repo": repo}
        _run_until_done(
            shards, rng=rng, tally=tally, kills=KILLS, steals=STEALS, deadline=deadline, **common
        )
        # Amendments: synced by the incremental shard, superseding notes the windows wrote.
        amended = set(amend(direct, world))
        incremental = shards[-1]
        incremental.done = False
        _run_until_done(
            [incremental],
            rng=rng,
            tally=tally,
            kills=KILLS + 1,
            steals=STEALS + 1,
            deadline=deadline,
            **common,
        )

        end = end_state(direct, world, fhir_server)
        want = expected_counts(world)
        duplicates = end.duplicates() + max(0, end.devices - 1)
        losses = sum(max(0, want[kind] - len(end.counts[kind])) for kind in KINDS)
        notes = end.total("DocumentReference")
        superseded = sum(
            1
            for key, fact in end.facts.items()
            if key.startswith("DocumentReference") and '"superseded"' in fact
        )
        with PostgresState(pg_state) as state:
            ledger = {
                (e.response_id, e.response_version)
                for e in state.entries(source=fhir_server, outcome="written")
            }
        versions = len(world.qrs) + len(amended)
        table = "\n".join(
            [
                "| workers (peak) | shards | windows | runs | kills | lease steals | responses "
                "| versions | notes | superseded | duplicates | losses | fenced commits refused "
                "| ledger rows |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
                "| --- |",
                f"| {tally.peak} | {len(shards)} | 2 | {tally.runs} | {tally.kills} | "
                f"{tally.steals} | {len(world.qrs)} | {versions} | {notes} | {superseded} | "
                f"{duplicates} | {losses} | {tally.fenced} | {len(ledger)} |",
            ]
        )
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        ARTIFACT.write_text(
            f"# Many workers on one PostgreSQL state (seed {SEED})\n\n{table}\n\n"
            f"Busy exits (shard held, queued again): {tally.busy}\n",
            encoding="utf-8",
        )
        print(f"\n{table}\n(busy exits: {tally.busy}; written to {ARTIFACT})")
        assert duplicates == 0, tally.outputs[-10:]
        assert losses == 0, (want, {k: len(v) for k, v in end.counts.items()})
        assert notes == versions and superseded == len(amended)
        assert len(ledger) == versions
        assert tally.kills >= 1 and tally.steals >= 1
        assert tally.fenced >= 1, "no fenced-out worker tried to record after its lease was taken"
    finally:
        world.close()
