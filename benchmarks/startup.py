"""Start-up: `rejection-fhir --help` and `validate` of one file against `import click`."""

from __future__ import annotations

import sys
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
    commands = [
        click_only,
        [*command(), "--help"],
        [*command(), "validate", str(one_file)],
        [sys.executable, "-c", VALIDATE_FLOOR],
    ]
    base, help_time, validate_time, floor = interleaved_medians(commands, runs=runs, cwd=REPO)
    say(
        f"  medians of {runs}: import click {base * 1000:.0f} ms, --help {help_time * 1000:.0f} ms, "
        f"validate {validate_time * 1000:.0f} ms, validator imports {floor * 1000:.0f} ms"
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
        row(
            "start-up: validate one file",
            validate_time,
            f"ceiling: importing the validators alone ({VALIDATE_FLOOR[7:]}) takes "
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
