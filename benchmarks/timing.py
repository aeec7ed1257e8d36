"""Timing helpers: CPU time in-process, wall time and peak memory of subprocesses."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def cpu_seconds(action: Callable[[], object], *, repeat: int = 5) -> float:
    """The best of ``repeat`` runs, in CPU seconds: other busy processes matter less."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        action()
        best = min(best, time.process_time() - started)
    return best


def interleaved_medians(
    commands: Sequence[Sequence[str]], *, runs: int = 15, cwd: Path | None = None
) -> list[float]:
    """Median wall time of each command, run in turns so that load spikes hit all alike."""
    times: list[list[float]] = [[] for _ in commands]
    for n in range(runs + 2):
        for i, command in enumerate(commands):
            started = time.perf_counter()
            subprocess.run(
                command,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            if n >= 2:  # two warm-up turns
                times[i].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


def peak_rss_mb(command: Sequence[str], *, stdout: Path | None = None) -> tuple[float, int]:
    """(peak resident memory in MB, exit status) of one run of ``command``.

    Runs it through a fresh child so RUSAGE_CHILDREN holds only this command's peak.
    """
    probe = (
        "import resource, subprocess, sys\n"
        "out = open(sys.argv[1], 'wb') if sys.argv[1] != '-' else subprocess.DEVNULL\n"
        "code = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.DEVNULL).returncode\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)\n"
    )
    result = subprocess.run(
        [_python(), "-c", probe, str(stdout) if stdout else "-", *command],
        capture_output=True,
        text=True,
        check=True,
    )
    kilobytes, code = result.stdout.split()
    return int(kilobytes) / 1024, int(code)


def _python() -> str:
    import sys

    return sys.executable


def cpu_of(command: Sequence[str], *, cwd: Path | None = None) -> float:
    """User + system CPU seconds of one run of ``command`` (and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        env={**os.environ},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
