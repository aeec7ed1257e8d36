"""Sync speed per write mode, each against its own server's ceiling (issue 16, point 6).

For every EHR profile of the local HAPI server (``/fhir/<profile>/``), the plain HAPI
server (transactions) and Medplum's router (transactions in chunks of at most 8 entries):

1. fresh responses are loaded (``seed``: a Patient, a visit and nine responses per round,
   as a patient portal would post them; test access where the profile refuses them);
2. ``sync`` runs with its defaults for that server (the write mode and read mode the
   server's statement gives; up to 8 requests in flight for single requests, 2 pages of
   transactions in flight, their chunks one after another) while every HTTP request
   it sends is captured (method, URL, headers, body, when it started and ended), retries
   included;
3. **the ceiling**: ``curl`` sends those very requests again, with the same concurrency:
   ``--parallel --parallel-max K``, K the most requests the sync had in flight at once
   (measured from the capture), GETs included.  Conditional writes would only
   match what the sync just wrote, so the derived identifiers' key (our source key) is
   replaced by a fresh one of the same length: the server creates again, the same work.

Responses per second of each, best of the rounds; the goal is sync >= 0.8x the ceiling.
A profile whose notes the sync cannot write yet gets a row saying why, not a figure.

**Cores.**  An EHR does not run on the clinic's sync machine, but here the server, the
sync and curl share this machine's cores, so every CPU cycle the sync spends (Python,
``requests``) is taken from the server, while curl's are nearly free: the ratio would
measure our CPU against the server's rather than whether the sync keeps the server busy.
So each target is measured twice: with the server on one half of the cores and the
client (the sync, then curl) on the other (:func:`cores_apart`, Linux ``sched_setaffinity``
on the process that listens on the server's port) -- the goal's row -- and with the cores
shared, a row for context (``cores shared``) that says how much of the machine the sync's
own work takes.  Where the cores cannot be split (one core, a server process that is not
ours), the goal's row is measured with the cores shared and says so.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.report import Row

JsonDict = dict[str, Any]

GOAL = 0.8
#: Transactions in flight in the transaction modes (as the sync benchmark).
TRANSACTIONS_IN_FLIGHT = 2
#: Headers curl must send as the sync did; the rest (length, encoding) curl sets itself.
REPLAYED_HEADERS = (
    "accept",
    # The server compresses what it answers to the sync; it does the same work for curl.
    "accept-encoding",
    "content-type",
    "if-none-exist",
    "if-match",
    "if-unmodified-since",
    "prefer",
    "authorization",
)


@dataclass(frozen=True)
class Target:
    name: str
    #: "hapi" (the profile is a path under the HAPI base) or "medplum".
    server: str
    profile: str = ""
    #: Responses are found by their authored date (the cursor is an authored date).
    authored: bool = False
    #: Why the sync cannot run there (a row without figures), if it cannot.
    skip: str = ""
    #: Patients to load at most (None: as asked).  Medplum's in-memory router slows down
    #: as it fills (each conditional create scans): fewer, so a round takes minutes, not tens.
    max_patients: int | None = None


TARGETS = (
    Target("hapi (transaction)", "hapi"),
    Target("medplum-like", "hapi", "medplum-like"),
    Target("oracle-like", "hapi", "oracle-like"),
    Target("canvas-like", "hapi", "canvas-like", authored=True),
    # Epic takes notes only as text/plain, filed against the visit (seed makes one).
    Target("epic-like", "hapi", "epic-like", authored=True),
    Target(
        "athena-like",
        "hapi",
        "athena-like",
        skip="takes no DocumentReference (read-only notes): the sync has nothing to write",
    ),
    Target("medplum router (transaction, chunks of 8)", "medplum", max_patients=1),
)


def listening_pids(port: int) -> set[int]:
    """The processes listening on ``port`` (Linux ``/proc``; empty elsewhere)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    pids: set[int] = set()
    if not inodes:
        return pids
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


