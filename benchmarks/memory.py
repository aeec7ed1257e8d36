"""Peak memory of ``rejection-fhir summarize big.ndjson --format json`` as N grows."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import Row
from benchmarks.timing import peak_rss_mb

LIMIT_MB = 150.0
#: "Flat": the largest file may cost at most this much more memory than the smallest.
GROWTH = 1.10


def command() -> list[str]:
    """The installed entry point next to this interpreter (no shell or pyenv shim)."""
    beside = Path(sys.executable).with_name("rejection-fhir")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("rejection-fhir")
    return [found] if found else [sys.executable, "-m", "rejection_fhir"]


def run(
    questionnaires: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    sizes: Sequence[int],
    say: Any = print,
) -> list[Row]:
    from benchmarks.data import QUESTIONNAIRES, write_ndjson

    folder = Path(tempfile.mkdtemp(prefix="rfhir-bench-mem-"))
    peaks: dict[int, float] = {}
    try:
        for size in sizes:
            path = write_ndjson(folder / f"{size}.ndjson", questionnaires, size, seed=seed)
            peak, code = peak_rss_mb(
                [
                    *command(),
                    "summarize",
                    str(path),
                    "--format",
                    "json",
                    "--worksheets",
                    str(QUESTIONNAIRES),
                ]
            )
            if code != 0:
                raise RuntimeError(f"summarize of {size} responses exited {code}")
            peaks[size] = peak
            say(f"  summarize {size:>7,} responses: peak RSS {peak:.1f} MB")
            path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    smallest, largest = min(sizes), max(sizes)
    growth = peaks[largest] / peaks[smallest]
    series = ", ".join(f"{n // 1000}k: {peaks[n]:.0f} MB" for n in sizes)
    return [
        Row(
            f"summarize peak RSS, {largest // 1000}k",
            f"{peaks[largest]:.1f} MB",
            f"{peaks[smallest]:.1f} MB at {smallest // 1000}k",
            growth,
            f"< {LIMIT_MB:.0f} MB, <= {GROWTH:.2f}x",
            peaks[largest] < LIMIT_MB and growth <= GROWTH,
            f"peak RSS by N ({series})",
        )
    ]
