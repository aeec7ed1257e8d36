"""``python -m benchmarks``: measure every goal against its baseline, print one table.

Exits 1 when a goal is not met.  The sync goals need the HAPI server: it is found or
started through ``tests.hapi_server.ensure_server()`` (``RFHIR_HAPI_PORT`` picks the
port, ``RFHIR_TEST_SERVER`` another server); the scale part runs HAPI on PostgreSQL
(``scripts/postgres``); the modes part runs every EHR profile of that HAPI server and
Medplum's router (``tests.medplum_server.ensure_server()``, ``RFHIR_MEDPLUM_PORT``).
``--quick`` uses smaller data for a trial
run; its figures are noisier.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from benchmarks import build, memory, modes, scale, startup, summarize
from benchmarks import sync as sync_bench
from benchmarks.report import Row, table

PARTS = ("summarize", "memory", "sync", "startup", "build", "scale", "modes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--seed", type=int, default=2026, help="seed of the synthetic data")
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer repeats")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}"
    )
    args = parser.parse_args(argv)
    wanted = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(wanted) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    # Summaries are deterministic per seed; the run must not depend on a user's config.
    os.environ.pop("RFHIR_CONFIG", None)

    from benchmarks.data import worksheets

    questionnaires = worksheets()
    quick = args.quick

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    steps: dict[str, Callable[[], list[Row]]] = {
        "summarize": lambda: summarize.run(
            questionnaires, seed=args.seed, count=500 if quick else 3000
        ),
        "memory": lambda: memory.run(
            questionnaires,
            seed=args.seed,
            sizes=(2_000, 10_000) if quick else (10_000, 50_000, 100_000),
            say=say,
        ),
        "sync": lambda: sync_bench.run(
            worksheets(f"https://bench.rejection-fhir.org/{args.seed}/fhir"),
            seed=args.seed,
            count=150 if quick else 1000,  # the sync issue asks for 1,000 responses
            naive_count=50 if quick else 125,
            rounds=1 if quick else 3,
            say=say,
        ),
        "startup": lambda: startup.run(runs=5 if quick else 15, say=say),
        "build": lambda: build.run(say=say, repeat=1 if quick else 3),
        "scale": lambda: scale.run(
            worksheets(f"https://bench.rejection-fhir.org/{args.seed}/fhir"),
            seed=args.seed,
            count=120 if quick else 400,
            shards=2,
            rounds=1 if quick else 2,
            say=say,
        ),
        "modes": lambda: modes.run(
            worksheets(f"https://bench.rejection-fhir.org/{args.seed}/modes/fhir"),
            seed=args.seed,
            patients=2 if quick else 4,
            rounds=2 if quick else 3,  # nine responses a round per patient
            repeats=1 if quick else 3,
            say=say,
        ),
    }
    rows: list[Row] = []
    started = time.perf_counter()
    for part in PARTS:
        if part in wanted:
            say(f"{part} ...")
            rows.extend(steps[part]())
    print(table(rows))
    missed = [r.goal for r in rows if r.met is False]
    print(
        f"\n{len([r for r in rows if r.met])} goal(s) met, {len(missed)} not met "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
