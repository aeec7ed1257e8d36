"""``rejection-fhir list`` and ``show``: what worksheets exist, and what one contains."""

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


def show_worksheet(source_dir: Path, name: str, *, base_url: str | None = None) -> dict[str, Any]:
    from rejection_fhir.worksheet.names import find_worksheet

    result, _ = build_all(source_dir, base_url=base_url)
    return dict(find_worksheet(result.questionnaires, name))


def outline(q: dict[str, Any]) -> str:
    """A reviewer's outline: linkId, type, text, nested by indentation."""
    lines = [f"{q['title']} ({q['id']} {q['version']}, {q['status']})", q["url"], ""]

    def walk(items: list[dict[str, Any]], depth: int) -> None:
        for item in items:
            flags = [f for f in ("required", "repeats") if item.get(f)]
            if item.get("enableWhen"):
                conds = ", ".join(
                    f"{c['question']} {c['operator']} "
                    + str(
                        next(
                            (
                                v.get("code", v) if isinstance(v, dict) else v
                                for k, v in c.items()
                                if k.startswith("answer")
                            ),
                            "",
                        )
                    )
                    for c in item["enableWhen"]
                )
                flags.append(f"when {conds}")
            options = [
                o["valueCoding"]["code"] for o in item.get("answerOption", []) if "valueCoding" in o
            ]
            extra = f" [{'; '.join(flags)}]" if flags else ""
            # .get: a form made elsewhere may leave out text (FHIR allows it; ours never do).
            text = item.get("text", "")
            lines.append(f"{'  ' * depth}{item['linkId']} ({item['type']}){extra}: {text}")
            if options:
                lines.append(f"{'  ' * (depth + 1)}options: {', '.join(options)}")
            walk(item.get("item", []), depth + 1)

    walk(q["item"], 1)
    return "\n".join(lines)
