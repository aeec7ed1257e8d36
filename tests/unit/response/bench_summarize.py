"""Throughput of summarize (and friends) against json.loads of the same response.

Not a test (pytest does not collect it): timings depend on the machine and its load.
Run ``python -m tests.unit.response.bench_summarize`` from the repository root.  CPU time
(process_time) is measured, best of several repeats, so other busy processes matter less.

The target: summarize at >= 0.5x the throughput of json.loads on the same response, i.e.
``loads/summarize >= 0.5``.
"""

from __future__ import annotations

import json
import sys
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rejection_fhir.commands.build import build_all
from rejection_fhir.response import (
    render_markdown,
    render_xhtml,
    resolve_response,
    summarize,
    validate_response,
)
from tests.conftest import QUESTIONNAIRES
from tests.unit.response.conftest import load
from tests.unit.response.test_project_worksheets import complete_response


def cpu_microseconds(action: Callable[[], object], number: int) -> float:
    runs = timeit.repeat(action, number=number, repeat=7, timer=time.process_time)
    return min(runs) / number * 1e6


def measure(
    name: str, response: dict[str, Any], questionnaire: dict[str, Any], number: int
) -> float:
    text = json.dumps(response, separators=(",", ":"))
    loads = cpu_microseconds(lambda: json.loads(text), number)
    summary = cpu_microseconds(lambda: summarize(response, questionnaire), number)
    made = summarize(response, questionnaire)
    markdown = cpu_microseconds(lambda: render_markdown(made), number)
    xhtml = cpu_microseconds(lambda: render_xhtml(made), number)
    resolved = cpu_microseconds(lambda: resolve_response(response, questionnaire).items, number)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    validate = cpu_microseconds(
        lambda: validate_response(response, questionnaire, now=now), number // 4
    )
    print(
        f"{name:22s} {len(text):6d} B  loads {loads:6.1f}  summarize {summary:6.1f}  "
        f"ratio {loads / summary:4.2f}  | resolve-all {resolved:6.1f}  markdown {markdown:6.1f}  "
        f"xhtml {xhtml:6.1f}  validate {validate:6.1f}  (us)"
    )
    return loads / summary


def main() -> int:
    number = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    built, _ = build_all(QUESTIONNAIRES)
    ratios = [measure(q["name"], complete_response(q), q, number) for q in built.questionnaires]
    print(f"{'worksheets (mean)':22s} ratio {sum(ratios) / len(ratios):4.2f}")
    measure(
        "kitchen-sink (worst)",
        load("kitchen-sink.response.json"),
        load("kitchen-sink.questionnaire.json"),
        number,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
