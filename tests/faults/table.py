"""The closing table: faults injected against duplicates and losses observed.

Each fault and crash test appends one row to ``test-artifacts/faults/results.jsonl``;
``python -m tests.faults.table`` prints them as a Markdown table (latest row per test);
``--modes`` prints the write-mode rows (server × write mode × fault).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "faults" / "results.jsonl"


def record_row(
    test: str,
    *,
    stage: str,
    faults: dict[str, int],
    duplicates: int,
    losses: int,
    note: str = "",
    **extra: Any,
) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    row = {
        "test": test,
        "stage": stage,
        "faults": faults,
        "injected": sum(faults.values()),
        "duplicates": duplicates,
        "losses": losses,
        "note": note,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **extra,
    }
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def markdown(path: Path = RESULTS) -> str:
    rows: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["test"]] = row
    out = [
        "| stage | test | faults injected | duplicates | losses | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in sorted(rows.values(), key=lambda r: (r["stage"], r["test"])):
        faults = ", ".join(f"{k} x{v}" for k, v in row["faults"].items()) or "-"
        out.append(
            f"| {row['stage']} | {row['test']} | {faults} (total {row['injected']}) "
            f"| {row['duplicates']} | {row['losses']} | {row['note']} |"
        )
    return "\n".join(out)


def modes_markdown(path: Path = RESULTS) -> str:
    """Server × write mode × fault → duplicates, losses, uncertain (test_write_modes)."""
    rows: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("stage") == "write-modes":
                rows[row["test"]] = row
    out = [
        "| server | write mode | fault | injected | duplicates | losses | uncertain | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in sorted(rows.values(), key=lambda r: (r["server"], r["write_mode"], r["fault"])):
        out.append(
            f"| {row['server']} | {row['write_mode']} | {row['fault']} | {row['injected']} "
            f"| {row['duplicates']} | {row['losses']} | {row['uncertain']} | {row['note']} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--modes"]
    where = Path(args[0]) if args else RESULTS
    print(modes_markdown(where) if "--modes" in sys.argv else markdown(where))
