"""``sync`` end to end on every EHR profile and on Medplum's router, under faults and kill -9.

The matrix is server × write mode × fault:

- servers: the local HAPI server's profiles ``epic-like``, ``oracle-like``, ``canvas-like``,
  ``medplum-like`` (servers/profiles/) and Medplum's own request router (``scripts/medplum``);
  ``athena-like`` takes no note at all, and the test shows ``sync`` refuses it before writing;
- write modes: the one ``auto`` picks from the server's statement, under every fault; the
  other modes the server allows, under a few;
- faults (tests/faults): none, 429 with Retry-After, 503, a reset, a truncated answer, an
  answer lost after the server committed (``drop``), an answer slower than the client waits
  (``slow``), and ``kill -9`` of the CLI while the server has committed a write whose answer
  the proxy holds back, then a resumed run.

Each cell builds its own small world (a patient with a visit, a few responses posted as a
patient portal would, through the loopback-only test access where the profile refuses a
Patient), syncs it through the fault proxy, then, where writes were left *uncertain*, checks
they were reported (the run's ``uncertain``: exit 13) and settles them with ``sync
--reconcile`` once the server answers again, and runs ``sync`` once more.  The end state is
read with the test access: every response must have exactly one note (0 duplicates, 0
losses).  Uncertain writes may appear only where the server leaves no way to know: plain
creates (``ledger-only``, the only mode of the Epic-, Oracle- and Canvas-like profiles) whose
answer was lost or whose run was killed while they were in flight.

Every cell adds a row to test-artifacts/faults/results.jsonl; the module writes the table to
build/fault-table.md (server, write mode, fault → duplicates, losses, uncertain, settled,
seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from rejection_fhir.commands.build import build_all
from rejection_fhir.errors import ExitCode
from rejection_fhir.sync.reconcile import reconcile
from rejection_fhir.sync.run import SyncOptions, SyncReport, sync
from rejection_fhir.sync.state import SyncState
from rejection_fhir.worksheet.catalog import catalog_from_build
from rejection_fhir.worksheet.synthetic import ResponseFactory, encounter, patient
from tests.faults.proxy import FaultPlan, FaultProxy, Rule
from tests.faults.scenario import proxied
from tests.faults.table import record_row
from tests.integration.conftest import notes_by_response

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TABLE = REPO / "build" / "fault-table.md"
#: Responses per cell, and per page (a page is one transaction, or one in-flight window).
RESPONSES = 4
BATCH = 2
RUN_TIMEOUT = 120
ACCESS = "X-Rfhir-Test-Access"

#: Every fault of the issue, and the few the other allowed modes get.
ALL_FAULTS = ("none", "429", "503", "reset", "truncate", "drop", "slow", "kill-9")
FEW_FAULTS = ("none", "503", "drop")
#: Faults after which a plain create may or may not have landed.
ANSWER_LOST = ("reset", "truncate", "drop", "slow", "kill-9")


@dataclass(frozen=True)
class Server:
    name: str
    #: The mode ``auto`` picks (what check-server chooses), then the others it allows.
    auto: str
    others: tuple[str, ...] = ()
    #: Responses found per patient (Oracle: QuestionnaireResponse search needs a patient).
    per_patient: bool = False
    #: Responses per page: one page on Medplum's router, whose wrapper sends no next links.
    batch: int = BATCH
    #: The client's read timeout (a ``slow`` answer comes 2 s later).  Medplum's in-memory
    #: router checks each conditional entry by a scan: seconds per transaction on a busy host.
    timeout: float = 5.0


SERVERS = (
    Server("epic-like", "ledger-only"),
    Server("oracle-like", "ledger-only", per_patient=True),
    Server("canvas-like", "ledger-only"),
    # medplum-like: no update-as-create, so no put
    Server("medplum-like", "transaction", ("batch", "conditional", "search-then-create")),
    Server("medplum", "transaction", ("conditional",), batch=RESPONSES, timeout=15.0),
)

CELLS = [
    pytest.param(s, mode, fault, id=f"{s.name}-{mode}-{fault}")
    for s in SERVERS
    for mode in (s.auto, *s.others)
    for fault in (ALL_FAULTS if mode == s.auto else FEW_FAULTS)
]


# ----------------------------------------------------------------------------- the world


@dataclass
class World:
    base: str
    http: requests.Session
    canonical_base: str
    built: Any
    patient: str
    qrs: list[dict[str, Any]]
    since: str
    patients_file: Path
    rows: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.http.close()


def _post(http: requests.Session, base: str, resource: dict[str, Any]) -> str:
    answer = http.post(f"{base}/{resource['resourceType']}", json=resource, timeout=60)
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["id"])


def make_world(base: str, tmp: Path, *, test_access: bool) -> World:
    """A patient with a visit and ``RESPONSES`` responses tied to it, authored now."""
    http = requests.Session()
    http.headers.update(
        {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    )
    if test_access:  # the profile refuses a Patient from a client; the EHR would hold one
        http.headers[ACCESS] = "all"
    canonical = f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"
    built, _ = build_all(REPO / "questionnaires", base_url=canonical)
    start = datetime.now(UTC).replace(microsecond=0)
    subject = f"Patient/{_post(http, base, patient(canonical, given='Profile'))}"
    visit = f"Encounter/{_post(http, base, encounter(subject, start - timedelta(hours=1)))}"
    # The server's own instant: earlier cells' responses are before it (Medplum's router
    # sends no next-page links, so a page of theirs would hide ours).
    answer = http.get(f"{base}/{visit}", timeout=60)
    assert answer.status_code == 200, answer.text
    since = answer.json()["meta"]["lastUpdated"]
    start = max(start, datetime.fromisoformat(since.replace("Z", "+00:00"))).replace(microsecond=0)
    qrs = []
    for i, qr in enumerate(
        ResponseFactory(seed=16).many(built.questionnaires, [subject], RESPONSES)
    ):
        qr.pop("id", None)
        qr["authored"] = (start + timedelta(seconds=i + 1)).isoformat().replace("+00:00", "Z")
        qr["encounter"] = {"reference": visit}
        qr["id"] = _post(http, base, qr)  # a plain POST, as a patient portal sends it
        qrs.append(qr)
    patients_file = tmp / "patients.txt"
    patients_file.write_text(subject.split("/")[1] + "\n", encoding="utf-8")
    return World(base, http, canonical, built, subject, qrs, since, patients_file)


def notes(world: World) -> Counter[str]:
    """Our notes for the world's responses, by response id (a count above 1 is a duplicate)."""
    return notes_by_response(world.http, world.base, [world.patient], count=100)


