"""`pip install .` must ship the schemas and worksheets (they live at the repo top level)."""

from __future__ import annotations

import subprocess
import sys
import zipfile


def test_wheel_carries_schemas_and_worksheets(repo, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path),
            str(repo),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("rejection_fhir-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "rejection_fhir/py.typed",
        # the console script's package and a lazily imported command module
        "rejection_fhir/cli/__init__.py",
        "rejection_fhir/cli/validate.py",
        "rejection_fhir/data/schemas/worksheet.schema.json",
        "rejection_fhir/data/schemas/project.schema.json",
        "rejection_fhir/data/questionnaires/_project.yaml",
        "rejection_fhir/data/questionnaires/core-beliefs.yaml",
    ):
        assert required in names, required
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "rejection-fhir = rejection_fhir.cli:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
