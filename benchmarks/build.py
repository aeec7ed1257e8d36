"""CPU time to build and validate every worksheet, as a content repository's CI does."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.data import QUESTIONNAIRES, REPO
from benchmarks.memory import command
from benchmarks.report import Row
from benchmarks.timing import cpu_of

LIMIT_S = 1.0


def run(*, say: Any = print, repeat: int = 3) -> list[Row]:
    out = Path(tempfile.mkdtemp(prefix="rfhir-bench-build-"))
    try:
        builds, validates = [], []
        for _ in range(repeat):
            builds.append(
                cpu_of(
                    [
                        *command(),
                        "build",
                        "--worksheets",
                        str(QUESTIONNAIRES),
                        "--out",
                        str(out / "o"),
                    ],
                    cwd=REPO,
                )
            )
            # Cold, as CI on a fresh clone runs it: not answered from validate's result cache.
            validates.append(
                cpu_of(
                    ["env", "RFHIR_NO_CACHE=1", *command(), "validate", str(QUESTIONNAIRES)],
                    cwd=REPO,
                )
            )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    build, validate = min(builds), min(validates)
    say(f"  CPU: build {build:.2f} s, validate {validate:.2f} s (best of {repeat})")
    return [
        Row(
            "build and validate, CPU",
            f"{build:.2f} s",
            "",
            None,
            f"< {LIMIT_S:.0f} s",
            build < LIMIT_S,
            "user+sys of `rejection-fhir build`, which validates every source before it "
            f"writes; `validate` alone takes {validate:.2f} s, the two one after the other "
            f"{build + validate:.2f} s (each process imports the validators)",
        ),
        Row(
            "  validate alone, CPU",
            f"{validate:.2f} s",
            "",
            None,
            f"< {LIMIT_S:.0f} s",
            validate < LIMIT_S,
        ),
    ]
