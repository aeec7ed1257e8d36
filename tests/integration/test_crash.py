"""Crash and resume: ``rejection-fhir sync`` killed with SIGKILL, then run again.

The sync runs as a real subprocess (``python -m rejection_fhir sync``) through the fault
proxy.  It is killed at seeded random points: while the server has committed a
transaction whose answer the proxy holds back (between the server's commit and the ledger
and cursor update), before a transaction reaches the server, while a page of responses is
being read, or after a random delay.  A final run completes; the end state must equal the
fault-free one, with nothing duplicated and nothing lost.

Two syncs on one state file: the second exits at once with the lock message (exit 8), or
with ``--wait`` queues behind the first; nothing is written twice.

Reproduce with ``RFHIR_CRASH_SEEDS=5 pytest tests/integration/test_crash.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from rejection_fhir.errors import ExitCode
from tests.faults.proxy import FaultPlan, FaultProxy, Rule
from tests.faults.scenario import RESPONSES
from tests.faults.table import record_row
from tests.faults.world import (
    World,
    amend,
    compare,
    end_state,
    ledger_written,
    seed_cursor,
)

pytestmark = pytest.mark.integration

BATCH = 4  # six transactions in round 1
CRASH_SEEDS = [int(s) for s in os.environ.get("RFHIR_CRASH_SEEDS", "11,23,37").split(",") if s]
KILLS_PER_ROUND = 2
#: Long enough for a whole run through the proxy; a run that takes longer is a failure.
RUN_TIMEOUT = 120


@dataclass
class Cli:
    """``rejection-fhir sync`` for one world and state file, through one proxy."""

    repo: Path
    proxy: FaultProxy
    world: World
    state: Path
    workdir: Path

    def start(self, *extra: str, name: str = "sync", retries: int = 4) -> subprocess.Popen[str]:
        # Only our settings: nothing from the developer's environment or config files.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RFHIR_")}
        env.update(
            RFHIR_CONNECT_TIMEOUT="2",
            RFHIR_RETRIES=str(retries),
            RFHIR_RETRY_BUDGET="60",
            CI="true",
        )
        command = [
            sys.executable,
            "-m",
            "rejection_fhir",
            "sync",
            "--server",
            self.proxy.base_url,
            "--timeout",
            "5",
            "--state",
            str(self.state),
            "--worksheets",
            str(self.repo / "questionnaires"),
            "--base-url",
            self.world.canonical_base,
            "--batch-size",
            str(BATCH),
            *extra,
        ]
        out = (self.workdir / f"{name}.out").open("w")
        err = (self.workdir / f"{name}.err").open("w")
        return subprocess.Popen(
            command, cwd=self.workdir, env=env, stdout=out, stderr=err, text=True
        )

    def output(self, name: str = "sync") -> tuple[str, str]:
        return (
            (self.workdir / f"{name}.out").read_text(),
            (self.workdir / f"{name}.err").read_text(),
        )

    def complete(self, name: str = "final") -> str:
        """Run to the end; the exit code must be 0."""
        process = self.start(name=name)
        code = process.wait(timeout=RUN_TIMEOUT)
        out, err = self.output(name)
        assert code == 0, f"{name}: exit {code}\n{out}\n{err}"
        return out


def kill_9(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def crash_once(cli: Cli, rng: random.Random, name: str, *, transactions: int) -> str:
    """Start a run, SIGKILL it at a seeded random point; return how it was killed.

    ``transactions`` is how many transactions the run will post at most, so that a
    chosen transaction exists (a run may still finish first: that is reported).
    """
    kinds = ["after-commit", "after-commit", "before-send", "timed"]
    if transactions > 1:
        kinds.append("mid-read")  # only a round with several pages reads a next page
    how = rng.choice(kinds)
    nth = (rng.randint(1, min(3, transactions)),)
    rules = {
        "after-commit": [Rule("hold", "POST", "", nth=nth)],
        "before-send": [Rule("hold-before", "POST", "", nth=nth)],
        "mid-read": [Rule("hold", "GET", r"\?_getpages=.*", nth=nth)],
        "timed": [],
    }[how]
    cli.proxy.rearm(FaultPlan(rules))
    process = cli.start(name=name)
    try:
        if how == "timed":
            # A run takes one to two seconds here, start-up included.
            time.sleep(rng.uniform(0.3, 1.5))
        else:
            deadline = time.monotonic() + RUN_TIMEOUT
            while process.poll() is None and time.monotonic() < deadline:
                held = cli.proxy.wait_held(0.1)
                if held is not None:
                    if how == "after-commit":
                        assert held["upstream_status"] == 200, "the server committed it"
                    break
        finished = process.poll() is not None
        kill_9(process)
    finally:
        cli.proxy.release()
    if finished:
        code = process.returncode
        out, err = cli.output(name)
        assert code == 0, f"{name} ended by itself with exit {code}\n{out}\n{err}"
        return "finished first"
    assert process.returncode == -signal.SIGKILL
    return f"kill -9 {how}"


@pytest.mark.parametrize("seed", CRASH_SEEDS)
def test_kill_9_at_random_points_then_resume(
    seed, repo, fhir_server, direct, fresh_world, baseline, tmp_path
):
    rng = random.Random(seed)
    state = tmp_path / "state.sqlite3"
    kills: Counter[str] = Counter()
    with FaultProxy(fhir_server) as proxy:  # one proxy, one source URL, for every run
        cli = Cli(repo, proxy, fresh_world, state, tmp_path)
        seed_cursor(state, proxy.base_url, fresh_world.since)
        for round_ in (1, 2):
            if round_ == 2:
                amend(direct, fresh_world)
            # Round 1 posts a transaction per batch; round 2 one, for the amendments.
            transactions = -(-RESPONSES // BATCH) if round_ == 1 else 1
            for k in range(KILLS_PER_ROUND):
                how = crash_once(cli, rng, f"round{round_}-crash{k}", transactions=transactions)
                kills[how] += 1
                so_far = end_state(direct, fresh_world, proxy.base_url)
                assert so_far.duplicates() == 0, (
                    f"seed {seed} (RFHIR_CRASH_SEEDS={seed}): duplicates after {dict(kills)}"
                )
            proxy.rearm()
            cli.complete(name=f"round{round_}-final")
            got = end_state(direct, fresh_world, proxy.base_url)
            comparison = compare(got, baseline.states[round_ - 1])
            if round_ == 2:
                record_row(
                    f"crash/seed={seed}",
                    stage="crash",
                    faults={k: v for k, v in sorted(kills.items())},
                    duplicates=comparison.duplicates,
                    losses=comparison.losses,
                )
            assert comparison.equal, (
                f"seed {seed} (RFHIR_CRASH_SEEDS={seed}), round {round_}, after {dict(kills)}: "
                f"{comparison.duplicates} duplicate(s), {comparison.losses} loss(es)\n"
                + "\n".join(comparison.lines)
            )
        assert len(ledger_written(state, proxy.base_url)) == RESPONSES + len(fresh_world.amended)
        again = cli.complete(name="rerun")
        assert "written 0 (0 resources)" in again, again
        assert proxy.unsafe_posts() == [], "the sync sent a request unsafe to retry"
    assert sum(v for k, v in kills.items() if k.startswith("kill")) >= 1, (
        f"seed {seed}: no run was killed ({dict(kills)})"
    )


def test_kill_9_between_the_commit_and_the_cursor_update_again_and_again(
    repo, fhir_server, direct, fresh_world, baseline, tmp_path
):
    """The worst moment, run after run: the server committed a transaction, the client
    never heard.  Each rerun replays what was lost (no-ops on the server), records it, and
    is killed at its next commit, until a run has nothing left to be killed at.

    Every run's first response commits alone (it writes the tool's Device, which no other
    write may race), so a run killed at its second commit has recorded at least one
    response: at most one run per response, and one more that finishes."""
    state = tmp_path / "state.sqlite3"
    kills = 0
    recorded = [0]
    with FaultProxy(fhir_server) as proxy:
        cli = Cli(repo, proxy, fresh_world, state, tmp_path)
        seed_cursor(state, proxy.base_url, fresh_world.since)
        for run in range(1, RESPONSES + 2):
            # The first run dies at its first commit; later ones get one commit recorded
            # (their first response, alone, replayed) and die at the next.
            proxy.rearm(FaultPlan([Rule("hold", "POST", "", nth=(1 if run == 1 else 2,))]))
            process = cli.start(name=f"run{run}")
            held = proxy.wait_held_while(process, RUN_TIMEOUT)
            if held is None:
                assert process.wait(timeout=RUN_TIMEOUT) == 0, cli.output(f"run{run}")
                break
            assert held["upstream_status"] == 200, "the server committed it"
            kill_9(process)
            proxy.release()
            kills += 1
            recorded.append(len(ledger_written(state, proxy.base_url)))
            assert recorded[-2] <= recorded[-1] < RESPONSES, "the killed batch is not recorded"
            assert run == 1 or recorded[-1] > recorded[-2], "every rerun records its replay"
            assert end_state(direct, fresh_world, proxy.base_url).duplicates() == 0
        else:
            pytest.fail(f"still not done after {RESPONSES + 1} runs: recorded {recorded}")
        assert kills >= 3, recorded
        comparison = compare(end_state(direct, fresh_world, proxy.base_url), baseline.states[0])
        record_row(
            "crash/kill after the commit, run after run",
            stage="crash",
            faults={"kill -9 after-commit": kills},
            duplicates=comparison.duplicates,
            losses=comparison.losses,
        )
        assert comparison.equal, "\n".join(comparison.lines)
        assert len(ledger_written(state, proxy.base_url)) == RESPONSES


def test_two_syncs_at_once_one_waits_or_exits_and_nothing_is_duplicated(
    repo, fhir_server, direct, fresh_world, baseline, tmp_path
):
    state = tmp_path / "state.sqlite3"
    with FaultProxy(fhir_server) as proxy:
        cli = Cli(repo, proxy, fresh_world, state, tmp_path)
        seed_cursor(state, proxy.base_url, fresh_world.since)
        proxy.rearm(FaultPlan([Rule("hold", "POST", "", nth=(1,))]))
        first = cli.start(name="first")
        assert proxy.wait_held(RUN_TIMEOUT) is not None, cli.output("first")

        second = cli.start(name="second")
        assert second.wait(timeout=30) == ExitCode.BUSY
        out, err = cli.output("second")
        assert f"another sync is running on {state} (pid {first.pid})" in err, err
        assert "--wait" in err, "the message says how to queue instead"

        queued = cli.start("--wait", "120", name="queued")
        time.sleep(2)
        assert queued.poll() is None, "it waits for the lock"
        assert first.poll() is None
        proxy.release()
        assert first.wait(timeout=RUN_TIMEOUT) == 0, cli.output("first")
        assert queued.wait(timeout=RUN_TIMEOUT) == 0, cli.output("queued")
        out, _ = cli.output("queued")
        assert "written 0 (0 resources)" in out, out
        # Distinct Bundles: on a loaded machine the first sync's held POST may time out and
        # be sent again (the same bytes, conditional entries); a second writer would send others.
        transactions = {e.body_digest for e in proxy.record() if e.method == "POST"}
        # One per batch, and one more: the first response goes alone (the tool's Device).
        assert len(transactions) == -(-RESPONSES // BATCH) + 1, "only the first sync wrote"
        comparison = compare(end_state(direct, fresh_world, proxy.base_url), baseline.states[0])
    record_row(
        "concurrency/two syncs, one state file",
        stage="crash",
        faults={"second sync (exit 8)": 1, "queued sync (--wait)": 1},
        duplicates=comparison.duplicates,
        losses=comparison.losses,
    )
    assert comparison.equal, "\n".join(comparison.lines)


def test_cli_that_gives_up_exits_6_and_a_later_run_completes(
    repo, fhir_server, direct, fresh_world, baseline, tmp_path
):
    state = tmp_path / "state.sqlite3"
    with FaultProxy(fhir_server, FaultPlan([Rule("503", "POST", "", nth=())])) as proxy:
        cli = Cli(repo, proxy, fresh_world, state, tmp_path)
        seed_cursor(state, proxy.base_url, fresh_world.since)
        process = cli.start(name="gives-up", retries=2)
        code = process.wait(timeout=RUN_TIMEOUT)
        out, err = cli.output("gives-up")
        assert code == ExitCode.SERVER_UNAVAILABLE, (code, out, err)
        assert "error: POST transaction Bundle" in err and "503 Service Unavailable" in err, err
        assert "gave up after 3 attempts" in err and "hint:" in err, err
        assert ledger_written(state, proxy.base_url) == set()
        proxy.rearm()
        cli.complete()
        comparison = compare(end_state(direct, fresh_world, proxy.base_url), baseline.states[0])
    assert comparison.equal, "\n".join(comparison.lines)
