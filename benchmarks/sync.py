"""Sync throughput on the HAPI server, against two baselines from the same run.

* **curl**: the very transaction Bundles our sync would post for N responses (captured
  from a dry run), posted with ``curl`` (a subprocess) at the same concurrency.  The
  server does all the work and the client none: the server's own ceiling.
* **naive**: the same dry run (fetch, validate, summarise, plan), then one HTTP request
  per resource, one after another, as a first script would do it.
* **sync**: :func:`rejection_fhir.sync.run.sync` with its defaults for the command line.

Each measurement writes fresh data: new responses (so new derived identifiers) loaded
just before it, found through a ``since`` taken from the server's clock.  Measurements
take turns over several rounds, and the best throughput of each counts, so that a load
spike from other work on the machine does not decide a ratio.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.report import Row

JsonDict = dict[str, Any]

#: Transactions in flight: what `rejection-fhir sync` uses unless told otherwise.
CONCURRENCY = 2
BATCH = 50
#: The port of the benchmark's own HAPI server (RFHIR_HAPI_PORT overrides it).
BENCH_PORT = "8095"


@dataclass
class World:
    since: str
    count: int


class Bench:
    def __init__(self, server: str, questionnaires: Sequence[Mapping[str, Any]], seed: int):
        from rejection_fhir import settings as settings_module
        from rejection_fhir.settings import load_settings
        from rejection_fhir.worksheet.synthetic import ResponseFactory

        self.server = server
        self.questionnaires = questionnaires
        self.settings = load_settings({"server": server}, env={})
        self.client = settings_module.make_client(self.settings)
        self.factory = ResponseFactory(seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="rfhir-bench-"))
        self.run_id = uuid.uuid4().hex[:8]
        self.loads = 0

    def close(self) -> None:
        self.client.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- data ---------------------------------------------------------------------------

    def load(self, count: int) -> World:
        """``count`` fresh responses from five fresh patients; ``since`` precedes them all."""
        from rejection_fhir.worksheet.synthetic import patient

        self.loads += 1
        subjects = []
        since = None
        for i in range(5):
            created = self.client.create(
                patient(f"bench-{self.run_id}-{self.loads}-{i}", given=f"Bench{i}")
            )
            subjects.append(f"Patient/{created.id}")
            if since is None:
                since = self.client.read("Patient", str(created.id))["meta"]["lastUpdated"]
        responses = list(self.factory.many(self.questionnaires, subjects, count))
        for start in range(0, count, 100):
            self.client.transaction(
                {
                    "resourceType": "Bundle",
                    "type": "transaction",
                    "entry": [
                        {
                            "resource": qr,
                            "request": {"method": "POST", "url": "QuestionnaireResponse"},
                        }
                        for qr in responses[start : start + 100]
                    ],
                },
                sensitive=True,
            )
        assert since is not None
        return World(since, count)

    def _options(self, world: World, **changes: Any) -> Any:
        from rejection_fhir.sync.run import SyncOptions

        return SyncOptions(
            source=self.server,
            state_path=self.tmp / f"state-{uuid.uuid4().hex[:8]}.sqlite3",
            since=world.since,
            batch_size=BATCH,
            **changes,
        )

    def planned(self, world: World) -> list[JsonDict]:
        """The transaction Bundles a sync would post for ``world`` (a dry run)."""
        from rejection_fhir.sync.run import sync
        from rejection_fhir.worksheet.catalog import catalog_of

        bundles: list[JsonDict] = []
        report = sync(
            self.settings,
            self._options(world, dry_run=True),
            catalog_of(self.questionnaires),
            on_transaction=bundles.append,
        )
        _check(report, world, "dry run")
        return bundles

    # -- the three ways -----------------------------------------------------------------

    def ours(self, world: World) -> float:
        from rejection_fhir.sync.run import sync
        from rejection_fhir.worksheet.catalog import catalog_of

        started = time.perf_counter()
        report = sync(
            self.settings,
            self._options(world, concurrency=CONCURRENCY),
            catalog_of(self.questionnaires),
        )
        elapsed = time.perf_counter() - started
        _check(report, world, "sync")
        return world.count / elapsed

    def curl(self, world: World, parallel: int = CONCURRENCY) -> float:
        from rejection_fhir.fhir.client import _dumps

        folder = self.tmp / f"bundles-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        files = []
        for n, bundle in enumerate(self.planned(world)):
            path = folder / f"{n:05d}.json"
            path.write_bytes(_dumps(bundle))
            files.append(path)
        command = ["curl", "--silent", "--parallel", "--parallel-max", str(parallel)]
        for n, path in enumerate(files):
            if n:
                command.append("--next")
            command += [
                "--output",
                "/dev/null",
                "--write-out",
                "%{http_code}\\n",
                "--header",
                "Content-Type: application/fhir+json",
                "--header",
                "Accept: application/fhir+json",
                "--header",
                "Expect:",
                "--data-binary",
                f"@{path}",
                self.server,
            ]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        codes = result.stdout.split()
        if result.returncode != 0 or codes != ["200"] * len(files):
            raise RuntimeError(f"curl baseline failed (exit {result.returncode}): {codes[:5]}")
        return world.count / elapsed

    def naive(self, world: World) -> float:
        """Dry run, then each resource in its own request, strictly one after another."""
        import requests

        started = time.perf_counter()
        bundles = self.planned(world)
        session = requests.Session()
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        for bundle in bundles:
            assigned: dict[str, str] = {}
            for entry in bundle["entry"]:
                body = _resolve(entry["resource"], assigned)
                request = entry["request"]
                extra = {}
                if request.get("ifNoneExist"):
                    extra["If-None-Exist"] = request["ifNoneExist"]
                if request.get("ifMatch"):
                    extra["If-Match"] = request["ifMatch"]
                answer = session.request(
                    request["method"],
                    f"{self.server}/{request['url']}",
                    data=body,
                    headers={**headers, **extra},
                    timeout=60,
                )
                answer.raise_for_status()
                location = answer.headers.get("Location") or answer.headers.get(
                    "Content-Location", ""
                )
                found = re.search(r"([A-Z][A-Za-z]+/[^/]+)/_history", location)
                if found:
                    assigned[entry["fullUrl"]] = found.group(1)
        session.close()
        return world.count / (time.perf_counter() - started)


def _resolve(resource: JsonDict, assigned: Mapping[str, str]) -> bytes:
    from rejection_fhir.fhir.client import _dumps

    text = _dumps(resource)
    for urn, reference in assigned.items():
        text = text.replace(urn.encode(), reference.encode())
    return text


def _check(report: Any, world: World, what: str) -> None:
    written = report.tally.written
    if written != world.count or not report.ok:
        raise RuntimeError(
            f"{what} wrote {written} of {world.count} responses "
            f"(rejected {report.tally.rejected}, failed {report.tally.failed}, "
            f"not ours {report.tally.skipped}); the measurement would be meaningless"
        )


def run(
    questionnaires: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    count: int,
    naive_count: int,
    rounds: int,
    say: Any = print,
) -> list[Row]:
    from tests.hapi_server import ensure_server

    if not os.environ.get("RFHIR_TEST_SERVER"):
        # A server of the benchmark's own by default: others' tests do not load it while it
        # measures, and its H2 database lives in a file, where thousands of writes cannot
        # exhaust the heap (an in-memory H2 that runs out of heap loses its tables).
        os.environ.setdefault("RFHIR_HAPI_PORT", BENCH_PORT)
        os.environ.setdefault("RFHIR_HAPI_DB", "file")
    server = ensure_server()
    say(f"sync: HAPI at {server}; {rounds} rounds of {count} responses (naive: {naive_count})")
    if shutil.which("curl") is None:
        raise RuntimeError("curl is needed for the sync baseline")
    bench = Bench(server, questionnaires, seed)
    best = {"curl": 0.0, "sync": 0.0, "naive": 0.0}
    try:
        bench.ours(bench.load(BATCH))  # warm-up: JIT on the server, the tool's Device exists
        for n in range(rounds):
            for way, size in (("curl", count), ("sync", count), ("naive", naive_count)):
                throughput = getattr(bench, "ours" if way == "sync" else way)(bench.load(size))
                best[way] = max(best[way], throughput)
                say(f"  round {n + 1}: {way:5s} {throughput:7.1f} responses/s")
    finally:
        bench.close()
    ceiling = best["curl"] / best["naive"]
    return [
        Row(
            "sync vs naive loop",
            f"{best['sync']:.1f} resp/s",
            f"{best['naive']:.1f} resp/s",
            best["sync"] / best["naive"],
            ">= 10",
            best["sync"] / best["naive"] >= 10,
            "naive: the same writes, one request per resource, in order; "
            f"ceiling: curl posting the bundles is {ceiling:.2f}x naive, and no client "
            "outruns the server",
        ),
        Row(
            "  server ceiling vs naive",
            f"{best['curl']:.1f} resp/s",
            f"{best['naive']:.1f} resp/s",
            ceiling,
            "",
            None,
        ),
        Row(
            "sync vs curl bundles",
            f"{best['sync']:.1f} resp/s",
            f"{best['curl']:.1f} resp/s",
            best["sync"] / best["curl"],
            ">= 0.70",
            best["sync"] / best["curl"] >= 0.70,
            f"both with {CONCURRENCY} transactions of {BATCH} responses in flight",
        ),
    ]
