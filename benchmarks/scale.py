"""Scaling out: N shards on N workers against one, on HAPI backed by PostgreSQL, sharing a
PostgreSQL sync state; and the state store's own cost per response.

* **shards**: ``count`` fresh responses synced once by one ``rejection-fhir sync`` process,
  and once (fresh responses again) by N processes, each a time window of them
  (``--since``/``--until``, its own shard) over one PostgreSQL state.  Responses per second
  from the first process's start to the last one's end.  Beside it, the server's ceiling:
  the same transaction Bundles posted by curl with as many in flight as the N workers keep.
* **state**: what the state store costs per response, PostgreSQL against SQLite: the
  ``seen`` lookup every fetched response makes, and the ``record`` of each batch of 50
  (ledger rows and cursor in one transaction; on PostgreSQL with the lease's fencing check).

Each figure is the best of its rounds, so that a load spike elsewhere on the machine does
not decide a ratio.  HAPI runs on its own port (``RFHIR_HAPI_PORT`` overrides it) with
``RFHIR_HAPI_DB=postgres``; PostgreSQL comes from ``scripts/postgres`` (``RFHIR_PG_PORT``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import Row
from benchmarks.sync import BATCH, CONCURRENCY, Bench, World

#: The port of this part's own HAPI server on PostgreSQL (RFHIR_HAPI_PORT overrides it).
SCALE_PORT = "8096"
REPO = Path(__file__).resolve().parent.parent


def _worker(
    server: str, state: str, base: str, since: str, until: str | None
) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        "-m",
        "rejection_fhir",
        "sync",
        "--source-server",
        server,
        "--state",
        state,
        "--since",
        since,
        "--batch-size",
        str(BATCH),
        "--concurrency",
        str(CONCURRENCY),
        "--worksheets",
        str(REPO / "questionnaires"),
        "--base-url",
        base,
    ]
    if until:
        args += ["--until", until]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RFHIR_")}
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _windows(bench: Bench, world: World, shards: int) -> list[tuple[str, str | None]]:
    """``shards`` time windows over the world's responses, by their lastUpdated."""
    instants: set[str] = set()
    for bundle in bench.client.search_bundles(
        "QuestionnaireResponse", {"_lastUpdated": f"ge{world.since}", "_count": "500"}
    ):
        instants |= {e["resource"]["meta"]["lastUpdated"] for e in bundle.get("entry") or []}
    ordered = sorted(instants)
    cuts = [ordered[len(ordered) * i // shards] for i in range(1, shards)]
    starts = [world.since, *cuts]
    ends: list[str | None] = [*cuts, None]
    return list(zip(starts, ends, strict=True))


def _sharded(bench: Bench, world: World, state: str, base: str, shards: int) -> float:
    windows = _windows(bench, world, shards) if shards > 1 else [(world.since, None)]
    started = time.perf_counter()
    workers = [_worker(bench.server, state, base, since, until) for since, until in windows]
    written = 0
    for worker in workers:
        out, err = worker.communicate()
        if worker.returncode != 0:
            raise RuntimeError(f"a sync worker exited {worker.returncode}: {err.strip()[-500:]}")
        written += int(out.rsplit("written ", 1)[1].split()[0])
    elapsed = time.perf_counter() - started
    if written != world.count:
        raise RuntimeError(f"{shards} worker(s) wrote {written} of {world.count} responses")
    return world.count / elapsed


def _state_cost(state: Any, responses: int) -> float:
    """Seconds per response: one ``seen`` per response, one ``record`` per batch."""
    from rejection_fhir.sync.state import LedgerEntry

    source = f"https://bench.example/{uuid.uuid4().hex[:8]}/fhir"
    state.cursor(source)
    started = time.perf_counter()
    for start in range(0, responses, BATCH):
        batch = []
        for n in range(start, min(start + BATCH, responses)):
            rid = f"qr-{n}"
            state.seen(source, rid, "1")
            batch.append(
                LedgerEntry(
                    source,
                    rid,
                    "1",
                    "written",
                    "https://bench.example/Questionnaire/q|1",
                    [f"DocumentReference/{n}", f"Observation/{n}", f"Provenance/{n}"],
                    [],
                )
            )
        state.record(batch, cursor=(source, f"2026-01-01T00:00:{start % 60:02d}Z"))
    return (time.perf_counter() - started) / responses


def run(
    questionnaires: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    count: int,
    shards: int,
    rounds: int,
    say: Any = print,
) -> list[Row]:
    from tests.hapi_server import ensure_server
    from tests.postgres_server import ensure_postgres, fresh_database

    from rejection_fhir.sync.state import open_state

    admin = ensure_postgres()
    if not os.environ.get("RFHIR_TEST_SERVER"):
        os.environ.setdefault("RFHIR_HAPI_PORT", SCALE_PORT)
        os.environ.setdefault("RFHIR_HAPI_DB", "postgres")
    server = ensure_server()
    base = f"https://bench.rejection-fhir.org/{seed}/fhir"
    say(f"scale: HAPI at {server}; {rounds} rounds of {count} responses, 1 vs {shards} shards")
    bench = Bench(server, questionnaires, seed)
    best = {"one": 0.0, "many": 0.0, "curl": 0.0}
    try:
        bench.ours(bench.load(BATCH))  # warm-up: JIT on the server, the tool's Device exists
        for n in range(rounds):
            state = fresh_database(admin, f"bench_scale_{n}")
            for way in ("one", "many", "curl"):
                world = bench.load(count)
                if way == "curl":
                    throughput = bench.curl(world, parallel=shards * CONCURRENCY)
                else:
                    throughput = _sharded(bench, world, state, base, 1 if way == "one" else shards)
                best[way] = max(best[way], throughput)
                say(f"  round {n + 1}: {way:4s} {throughput:7.1f} responses/s")
    finally:
        bench.close()

    cost = {"sqlite": float("inf"), "postgres": float("inf")}
    tmp = Path(bench.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    for n in range(rounds):
        now: dict[str, float] = {}
        for store, location in (
            ("sqlite", tmp / f"state-{n}.sqlite3"),
            ("postgres", fresh_database(admin, f"bench_state_{n}")),
        ):
            with open_state(location) as state:
                now[store] = _state_cost(state, 500 if count < 500 else 2000)
            cost[store] = min(cost[store], now[store])
        say(
            f"  round {n + 1}: state per response: sqlite {now['sqlite'] * 1e6:.0f} us, "
            f"postgres {now['postgres'] * 1e6:.0f} us"
        )
    per_response_sync = 1.0 / best["one"]
    return [
        Row(
            f"{shards} shards on {shards} workers vs 1",
            f"{best['many']:.1f} resp/s",
            f"{best['one']:.1f} resp/s",
            best["many"] / best["one"],
            "",
            None,
            f"HAPI on PostgreSQL, one PostgreSQL sync state; each worker a process with "
            f"{CONCURRENCY} transactions of {BATCH} in flight; the server's ceiling (curl, "
            f"{shards * CONCURRENCY} in flight) is {best['curl']:.1f} resp/s",
        ),
        Row(
            f"  {shards} workers vs the server's ceiling",
            f"{best['many']:.1f} resp/s",
            f"{best['curl']:.1f} resp/s",
            best["many"] / best["curl"],
            "",
            None,
        ),
        Row(
            "state per response: PostgreSQL vs SQLite",
            f"{cost['postgres'] * 1e6:.0f} us",
            f"{cost['sqlite'] * 1e6:.0f} us",
            cost["postgres"] / cost["sqlite"],
            "",
            None,
            f"one seen() per response and one record() per {BATCH}; PostgreSQL's is "
            f"{cost['postgres'] / per_response_sync:.1%} of a response's sync time on 1 worker",
        ),
    ]