@contextmanager
def cores_apart(pids: set[int]) -> Iterator[str]:
    """Run the server's processes on one half of the cores and this thread (the sync's
    threads and curl start from it) on the other; yields "" when done, else why not."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        yield "one core only"
        return
    if not pids:
        yield "no server process found on this machine"
        return
    half = len(cpus) // 2
    server, client = set(cpus[:half]), set(cpus[half:])
    mine = os.sched_getaffinity(0)
    saved: dict[int, set[int]] = {}
    try:
        for pid in pids:
            saved[pid] = os.sched_getaffinity(pid)
            _every_thread(pid, server)
        os.sched_setaffinity(0, client)
    except OSError as exc:
        _put_back(saved, mine)
        yield f"cannot set CPU affinity ({exc.strerror})"
        return
    try:
        yield ""
    finally:
        _put_back(saved, mine)


def _every_thread(pid: int, cpus: set[int]) -> None:
    """A process's affinity is per thread; threads it starts later inherit it."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)


def _put_back(saved: Mapping[int, set[int]], mine: set[int]) -> None:
    os.sched_setaffinity(0, mine)
    for pid, cpus in saved.items():
        with contextlib.suppress(OSError):  # the server stopped meanwhile
            _every_thread(pid, cpus)


@dataclass
class Sent:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    started: float = 0.0
    finished: float = 0.0


def peak_in_flight(sent: Sequence[Sent]) -> int:
    """Most of the sync's requests in flight at once: curl gets the same concurrency."""
    edges = sorted([(s.started, 1) for s in sent] + [(s.finished, -1) for s in sent])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return max(1, peak)


@dataclass
class Measured:
    sync: list[float] = field(default_factory=list)
    curl: list[float] = field(default_factory=list)
    requests: int = 0
    mode: str = ""
    in_flight: int = 1


@contextmanager
def captured() -> Iterator[list[Sent]]:
    """Every request any requests.Session sends meanwhile (the sync's, from every thread)."""
    import requests

    original = requests.Session.send
    sent: list[Sent] = []
    lock = threading.Lock()

    def send(self: requests.Session, request: requests.PreparedRequest, **kw: Any) -> Any:
        body = request.body
        data = body.encode() if isinstance(body, str) else body
        record = Sent(str(request.method), str(request.url), dict(request.headers), data)
        record.started = time.perf_counter()
        try:
            return original(self, request, **kw)
        finally:
            record.finished = time.perf_counter()
            with lock:
                sent.append(record)

    requests.Session.send = send  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        requests.Session.send = original  # type: ignore[method-assign]


