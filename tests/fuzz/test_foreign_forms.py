"""Questionnaire JSON made elsewhere, mutated, in a worksheet folder: ``validate`` and
``build --package`` read it with positions and never crash (exit 0, 1, 3 or 10)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import QUESTIONNAIRES
from tests.fuzz.conftest import assert_clean_exit, count, rng_for, run_cli, tag
from tests.fuzz.mutator import Mutator

CASES = 80
FORM = "weekly-check-in.json"


def test_validate_and_build_on_mutated_forms(tmp_path: Path) -> None:
    name = "cli/foreign-forms"
    folder = tmp_path / "questionnaires"
    folder.mkdir()
    shutil.copy(QUESTIONNAIRES / "_project.yaml", folder / "_project.yaml")
    form = json.loads((QUESTIONNAIRES / FORM).read_text(encoding="utf-8"))
    for case in range(CASES):
        rng = rng_for(name, case)
        (folder / FORM).write_bytes(Mutator(rng, max_huge=50_000).mutate_json_text(form))
        if rng.random() < 0.5:
            args = ["validate", "--format", rng.choice(["text", "json", "github"]), str(folder)]
            allowed = {0, 1, 10}
        else:
            args = [
                "build",
                "--package",
                "--worksheets",
                str(folder),
                "--out",
                str(tmp_path / "out"),
            ]
            allowed = {0, 3}
        assert_clean_exit(run_cli(args), tag(name, case), allowed=allowed)
        count(name)
