"""``rejection-fhir show``: one worksheet, built, as its Questionnaire or a reviewer's outline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rejection_fhir.commands.build import build_all


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
