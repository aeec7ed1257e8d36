"""validate's result cache: an unchanged worksheet is answered without the heavy imports,
and any change to what the findings depend on is seen."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

HEAVY = ("fhir.resources", "pydantic", "jsonschema", "yaml", "fhirpathpy")

PROBE = """
import sys
from rejection_fhir.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
else:
    code = 0
heavy = sorted({m.split('.')[0] if not m.startswith('fhir.resources') else 'fhir.resources'
                for m in sys.modules if m.split('.')[0] in {'pydantic', 'jsonschema', 'yaml', 'fhirpathpy'} or m.startswith('fhir.resources')})
print('RESULT', code, ','.join(heavy), file=sys.stderr)
"""


@pytest.fixture
def folder(tmp_path, repo):
    target = tmp_path / "questionnaires"
    shutil.copytree(repo / "questionnaires", target)
    return target


def _validate(tmp_path, *args, env=None):
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "validate", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        check=False,
    )
    line = next(line for line in proc.stderr.splitlines() if line.startswith("RESULT"))
    _, code, heavy = [*line.split(" ", 2), ""][:3]
    return int(code), heavy, proc.stdout


def test_second_run_of_an_unchanged_file_imports_nothing_heavy(tmp_path, folder):
    first = _validate(tmp_path, str(folder / "core-beliefs.yaml"))
    assert first[0] == 0 and "fhir.resources" in first[1]
    second = _validate(tmp_path, str(folder / "core-beliefs.yaml"))
    assert second[0] == 0 and second[1] == ""


def test_a_change_to_the_worksheet_or_its_folder_is_seen(tmp_path, folder):
    path = folder / "core-beliefs.yaml"
    assert _validate(tmp_path, str(path))[0] == 0
    path.write_text(path.read_text().replace("linkId: evidence-for", "linkId: evidence-against"))
    code, heavy, out = _validate(tmp_path, "--format", "json", str(path))
    assert code == 1 and "fhir.resources" in heavy
    assert json.loads(out)["findings"][0]["rule"] == "que-2"
    again = _validate(tmp_path, "--format", "json", str(path))
    assert again[0] == 1 and again[1] == "" and json.loads(again[2]) == json.loads(out), (
        "findings come back from the cache"
    )
    (folder / "_project.yaml").write_text((folder / "_project.yaml").read_text() + "\n# touched\n")
    assert "fhir.resources" in _validate(tmp_path, str(path))[1], (
        "the shared file is part of the key"
    )


def test_cache_can_be_turned_off_and_never_serves_the_version_guard(tmp_path, folder):
    path = str(folder / "core-beliefs.yaml")
    _validate(tmp_path, path)
    assert "fhir.resources" in _validate(tmp_path, path, env={"RFHIR_NO_CACHE": "1"})[1]


def test_without_paths_an_edit_to_the_default_folder_is_seen(tmp_path, folder):
    # What the pre-commit hook runs (pass_filenames: false): validate ./questionnaires.
    assert _validate(tmp_path)[0] == 0
    assert _validate(tmp_path)[:2] == (0, ""), "an unchanged folder comes from the cache"
    path = folder / "core-beliefs.yaml"
    path.write_text(path.read_text().replace("linkId: evidence-for", "linkId: evidence-against"))
    code, heavy, _ = _validate(tmp_path)
    assert code == 1 and "fhir.resources" in heavy
