"""The command line: exit codes, output formats, and no tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.unit.cli.running import run


@pytest.fixture
def broken(tmp_path, repo):
    shutil.copy(repo / "questionnaires" / "_project.yaml", tmp_path)
    (tmp_path / "bad.yaml").write_text(
        'name: bad\nversion: 1.0.0\nstatus: active\ndate: "2026-01-01"\ntitle: T\ndescription: D\npurpose: P\n'
        "items:\n  - {linkId: a, type: text, text: A}\n  - {linkId: a, type: text, text: B}\n"
    )
    return tmp_path


def test_validate_clean_exits_zero(capsys, repo):
    code, _, err = run(capsys, "validate", str(repo / "questionnaires"))
    assert code == 0 and "all worksheets valid" in err


def test_validate_findings_exit_one_in_text(capsys, broken):
    code, out, _ = run(capsys, "validate", str(broken))
    assert code == 1
    assert "bad.yaml:10:5: error: linkId 'a' is used twice" in out


def test_validate_json_format_parses(capsys, broken):
    code, out, _ = run(capsys, "validate", "--format", "json", str(broken))
    payload = json.loads(out)
    assert code == 1 and payload["errors"] == 1
    assert payload["findings"][0]["rule"] == "que-2" and payload["findings"][0]["line"] == 10


def test_validate_github_annotations(capsys, broken):
    code, out, _ = run(capsys, "validate", "--format", "github", str(broken))
    assert code == 1
    line = out.strip().splitlines()[0]
    assert (
        line.startswith("::error file=")
        and ",line=10,col=5,title=que-2::linkId 'a' is used twice" in line
    )


def test_usage_error_exits_two(capsys, tmp_path):
    code, _, _ = run(capsys, "validate", "--format", "xml")
    assert code == 2
    code, _, err = run(capsys, "validate", str(tmp_path / "missing.txt"))
    assert code == 2 and "no such file" in err


def test_build_failure_exits_with_source_code_and_no_traceback(capsys, broken, tmp_path):
    code, _, err = run(capsys, "build", "--worksheets", str(broken), "--out", str(tmp_path / "out"))
    assert code == 3
    assert "Traceback" not in err and "bad.yaml:10:5" in err
    assert not (tmp_path / "out").exists()


def test_list_and_show(capsys, repo):
    code, out, _ = run(capsys, "list", "--worksheets", str(repo / "questionnaires"))
    assert code == 0 and len(out.strip().splitlines()) == 9 and "core-beliefs" in out
    code, out, _ = run(capsys, "show", "core-beliefs", "--worksheets", str(repo / "questionnaires"))
    assert code == 0 and "strength-before (integer) [required]" in out
    code, out, _ = run(
        capsys, "show", "core-beliefs", "--json", "--worksheets", str(repo / "questionnaires")
    )
    assert json.loads(out)["resourceType"] == "Questionnaire"
    code, _, err = run(capsys, "show", "nope", "--worksheets", str(repo / "questionnaires"))
    assert code == 2 and "known worksheets: core-beliefs" in err


def test_python_dash_m_works(repo):
    proc = subprocess.run(
        [sys.executable, "-m", "rejection_fhir", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "rejection-fhir" in proc.stdout
