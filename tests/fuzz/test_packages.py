"""FHIR packages, mutated as bytes or inside (manifest, index, resources): ``validate`` and
the version guard read them and never crash (exit 0, 1, 10 or 11)."""

from __future__ import annotations

import json
from pathlib import Path

from rejection_fhir.errors import ExitCode
from rejection_fhir.worksheet import package
from tests.conftest import QUESTIONNAIRES
from tests.fuzz.conftest import assert_clean_exit, count, rng_for, run_cli, tag
from tests.fuzz.mutator import Mutator

CASES = 60


def test_validate_on_mutated_packages(tmp_path: Path, built) -> None:
    name = "cli/packages"
    manifest = package.manifest(
        {"name": "rejection-fhir.worksheets", "version": "1.0.0"}, {}, canonical=built.base
    )
    files = package.package_files(manifest, built.resources)
    tgz = tmp_path / "p.tgz"
    for case in range(CASES):
        rng = rng_for(name, case)
        mutator = Mutator(rng, max_huge=20_000)
        if rng.random() < 0.4:
            data = mutator.mutate_bytes(package.tarball(files))
        else:
            inside = dict(files)
            victim = rng.choice(sorted(inside))
            inside[victim] = mutator.mutate_json_text(json.loads(inside[victim]))
            data = package.tarball(inside)
        tgz.write_bytes(data)
        if rng.random() < 0.5:
            args = ["validate", str(tgz)]
        else:
            args = ["validate", "--against", str(tgz), str(QUESTIONNAIRES)]
        result = run_cli(args)
        if result.code == ExitCode.VERSION_GUARD:  # findings on stdout, no error line
            assert "Traceback" not in result.out + result.err, tag(name, case)
            assert "version-" in result.out, tag(name, case)
        else:
            assert_clean_exit(result, tag(name, case), allowed={0, 1, 10})
        count(name)
