"""``rejection-fhir list``: what worksheets exist.

Named ``listing``, not ``list``: a module ``list`` would shadow the builtin inside the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rejection_fhir.commands.build import build_all


@dataclass(frozen=True)
class WorksheetInfo:
    name: str
    version: str
    status: str
    title: str
    url: str
    questions: int


def _count_questions(items: list[dict[str, Any]]) -> int:
    total = 0
    for item in items:
        if item.get("type") not in {"group", "display"}:
            total += 1
        total += _count_questions(item.get("item", []))
    return total


def list_worksheets(source_dir: Path, *, base_url: str | None = None) -> list[WorksheetInfo]:
    result, _ = build_all(source_dir, base_url=base_url)
    return [
        WorksheetInfo(
            q["id"], q["version"], q["status"], q["title"], q["url"], _count_questions(q["item"])
        )
        for q in result.questionnaires
    ]
