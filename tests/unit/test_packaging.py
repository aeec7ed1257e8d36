"""`pip install .` must ship the schemas and worksheets (they live at the repo top level),
and the summary's hot path compiled by mypyc (setup.py), or pure Python when asked."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.unit.test_compiled import COMPILED


def _wheel(repo: Path, out: Path, **env: str) -> Path:
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
            str(out),
            str(repo),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "RFHIR_PURE_PYTHON": "", "RFHIR_REQUIRE_COMPILED": "", **env},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = out.glob("rejection_fhir-*.whl")
    return wheel


def test_wheel_carries_schemas_worksheets_and_the_compiled_hot_path(repo, tmp_path):
    # RFHIR_REQUIRE_COMPILED: a failed compile must fail this test, not fall back quietly.
    wheel = _wheel(repo, tmp_path, RFHIR_REQUIRE_COMPILED="1")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "-cp3" in wheel.name and "none-any" not in wheel.name, wheel.name
    for module in COMPILED:
        stem = f"rejection_fhir/{module.removesuffix('.py')}."
        assert any(n.startswith(stem) and n.endswith(".so") for n in names), module
        assert f"rejection_fhir/{module}" in names, module  # the source ships too
    assert any(n.startswith("rejection_fhir__mypyc.") for n in names)
    for required in (
        "rejection_fhir/py.typed",
        # the console script's package and a lazily imported command module
        "rejection_fhir/cli/__init__.py",
        "rejection_fhir/cli/validate.py",
        "rejection_fhir/data/schemas/worksheet.schema.json",
        "rejection_fhir/data/schemas/project.schema.json",
        "rejection_fhir/data/questionnaires/_project.yaml",
        "rejection_fhir/data/questionnaires/core-beliefs.yaml",
        # the report page's templates (Jinja2)
        "rejection_fhir/report/templates/page.html.j2",
        "rejection_fhir/report/templates/report.css",
    ):
        assert required in names, required
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "rejection-fhir = rejection_fhir.cli:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_pure_python_wheel_when_asked(repo, tmp_path):
    wheel = _wheel(repo, tmp_path, RFHIR_PURE_PYTHON="1")
    names = zipfile.ZipFile(wheel).namelist()
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    assert not [n for n in names if n.endswith(".so")]
    assert "rejection_fhir/response/summary.py" in names


def test_wheel_carries_the_license_and_a_browser_extra(repo, tmp_path):
    wheel = _wheel(repo, tmp_path, RFHIR_PURE_PYTHON="1")
    archive = zipfile.ZipFile(wheel)
    license_file = next(n for n in archive.namelist() if n.endswith("/licenses/LICENSE"))
    assert "Apache License" in archive.read(license_file).decode()
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA")))
    text = metadata.decode()
    assert "Provides-Extra: browser" in text
    assert any(
        line.startswith("Requires-Dist: playwright") and 'extra == "browser"' in line
        for line in text.splitlines()
    )
