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


def _run(tmp_path, script: str, *args: str, env=None, check=False):
    """``python -c script args`` in tmp_path, with a cache of its own there."""
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        check=check,
    )


def _validate(tmp_path, *args, env=None):
    proc = _run(tmp_path, PROBE, "validate", *args, env=env)
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


def test_an_edit_to_a_form_made_elsewhere_is_seen(tmp_path, folder):
    # A Questionnaire JSON in the worksheet folder (worksheet.foreign) is part of the key,
    # whether the folder or the form itself is validated.
    form = folder / "weekly-check-in.json"
    for args in ([], [str(form)]):
        form.write_text(form.read_text().replace('"version": "9.9"', '"version": "1.0.0"'))
        assert _validate(tmp_path, *args)[0] == 0
        assert _validate(tmp_path, *args)[:2] == (0, "")
        form.write_text(form.read_text().replace('"version": "1.0.0"', '"version": "9.9"'))
        code, heavy, _ = _validate(tmp_path, *args)
        assert code == 1 and "fhir.resources" in heavy


def _stats(package) -> list[str]:
    from rejection_fhir.worksheet.validate_cache import _code_stats

    return _code_stats(str(package))


def test_any_change_to_the_code_or_its_data_changes_the_key(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "s.json").write_text("{}")
    (package / "data").mkdir()
    (package / "data" / "schemas").symlink_to(schemas)  # as in a development checkout
    before = _stats(package)
    assert [line.split(":")[0] for line in before] == [
        "a.py",
        os.path.join("data", "schemas", "s.json"),
        os.path.join("sub", "b.py"),
    ]

    # Caches, other files and a link back up the tree change nothing (and do not hang).
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "a.py").write_text("")
    (package / ".mypy_cache").mkdir()
    (package / ".mypy_cache" / "a.json").write_text("{}")
    (package / "notes.txt").write_text("")
    (package / "sub" / "up").symlink_to(package)
    assert _stats(package) == before

    def touch(path):
        ns = path.stat().st_mtime_ns + 1_000_000
        os.utime(path, ns=(ns, ns))

    changes = [
        lambda: touch(package / "a.py"),  # same size, new time
        lambda: (package / "sub" / "b.py").write_text("y = 22\n"),
        lambda: (package / "sub" / "c.py").write_text(""),
        lambda: touch(schemas / "s.json"),
        lambda: (package / "sub" / "c.py").unlink(),
        lambda: (package / "data" / "w.yaml").write_text("a: 1\n"),
    ]
    seen = [before]
    for change in changes:
        change()
        now = _stats(package)
        assert now not in seen
        seen.append(now)


def test_the_installed_package_keys_on_its_schemas_and_worksheets():
    lines = [line.split(":")[0] for line in _stats_of_package()]
    assert os.path.join("data", "schemas", "worksheet.schema.json") in lines
    assert os.path.join("data", "questionnaires", "_project.yaml") in lines
    assert os.path.join("cli", "validate.py") in lines
    assert os.path.join("worksheet", "validate_cache.py") in lines


def _stats_of_package() -> list[str]:
    from rejection_fhir.worksheet.validate_cache import _code_stats

    return _code_stats()


RUN = """
import sys
from rejection_fhir.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
"""
MODULES = "print('MODULES', *sorted(sys.modules), file=sys.stderr)"


def _modules(tmp_path, script: str, *args: str) -> set[str]:
    proc = _run(tmp_path, script, *args, check=True)
    line = next(line for line in proc.stderr.splitlines() if line.startswith("MODULES"))
    return set(line.split()[1:])


def test_a_clean_answer_from_the_cache_imports_little(tmp_path, folder):
    path = str(folder / "core-beliefs.yaml")
    _validate(tmp_path, path)  # fill the cache
    baseline = _modules(tmp_path, f"import sys, click\n{MODULES}")
    extra = _modules(tmp_path, RUN + MODULES, "validate", path) - baseline
    assert "rejection_fhir.worksheet.validate_cache" in extra  # the probe did run
    assert extra & {"pathlib", "hashlib", "_hashlib", "json", "rejection_fhir.findings"} == set()
