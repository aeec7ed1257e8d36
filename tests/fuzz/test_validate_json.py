"""`rejection-fhir validate` on mutated built JSON: Questionnaires, CodeSystems, ValueSets and
transaction Bundles, as structure or as bytes.  Exit 0, 1 (findings) or 10, never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fuzz.conftest import assert_clean_exit, count, rng_for, run_cli, tag
from tests.fuzz.mutator import Mutator

CASES = 90


def test_validate_cli_on_mutated_json(tmp_path: Path, built: Any) -> None:
    name = "cli/validate-json"
    documents = [*built.questionnaires, built.codesystem, *built.valuesets, built.bundle()]
    for case in range(CASES):
        rng = rng_for(name, case)
        document = documents[rng.randrange(len(documents))]
        path = tmp_path / f"case{case}.json"
        path.write_bytes(Mutator(rng, max_huge=50_000).mutate_json_text(document))
        result = run_cli(
            ["validate", "--format", rng.choice(["text", "json", "github"]), str(path)]
        )
        assert_clean_exit(result, tag(name, case), allowed={0, 1, 10})
        path.unlink()
        count(name)