# ----------------------------------------------------------------------------- running


def options(server: Server, world: World, proxy: FaultProxy, state: Path, mode: str) -> SyncOptions:
    return SyncOptions(
        source=proxy.base_url,
        state_path=state,
        batch_size=server.batch,
        write_mode=mode,
        since=world.since,
        patients_file=world.patients_file if server.per_patient else None,
    )


def run_sync(server: Server, world: World, proxy: FaultProxy, state: Path, mode: str) -> SyncReport:
    return sync(
        proxied(proxy, timeout=server.timeout),
        options(server, world, proxy, state, mode),
        catalog_from_build(world.built),
    )


def cli(
    server: Server,
    world: World,
    proxy: FaultProxy,
    state: Path,
    mode: str,
    workdir: Path,
    name: str,
) -> subprocess.Popen[str]:
    """``rejection-fhir sync`` for this cell (a subprocess, so that it can be killed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RFHIR_")}
    env.update(RFHIR_CONNECT_TIMEOUT="2", RFHIR_RETRIES="4", RFHIR_RETRY_BUDGET="60", CI="true")
    command = [
        sys.executable, "-m", "rejection_fhir", "sync",
        "--server", proxy.base_url, "--timeout", str(server.timeout), "--state", str(state),
        "--worksheets", str(REPO / "questionnaires"), "--base-url", world.canonical_base,
        "--batch-size", str(server.batch), "--since", world.since, "--write-mode", mode,
    ]  # fmt: skip
    if server.per_patient:
        command += ["--patients", str(world.patients_file)]
    out = (workdir / f"{name}.out").open("w")
    err = (workdir / f"{name}.err").open("w")
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=err, text=True)


def kill_9(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, 9)
    process.wait(timeout=30)


@dataclass
class Outcome:
    uncertain: int = 0
    #: The exit code the run that reported them gave (or would give, for an in-process run).
    exit_code: int = 0
    settled: str = "-"
    notes: list[str] = field(default_factory=list)


def _exit_code(report: SyncReport) -> int:
    """What ``rejection-fhir sync`` exits with for this report (cli/sync.py)."""
    if report.failed:
        return int(ExitCode.SERVER_REFUSED)
    if report.rejected:
        return int(ExitCode.FINDINGS)
    return int(ExitCode.UNCERTAIN) if report.uncertain else 0


def faulty_run(
    server: Server, world: World, proxy: FaultProxy, state: Path, mode: str, fault: str, tmp: Path
) -> Outcome:
    if fault != "kill-9":
        report = run_sync(server, world, proxy, state, mode)
        assert not report.failed and not report.rejected, (report.failed[:2], proxy.injected())
        return Outcome(len(report.uncertain), _exit_code(report), notes=report.notes)
    # Killed while the server has committed a write whose answer is held back; then a run
    # to the end (which reports what the killed run left in flight).
    method = "PUT" if mode == "put" else "POST"
    kills = 0
    for n, nth in enumerate((2,)):
        proxy.rearm(FaultPlan([Rule("hold", method, ".*", nth=(nth,))]))
        process = cli(server, world, proxy, state, mode, tmp, f"crash{n}")
        held = proxy.wait_held_while(process, RUN_TIMEOUT)
        kill_9(process)
        proxy.release()
        if held is not None:
            assert held["upstream_status"] in (200, 201), "the server committed it"
            kills += 1
    assert kills == 1, "the run was not killed after a commit"
    proxy.rearm()
    final = cli(server, world, proxy, state, mode, tmp, "resumed")
    code = final.wait(timeout=RUN_TIMEOUT)
    out = (tmp / "resumed.out").read_text() + (tmp / "resumed.err").read_text()
    assert code in (0, int(ExitCode.UNCERTAIN)), f"exit {code}\n{out}"
    uncertain = out.count("\nuncertain ") + out.startswith("uncertain ")
    return Outcome(uncertain, code)


def settle(server: Server, world: World, proxy: FaultProxy, state: Path, mode: str) -> str:
    """``sync --reconcile`` once the server answers, then a clean run; what was found."""
    proxy.rearm()
    settled = reconcile(
        proxied(proxy, timeout=server.timeout), proxy.base_url, state_path=str(state)
    )
    assert not settled.still_uncertain, settled.still_uncertain
    with SyncState(state) as ledger:
        assert ledger.entries(outcome="uncertain") == []
    again = run_sync(server, world, proxy, state, mode)  # writes what reconcile found absent
    assert again.ok, (again.failed[:2], again.uncertain[:2])
    assert again.tally.written == len(settled.absent)
    return f"found {len(settled.found)}, absent {len(settled.absent)} (written)"


# ----------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module", autouse=True)
def table() -> Iterator[None]:
    yield
    from tests.faults.table import RESULTS

    if not RESULTS.exists():
        return
    import json

    rows: dict[str, dict[str, Any]] = {}
    for line in RESULTS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("stage") == "profiles-e2e":
                rows[row["test"]] = row
    out = [
        "| server | write mode | fault | responses | duplicates | losses | uncertain (exit) | "
        "settled by --reconcile | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows.values():
        out.append(
            f"| {row['server']} | {row['write_mode']} | {row['fault']} | {row['responses']} "
            f"| {row['duplicates']} | {row['losses']} | {row['uncertain']}"
            f"{' (' + str(row['exit_code']) + ')' if row['uncertain'] else ''} "
            f"| {row['settled']} | {row['seconds']} |"
        )
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text("\n".join(out) + "\n", encoding="utf-8")


def base_of(server: Server, fhir_server: str, request: pytest.FixtureRequest) -> str:
    if server.name == "medplum":
        return str(request.getfixturevalue("medplum_server"))
    return f"{fhir_server}/{server.name}"


@pytest.mark.parametrize(("server", "mode", "fault"), CELLS)
def test_sync_exactly_once_or_uncertain_and_settled(
    server: Server,
    mode: str,
    fault: str,
    fhir_server: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    base = base_of(server, fhir_server, request)
    world = make_world(base, tmp_path, test_access=server.name != "medplum")
    state = tmp_path / "state.sqlite3"
    # Writes get the fault: the first and a later one (a slow answer once: it costs seconds).
    nth = (1,) if fault == "slow" else (1, 3)
    rules = [] if fault in ("none", "kill-9") else [Rule(fault, "POST", ".*", nth=nth)]
    try:
        with FaultProxy(base, FaultPlan(rules), slow_seconds=server.timeout + 2) as proxy:
            outcome = faulty_run(server, world, proxy, state, mode, fault, tmp_path)
            injected = proxy.injected()
            if outcome.uncertain:
                # Reported: the run's uncertain list, so exit 13.
                assert outcome.exit_code == ExitCode.UNCERTAIN
                outcome.settled = settle(server, world, proxy, state, mode)
            else:
                assert outcome.exit_code == 0
                again = run_sync(server, world, proxy, state, mode)  # nothing left to write
                assert again.ok and again.tally.written == 0, again.failed[:2]
            found = notes(world)
        duplicates = sum(n - 1 for n in found.values() if n > 1)
        losses = sum(1 for qr in world.qrs if qr["id"] not in found)
        record_row(
            f"profiles-e2e/{server.name}/{mode}/{fault}",
            stage="profiles-e2e",
            faults={fault: len(injected)}
            if fault not in ("none", "kill-9")
            else {fault: 0 if fault == "none" else 1},
            duplicates=duplicates,
            losses=losses,
            server=server.name,
            write_mode=mode + (" (auto)" if mode == server.auto else ""),
            fault=fault,
            responses=RESPONSES,
            uncertain=outcome.uncertain,
            exit_code=outcome.exit_code,
            settled=outcome.settled,
            seconds=round(time.monotonic() - started, 1),
        )
        assert duplicates == 0, found
        assert losses == 0, (found, [qr["id"] for qr in world.qrs])
        if fault not in ("none", "kill-9"):
            assert injected, "the schedule injected nothing"
        # Uncertain only where the server leaves no way to know: plain creates whose answer
        # was lost, or whose run was killed while they were in flight.
        if outcome.uncertain:
            assert mode == "ledger-only" and fault in ANSWER_LOST, (mode, fault)
        elif mode == "ledger-only" and fault in ANSWER_LOST:
            pytest.fail(f"{fault} lost a plain create's answer, but nothing was reported uncertain")
    finally:
        world.close()


def test_athena_like_takes_no_note_and_sync_says_so_before_writing(
    fhir_server: str, tmp_path: Path
) -> None:
    """athenahealth takes no DocumentReference over FHIR: sync stops before any write."""
    base = f"{fhir_server}/athena-like"
    world = make_world(base, tmp_path, test_access=True)
    try:
        command = [
            sys.executable, "-m", "rejection_fhir", "sync", "--server", base,
            "--state", str(tmp_path / "state.sqlite3"), "--worksheets", str(REPO / "questionnaires"),
            "--base-url", world.canonical_base, "--since", world.since,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("RFHIR_")}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        # The same verdict, and exit code, as check-server's on this profile.
        assert done.returncode == int(ExitCode.SERVER_CANNOT), done.stdout + done.stderr
        assert "does not take DocumentReference creates" in done.stderr, done.stderr
        assert notes(world) == Counter()
        record_row(
            "profiles-e2e/athena-like/none/none",
            stage="profiles-e2e",
            faults={},
            duplicates=0,
            losses=0,
            server="athena-like",
            write_mode="none (no note can be written)",
            fault=f"- (sync refuses before writing, exit {done.returncode})",
            responses=RESPONSES,
            uncertain=0,
            exit_code=done.returncode,
            settled="-",
            seconds=0,
        )
    finally:
        world.close()


def test_demo_runs_against_a_profile(fhir_server: str, tmp_path: Path) -> None:
    """``scripts/demo --profile epic-like``: check-server, then the job, saying what is degraded."""
    from urllib.parse import urlsplit

    env = {k: v for k, v in os.environ.items() if not k.startswith("RFHIR_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        RFHIR_HAPI_PORT=str(urlsplit(fhir_server).port),
        RFHIR_OUT=str(tmp_path / "out"),
    )
    done = subprocess.run(
        [str(REPO / "scripts" / "demo"), "--profile", "epic-like"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "== what epic-like allows" in out and "verdict: OK" in out
    # what Epic does not take, and what sync does instead, said once per run
    assert "the note is accepted only as text/plain" in out
    assert "left out: no Flag: the safety alert goes at the top of the note" in out
    written = [line for line in out.splitlines() if line.startswith("fetched ")]
    assert len(written) == 2, written
    assert "written 18 " in written[0] and "written 0 " in written[1], written
    # The report runs there too: the alert from the note, and what Epic would not give.
    assert "wrote " in out and "1 active safety flag" in out, out[-2000:]
    assert "not read from this EHR: Flags:" in out


def test_demo_refuses_an_unknown_profile(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "demo"), "--profile", "nope-like"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "known: athena-like canvas-like" in done.stderr
