"""Seeded data for the benchmarks: the project's worksheets and synthetic responses."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QUESTIONNAIRES = REPO / "questionnaires"


@cache
def worksheets(base_url: str | None = None) -> tuple[dict[str, Any], ...]:
    """The built Questionnaires (``catalog_of`` gives their summarizers, as the CLI does)."""
    from rejection_fhir.commands.build import build_all

    built, _ = build_all(QUESTIONNAIRES, base_url=base_url)
    return tuple(built.questionnaires)


def responses(
    questionnaires: Sequence[Mapping[str, Any]], count: int, *, seed: int
) -> Iterator[dict[str, Any]]:
    """``count`` valid responses spread over the Questionnaires and fifty clients."""
    from rejection_fhir.worksheet.synthetic import ResponseFactory

    subjects = [f"Patient/bench-{n}" for n in range(50)]
    for n, qr in enumerate(ResponseFactory(seed).many(questionnaires, subjects, count)):
        qr["id"] = f"bench-{n}"
        yield qr


def write_ndjson(
    path: Path, questionnaires: Sequence[Mapping[str, Any]], count: int, *, seed: int
) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for qr in responses(questionnaires, count, seed=seed):
            out.write(json.dumps(qr, separators=(",", ":"), ensure_ascii=False))
            out.write("\n")
    return path