def replay(sent: Sequence[Sent], folder: Path, parallel: int, swap: tuple[str, str]) -> float:
    """Send the requests with curl, ``parallel`` at once; seconds taken.  Raises unless
    every answer is a 2xx."""
    old, new = swap
    lines: list[str] = []
    for n, request in enumerate(sent):
        if n:
            lines.append("next")
        url = request.url.replace(old, new)
        lines += [
            f'url = "{_quoted(url)}"',
            "globoff",
            f'request = "{request.method}"',
            'output = "/dev/null"',
            'write-out = "%{http_code}\\n"',
            'header = "Expect:"',
        ]
        for name, value in request.headers.items():
            if name.lower() in REPLAYED_HEADERS:
                lines.append(f'header = "{_quoted(name)}: {_quoted(value.replace(old, new))}"')
        if request.body is not None:
            path = folder / f"{n:06d}.body"
            path.write_bytes(request.body.replace(old.encode(), new.encode()))
            lines.append(f'data-binary = "@{path}"')
    config = folder / "curl.config"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    command = ["curl", "--silent", "--parallel", "--parallel-max", str(parallel), "-K", str(config)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    codes = result.stdout.split()
    bad = [c for c in codes if not c.startswith("2")]
    if result.returncode != 0 or len(codes) != len(sent) or bad:
        raise RuntimeError(
            f"curl replay failed (exit {result.returncode}, {len(codes)} of {len(sent)} "
            f"answers, not 2xx: {bad[:5]})"
        )
    return elapsed


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class Endpoint:
    """One server or profile: loads fresh responses, syncs them, replays the requests."""

    def __init__(self, base: str, questionnaires: Sequence[Mapping[str, Any]], tmp: Path):
        from rejection_fhir.settings import load_settings
        from rejection_fhir.worksheet.catalog import catalog_of

        self.base = base
        self.questionnaires = questionnaires
        self.catalog = catalog_of(questionnaires)
        self.settings = load_settings({"server": base}, env={})
        self.tmp = tmp

    def load(self, patients: int, rounds: int, seed: int) -> tuple[list[str], int, str]:
        """Fresh patients with ``rounds`` responses to every worksheet: (patients, count,
        a ``since`` before them all, by ``_lastUpdated`` and by ``authored``)."""
        from rejection_fhir.commands.seed import seed as seed_patient

        since = datetime.now(UTC) - timedelta(weeks=rounds, days=2)
        ids: list[str] = []
        count = 0
        for n in range(patients):
            seeded = seed_patient(
                self.settings, self.questionnaires, seed_value=seed + n, rounds=rounds
            )
            ids.append(seeded.patient)
            count += len(seeded.responses)
        return ids, count, since.isoformat(timespec="seconds").replace("+00:00", "Z")

    def sync(self, patients: list[str], since: str) -> tuple[Any, float, list[Sent]]:
        from rejection_fhir.sync.run import SyncOptions, sync

        folder = self.tmp / uuid.uuid4().hex[:8]
        folder.mkdir()
        patient_file = folder / "patients.txt"
        patient_file.write_text("\n".join(patients), encoding="utf-8")
        options = SyncOptions(
            source=self.base,
            state_path=folder / "state.sqlite3",
            since=since,
            concurrency=TRANSACTIONS_IN_FLIGHT,
            patients_file=patient_file,
            read_mode="auto",
        )
        with captured() as sent:
            started = time.perf_counter()
            report = sync(self.settings, options, self.catalog)
            elapsed = time.perf_counter() - started
        return report, elapsed, sorted(sent, key=lambda s: s.started)


def measure(
    target: Target,
    base: str,
    questionnaires: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    patients: int,
    rounds: int,
    repeats: int,
    say: Callable[[str], None],
) -> Measured:
    from rejection_fhir.ehr.entries import source_key

    tmp = Path(tempfile.mkdtemp(prefix="rfhir-modes-"))
    endpoint = Endpoint(base, questionnaires, tmp)
    measured = Measured()

    def ceiling(n: int, sent: list[Sent], count: int, parallel: int, source: str) -> float:
        folder = tmp / f"replay-{n}"
        folder.mkdir()
        fresh = secrets.token_hex(6)
        return count / replay(sent, folder, parallel, (source_key(source), fresh))

    previous: tuple[list[Sent], int, int, str] | None = None
    try:
        for n in range(repeats):
            # Servers slow down as they fill (Medplum's in-memory router scans for its
            # conditional creates): every other round curl goes first, replaying the
            # previous round's requests, so that neither side always meets the fuller server.
            curl_rate = ceiling(n, *previous) if n % 2 == 1 and previous is not None else None
            # _lastUpdated reads start just before this load (the server runs on this
            # machine's clock); authored reads before the first authored date
            loaded_at = datetime.now(UTC) - timedelta(seconds=1)
            ids, count, since = endpoint.load(
                min(patients, target.max_patients or patients), rounds, seed + 100 * n
            )
            if not target.authored:
                since = loaded_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            report, elapsed, sent = endpoint.sync(ids, since)
            if report.tally.written != count or not report.ok:
                raise RuntimeError(
                    f"{target.name}: sync wrote {report.tally.written} of {count} "
                    f"(failed {report.tally.failed}, uncertain {report.tally.uncertain}); "
                    "the measurement would be meaningless"
                )
            measured.mode = _mode(report.notes)
            parallel = peak_in_flight(sent)
            measured.in_flight = max(measured.in_flight, parallel)
            previous = (sent, count, parallel, report.source)
            if curl_rate is None:
                curl_rate = ceiling(n, *previous)
            measured.sync.append(count / elapsed)
            measured.curl.append(curl_rate)
            measured.requests = len(sent)
            say(
                f"  {target.name}: {count} responses, {len(sent)} requests; "
                f"{parallel} in flight; sync {count / elapsed:.1f}/s, curl {curl_rate:.1f}/s"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return measured


def _row(name: str, got: Measured, repeats: int, where: str, *, goal: bool) -> Row:
    best_sync, best_curl = max(got.sync), max(got.curl)
    ratio = best_sync / best_curl
    return Row(
        name,
        f"{best_sync:.1f} resp/s",
        f"curl {best_curl:.1f} resp/s",
        ratio,
        f">= {GOAL}" if goal else "",
        (ratio >= GOAL) if goal else None,
        f"{got.mode}; at most {got.in_flight} requests in flight (curl the same); "
        f"{got.requests} requests replayed per measurement; best of {repeats}; {where}",
    )


def _mode(notes: Sequence[str]) -> str:
    text = " ".join(notes)
    if "ledger-only" in text:
        return "ledger-only"
    if "chunks" in text:
        return "transaction in chunks"
    return "transaction"


def run(
    questionnaires: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    patients: int,
    rounds: int,
    repeats: int,
    say: Callable[[str], None] = print,
    only: Sequence[str] = (),
) -> list[Row]:
    from tests.hapi_server import ensure_server

    if shutil.which("curl") is None:
        raise RuntimeError("curl is needed for the ceilings")
    hapi = ensure_server()
    rows: list[Row] = []
    for target in TARGETS:
        if only and target.name.split()[0] not in only:
            continue
        if target.skip:
            rows.append(Row(f"modes: {target.name}", "", "", None, "", None, target.skip))
            continue
        if target.server == "medplum":
            from tests.medplum_server import ensure_server as ensure_medplum

            base = ensure_medplum()
        else:
            base = f"{hapi}/{target.profile}" if target.profile else hapi
        say(f"modes: {target.name} at {base}")
        port = urlsplit(base).port
        with cores_apart(listening_pids(port) if port else set()) as not_apart:
            apart = measure(
                target,
                base,
                questionnaires,
                seed=seed,
                patients=patients,
                rounds=rounds,
                repeats=repeats,
                say=say,
            )
        shared = measure(
            target,
            base,
            questionnaires,
            seed=seed + 50_000,
            patients=patients,
            rounds=rounds,
            repeats=repeats,
            say=say,
        )
        where = (
            "server and client on separate cores" if not not_apart else f"cores shared: {not_apart}"
        )
        rows.append(_row(f"modes: {target.name}", apart, repeats, where, goal=True))
        rows.append(
            _row(
                f"modes: {target.name}, cores shared",
                shared,
                repeats,
                "server, sync and curl on the same cores: the sync's own CPU is taken "
                "from the server's",
                goal=False,
            )
        )
    return rows


if __name__ == "__main__":  # pragma: no cover - a shortcut for one part
    import sys

    from benchmarks.data import worksheets
    from benchmarks.report import table

    os.environ.pop("RFHIR_CONFIG", None)
    print(
        table(
            run(
                worksheets("https://bench.rejection-fhir.org/modes/fhir"),
                seed=2026,
                patients=2,
                rounds=2,
                repeats=1,
                say=lambda text: print(text, file=sys.stderr),
                only=sys.argv[1:],
            )
        )
    )
