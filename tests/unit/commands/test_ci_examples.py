"""The ways other repositories run ``rejection-fhir validate``, run for real in temporary
content repositories: the pre-commit hook (with pre-commit itself) and the example GitHub
Actions workflow's check step (its bash, with the variables GitHub sets)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml

from rejection_fhir.errors import ExitCode
from tests.conftest import QUESTIONNAIRES, REPO
from tests.unit.commands.test_guard import GIT_ENV
from tests.unit.test_findings_formats import parse_github

BIN = Path(sys.executable).parent


def _hooks() -> list[dict[str, Any]]:
    return yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RFHIR_AGAINST"}
    env.update(GIT_ENV)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=_env(), capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def _reword(repo: Path) -> None:
    log = repo / "questionnaires" / "rejection-log.yaml"
    text = log.read_text(encoding="utf-8")
    log.write_text(text.replace("text: When did it happen?", "text: When?"), encoding="utf-8")


@pytest.fixture
def clinic(tmp_path: Path) -> Path:
    """A clinic's content repository cloned from its 'origin', as CI checks it out."""
    origin = tmp_path / "origin"
    origin.mkdir()
    _git(origin, "init", "-q", "-b", "main")
    shutil.copytree(QUESTIONNAIRES, origin / "questionnaires")
    _git(origin, "add", "-A")
    _git(origin, "commit", "-q", "-m", "published worksheets")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    return clone


# --- pre-commit ------------------------------------------------------------------------


def test_published_hook_runs_our_console_script_on_worksheet_changes():
    (hook,) = _hooks()
    assert hook["id"] == "rejection-fhir-validate"
    assert hook["language"] == "python"  # pre-commit installs this repository as a package
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    program, *args = hook["entry"].split()
    assert program in scripts and args == ["validate"]
    files = re.compile(hook["files"])
    assert files.search("questionnaires/rejection-log.yaml")
    assert files.search("questionnaires/_project.yaml")
    assert files.search("questionnaires/new.yml")
    assert not files.search("src/rejection_fhir/cli/validate.py")
    assert not files.search("docs/questionnaires.md")


def test_own_config_runs_the_same_hook_locally():
    (hook,) = _hooks()
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    (local,) = [r for r in config["repos"] if r["repo"] == "local"]
    (mine,) = local["hooks"]
    assert mine["language"] == "system"
    for key in ("id", "entry", "files", "pass_filenames"):
        assert mine[key] == hook[key], key


def _pre_commit(repo: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"],
        cwd=repo,
        env=_env(PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), **env),
        capture_output=True,
        text=True,
        check=False,
    )


def test_pre_commit_runs_the_hook_and_the_version_guard(clinic, tmp_path):
    if importlib.util.find_spec("pre_commit") is None:
        pytest.fail("pre-commit is a dev dependency: pip install -e '.[dev]'")
    shutil.copy(REPO / ".pre-commit-config.yaml", clinic / ".pre-commit-config.yaml")
    _git(clinic, "add", ".pre-commit-config.yaml")
    _git(clinic, "commit", "-q", "-m", "pre-commit")
    clean = _pre_commit(clinic, tmp_path, RFHIR_AGAINST="origin/main")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "rejection-fhir validate" in clean.stdout and "Passed" in clean.stdout

    _reword(clinic)
    _git(clinic, "commit", "-q", "-am", "reworded without a new version")
    plain = _pre_commit(clinic, tmp_path)
    assert plain.returncode == 0, plain.stdout  # no REF: the worksheets are valid
    guarded = _pre_commit(clinic, tmp_path, RFHIR_AGAINST="origin/main")
    assert guarded.returncode == 1
    assert "Failed" in guarded.stdout
    assert f"exit code: {int(ExitCode.VERSION_GUARD)}" in guarded.stdout
    assert "questionnaires/rejection-log.yaml:" in guarded.stdout
    assert "item 'when': text reworded" in guarded.stdout
    assert "set version: 1.1.0" in guarded.stdout


# --- the example GitHub Actions workflow -----------------------------------------------


def _check_step() -> dict[str, Any]:
    workflow = yaml.safe_load((REPO / "docs" / "github-workflow.yml").read_text(encoding="utf-8"))
    steps = workflow["jobs"]["validate"]["steps"]
    (step,) = [s for s in steps if s.get("id") == "check"]
    assert step["shell"] == "bash"
    return step


def _run_step(repo: Path, **github: str) -> subprocess.CompletedProcess[str]:
    """The step's script as the runner runs it: bash -e, GitHub's variables set."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _check_step()["run"]],
        cwd=repo,
        env=_env(**github),
        capture_output=True,
        text=True,
        check=False,
    )


def test_workflow_on_a_pull_request_compares_with_the_base_branch(clinic):
    _git(clinic, "checkout", "-q", "-b", "reword")
    _reword(clinic)
    _git(clinic, "commit", "-q", "-am", "reworded")
    result = _run_step(clinic, GITHUB_EVENT_NAME="pull_request", GITHUB_BASE_REF="main")
    assert result.returncode == ExitCode.VERSION_GUARD, result.stderr
    (annotation,) = parse_github(result.stdout)
    assert annotation["level"] == "error"
    assert annotation["file"] == "questionnaires/rejection-log.yaml"
    assert annotation["title"] == "version-unchanged"
    assert "origin/main" in annotation["message"]
    report = ET.parse(clinic / "rejection-fhir.xml").getroot()
    assert report.get("failures") == "1"

    log = clinic / "questionnaires" / "rejection-log.yaml"
    log.write_text(
        log.read_text(encoding="utf-8").replace("version: 1.0.0", "version: 1.1.0"),
        encoding="utf-8",
    )
    _git(clinic, "commit", "-q", "-am", "new version")
    result = _run_step(clinic, GITHUB_EVENT_NAME="pull_request", GITHUB_BASE_REF="main")
    assert result.returncode == 0, result.stdout
    (notice,) = parse_github(result.stdout)
    assert notice["level"] == "notice" and notice["title"] == "version-change"
    assert ET.parse(clinic / "rejection-fhir.xml").getroot().get("failures") == "0"


def test_workflow_on_a_push_compares_with_main_before_the_push(clinic):
    before = _git(clinic, "rev-parse", "HEAD")
    (clinic / "questionnaires" / "future-focus.yaml").unlink()
    _git(clinic, "commit", "-q", "-am", "drop a worksheet")
    result = _run_step(clinic, GITHUB_EVENT_NAME="push", BEFORE=before)
    assert result.returncode == 0  # a removal is a warning
    (warning,) = parse_github(result.stdout)
    assert (warning["level"], warning["title"]) == ("warning", "worksheet-removed")

    new_branch = _run_step(clinic, GITHUB_EVENT_NAME="push", BEFORE="0" * 40)
    assert new_branch.returncode == 0
    assert new_branch.stdout.strip() == ""  # valid, and no REF to compare with
