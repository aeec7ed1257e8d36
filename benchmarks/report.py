"""One row per goal, and the table that prints them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    goal: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    #: None for a figure shown for context, with no goal of its own.
    met: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "info"
        return "MET" if self.met else "NOT MET"


HEADERS = ("goal", "measured", "baseline", "ratio", "target", "")


def table(rows: Sequence[Row]) -> str:
    cells = [HEADERS] + [
        (
            r.goal,
            r.measured,
            r.baseline,
            "" if r.ratio is None else f"{r.ratio:.2f}",
            r.target,
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {r.goal}: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)
