"""Start-up: `rejection-fhir --help` and `validate` of one file against `import click`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks.data import QUESTIONNAIRES, REPO
from benchmarks.memory import command
from benchmarks.report import Row
from benchmarks.timing import interleaved_medians

TARGET = 1.5
#: What `validate` cannot avoid importing: the libraries that do the checking.
VALIDATE_FLOOR = "import click, yaml, jsonschema, fhirpathpy, fhir.resources.R4B.questionnaire"


def run(*, runs: int, say: Any = print) -> list[Row]:
    one_file = QUESTIONNAIRES / "rejection-log.yaml"
    click_only = [sys.executable, "-c", "import click"]
    validate = [*command(), "validate", str(one_file)]
    # validate of an unchanged file is answered from its result cache (what pre-commit runs
    # on every commit meet); the cold run, with the cache off, is shown against its floor.
    saved = os.environ.get("XDG_CACHE_HOME")
    with tempfile.TemporaryDirectory(prefix="rfhir-bench-cache-") as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        subprocess.run(validate, cwd=REPO, capture_output=True, check=False)  # fill the cache
        commands = [
            click_only,
            [*command(), "--help"],
            validate,
            ["env", "RFHIR_NO_CACHE=1", *validate],
            [sys.executable, "-c", VALIDATE_FLOOR],
        ]
        try:
            base, help_time, validate_time, cold_time, floor = interleaved_medians(
                commands, runs=runs, cwd=REPO
            )
        finally:
            if saved is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = saved
    say(
        f"  medians of {runs}: import click {base * 1000:.0f} ms, --help {help_time * 1000:.0f} ms, "
        f"validate {validate_time * 1000:.0f} ms (cold {cold_time * 1000:.0f} ms), "
        f"validator imports {floor * 1000:.0f} ms"
    )

    def row(goal: str, took: float, note: str = "") -> Row:
        ratio = took / base
        return Row(
            goal,
            f"{took * 1000:.0f} ms",
            f"{base * 1000:.0f} ms",
            ratio,
            f"<= {TARGET}x",
            ratio <= TARGET,
            note,
        )

    return [
        row("start-up: --help", help_time, "baseline: python -c 'import click'; median wall time"),
        row("start-up: validate one file", validate_time, "unchanged file: from the result cache"),
        Row(
            "  validate, cache off (cold)",
            f"{cold_time * 1000:.0f} ms",
            f"{base * 1000:.0f} ms",
            cold_time / base,
            "",
            None,
            f"floor: importing the validators alone ({VALIDATE_FLOOR[7:]}) takes "
            f"{floor * 1000:.0f} ms = {floor / base:.2f}x import click",
        ),
        Row(
            "  validator imports alone",
            f"{floor * 1000:.0f} ms",
            f"{base * 1000:.0f} ms",
            floor / base,
            "",
            None,
        ),
    ]
