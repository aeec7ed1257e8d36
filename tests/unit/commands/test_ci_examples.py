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
from tests.unit.test_findings_formats import parse_github
from tests.unit.worksheet.test_guard import GIT_ENV

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


# --- installing a release from a git tag (nothing is on PyPI) ------------------------------


def _version() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return str(project["version"])


def _workflow_package() -> str:
    workflow = yaml.safe_load((REPO / "docs" / "github-workflow.yml").read_text(encoding="utf-8"))
    return str(workflow["jobs"]["validate"]["env"]["RFHIR_PACKAGE"])


def _documented_pre_commit_rev() -> str:
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(repos:.*?)```", text, re.S)
    assert block, "docs/ci.md has no pre-commit example"
    (repo,) = yaml.safe_load(block.group(1))["repos"]
    return str(repo["rev"])


def test_examples_install_the_current_release_tag_from_git():
    tag = f"v{_version()}"
    package = _workflow_package()
    assert re.fullmatch(
        rf"rejection-fhir @ git\+https://\S+/rejection-fhir@{re.escape(tag)}", package
    )
    assert _documented_pre_commit_rev() == tag
    hooks_comment = (REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    assert f"rev: {tag}" in hooks_comment
    assert "==" not in package  # nothing is published on PyPI


def test_the_documented_git_tag_install_works(tmp_path):
    """pip installs the workflow's requirement from a tagged repository (a local copy here)."""
    source = tmp_path / "rejection-fhir"
    source.mkdir()
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src, dst = REPO / name, source / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)
    _git(source, "init", "-q", "-b", "main")
    _git(source, "add", "-A")
    _git(source, "commit", "-q", "-m", "release")
    tag = f"v{_version()}"
    _git(source, "tag", "-a", tag, "-m", f"rejection-fhir {_version()}")
    _git(source, "commit", "-q", "--allow-empty", "-m", "after the release")

    documented = _workflow_package()
    local = re.sub(r"git\+https://\S+@", f"git+file://{source}@", documented)
    assert local != documented and local.endswith(f"@{tag}")
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            local,
        ],
        env=_env(RFHIR_PURE_PYTHON="1"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    version = subprocess.run(
        [
            sys.executable,
            "-c",
            "import rejection_fhir, sys; print(rejection_fhir.__version__, rejection_fhir.__file__)",
        ],
        env={**_env(), "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert version[0] == _version() and version[1].startswith(str(site))
    assert (site / "rejection_fhir" / "data" / "questionnaires" / "_project.yaml").is_file()
