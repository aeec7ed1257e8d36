"""``validate --against``: each class of change on real git histories in a temporary content
repository, read back through the CI formats (JSON, GitHub workflow commands, JUnit XML)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import responses

from rejection_fhir.cli import main
from rejection_fhir.commands.validate import validate
from rejection_fhir.errors import ExitCode
from rejection_fhir.worksheet import guard
from tests.conftest import QUESTIONNAIRES
from tests.unit.test_findings_formats import parse_github

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Content author",
    "GIT_AUTHOR_EMAIL": "author@clinic.example",
    "GIT_COMMITTER_NAME": "Content author",
    "GIT_COMMITTER_EMAIL": "author@clinic.example",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


class ContentRepo:
    """A clinic's content repository: questionnaires/ under git, edited commit by commit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        shutil.copytree(QUESTIONNAIRES, root / "questionnaires")
        self.commit("worksheets as published")

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=self.root,
            env={**os.environ, **GIT_ENV},
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    def path(self, name: str) -> Path:
        return self.root / "questionnaires" / name

    def edit(self, name: str, old: str, new: str) -> None:
        text = self.path(name).read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} must occur once in {name}"
        self.path(name).write_text(text.replace(old, new), encoding="utf-8")

    def bump(self, name: str, old: str, new: str) -> None:
        self.edit(name, f"version: {old}\n", f"version: {new}\n")

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def line_of(self, name: str, text: str) -> int:
        lines = self.path(name).read_text(encoding="utf-8").splitlines()
        return next(i for i, line in enumerate(lines, 1) if text in line)

    def run(self, *args: str) -> tuple[int, str, str]:
        """``rejection-fhir ARGS`` in the repository, in process."""
        out, err = io.StringIO(), io.StringIO()
        cwd = Path.cwd()
        os.chdir(self.root)
        code = 0
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            os.chdir(cwd)
        return code, out.getvalue(), err.getvalue()

    def guard_json(self, *args: str) -> tuple[int, list[dict[str, object]]]:
        code, out, _ = self.run("validate", "--format", "json", *args)
        findings = json.loads(out)["findings"]
        return code, [f for f in findings if f["rule"] in guard.GUARD_RULES | _INFO_RULES]


_INFO_RULES = {"version-change", "worksheet-new"}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ContentRepo:
    monkeypatch.delenv("RFHIR_AGAINST", raising=False)  # CI may set it for pre-commit
    if shutil.which("git") is None:
        pytest.fail("git is needed for the version guard tests")
    return ContentRepo(tmp_path / "content")


LOG = "rejection-log.yaml"


def test_no_change_reports_nothing(repo):
    repo.edit(LOG, "\nitems:\n", "\n# reviewed by the clinical lead\nitems:\n")
    repo.commit("a comment only")
    code, found = repo.guard_json("--against", "HEAD~1")
    assert (code, found) == (0, [])


@dataclass(frozen=True)
class Scenario:
    """One change to the rejection log, committed, and what the guard says against HEAD~1."""

    #: (old, new) text replacements in the worksheet.
    edits: tuple[tuple[str, str], ...]
    #: The version committed with the change (None: left at 1.0.0).
    version: str | None
    rule: str
    #: Text on the line the finding points at.
    line_text: str
    #: What the message says.
    says: tuple[str, ...]
    #: The finding's location: an item's linkId or the field changed.
    location: str
    #: The version the message asks for: committing it clears the guard (None: no fix).
    fix: str | None = None
    #: What the information finding says once fixed, compared with the first commit.
    since: str | None = None


SCENARIOS = {
    "compatible change needs a patch": Scenario(
        edits=(("  A short record", "  A brief record"),),
        version=None,
        rule="version-unchanged",
        line_text="description:",
        says=("description changed", "a compatible change, which needs a patch version"),
        location="description",
        fix="1.0.1",
        since="compatible change since HEAD~2",
    ),
    "reworded text needs a minor version": Scenario(
        edits=(("text: When did it happen?", "text: When did this happen?"),),
        version="1.0.1",
        rule="version-too-small",
        line_text="text: When did this happen?",
        says=("item 'when': text reworded", "1.0.1 is not enough after 1.0.0"),
        location="when",
        fix="1.1.0",
    ),
    "removed item is breaking and needs a major version": Scenario(
        edits=(("  - linkId: when\n    type: date\n    text: When did it happen?\n", ""),),
        version="1.1.0",
        rule="version-too-small",
        # The item is gone: the finding points at the version to change.
        line_text="version: 1.1.0",
        says=("item 'when' removed", "a breaking change, which needs a major version"),
        location="when",
        fix="2.0.0",
        since="breaking change since HEAD~2",
    ),
    "version going backwards is an error even without a change": Scenario(
        edits=(),
        version="0.9.0",
        rule="version-backwards",
        line_text="version: 0.9.0",
        says=("0.9.0 here, 1.0.0 at HEAD~1",),
        location="version",
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_each_class_of_change_and_its_bump(repo, scenario):
    for old, new in scenario.edits:
        repo.edit(LOG, old, new)
    if scenario.version is not None:
        repo.bump(LOG, "1.0.0", scenario.version)
    repo.commit("the change")
    code, found = repo.guard_json("--against", "HEAD~1")
    assert code == ExitCode.VERSION_GUARD
    (f,) = found
    assert f["rule"] == scenario.rule
    assert f["file"] == "questionnaires/rejection-log.yaml"
    assert f["location"] == scenario.location
    assert f["line"] == repo.line_of(LOG, scenario.line_text)
    for words in scenario.says:
        assert words in f["message"]
    if scenario.fix is None:
        return
    assert f["message"].endswith(f"set version: {scenario.fix}")
    repo.bump(LOG, scenario.version or "1.0.0", scenario.fix)
    repo.commit("the bump it asks for")
    code, found = repo.guard_json("--against", "HEAD~2")
    assert code == 0
    assert [f["rule"] for f in found] == ["version-change"]
    if scenario.since is not None:
        assert scenario.since in found[0]["message"]


def test_added_option_in_the_shared_terminology_flags_the_worksheet_using_it(repo):
    repo.edit(
        "_project.yaml",
        "  - {code: familial, display: Family,",
        "  - {code: online, display: Online}\n  - {code: familial, display: Family,",
    )
    repo.edit("_project.yaml", "codes: [romantic, social,", "codes: [romantic, online, social,")
    repo.commit("new kind of rejection")
    code, found = repo.guard_json("--against", "HEAD~1")
    assert code == ExitCode.VERSION_GUARD
    by_file = {(f["file"], f["location"]) for f in found}
    assert ("questionnaires/rejection-log.yaml", "kind") in by_file
    (f,) = [f for f in found if f["location"] == "kind"]
    assert "option 'online' added" in f["message"]
    assert f["line"] == repo.line_of(LOG, "valueSet: rejection-kind")
    assert f["message"].endswith("set version: 1.1.0")


def test_changed_type_and_required_added_are_breaking(repo):
    repo.edit(
        LOG,
        "    type: date\n    text: When did it happen?\n",
        "    type: dateTime\n    text: When did it happen?\n    required: true\n",
    )
    repo.commit("date and time, required")
    code, found = repo.guard_json("--against", "HEAD~1")
    assert code == ExitCode.VERSION_GUARD
    messages = sorted(f["message"] for f in found)
    assert any("item 'when': type changed from date to dateTime" in m for m in messages)
    assert any("item 'when': now required" in m for m in messages)
    at = repo.line_of(LOG, "type: dateTime")
    assert {f["line"] for f in found} == {at, at + 2}


def test_removed_and_new_worksheets(repo):
    repo.git("rm", "-q", "questionnaires/self-compassion.yaml")
    shutil.copy(repo.path("future-focus.yaml"), repo.path("next-steps.yaml"))
    repo.edit("next-steps.yaml", "name: future-focus", "name: next-steps")
    repo.commit("swap a worksheet")
    code, out, _ = repo.run("validate", "--format", "json", "--against", "HEAD~1")
    assert code == 0  # a warning and information fail only with --strict
    found = {f["rule"]: f for f in json.loads(out)["findings"]}
    assert found["worksheet-removed"]["severity"] == "warning"
    assert found["worksheet-removed"]["file"] == "questionnaires/self-compassion.yaml"
    assert "status: retired" in found["worksheet-removed"]["message"]
    assert found["worksheet-new"]["file"] == "questionnaires/next-steps.yaml"
    code, _, _ = repo.run("validate", "--strict", "--against", "HEAD~1")
    assert code == ExitCode.VERSION_GUARD


def test_a_ref_before_the_folder_existed_makes_every_worksheet_new(repo):
    repo.git("mv", "questionnaires", "worksheets")
    repo.commit("rename folder")
    code, found = repo.guard_json("worksheets", "--against", "HEAD~1")
    assert code == 0
    assert {f["rule"] for f in found} == {"worksheet-new"}
    assert len(found) == 9  # 8 YAML worksheets and a form authored elsewhere


def test_only_the_named_sources_are_checked(repo):
    repo.edit(LOG, "text: When did it happen?", "text: When?")
    repo.edit("future-focus.yaml", "text: By when?", "text: By which date?")
    repo.commit("two rewordings")
    code, found = repo.guard_json("questionnaires/future-focus.yaml", "--against", "HEAD~1")
    assert code == ExitCode.VERSION_GUARD
    assert {f["file"] for f in found} == {"questionnaires/future-focus.yaml"}


def test_against_a_folder_of_built_json(repo):
    assert repo.run("build", "--out", "published")[0] == 0
    repo.edit(LOG, "text: When did it happen?", "text: When?")
    code, found = repo.guard_json("--against", "published")
    assert code == ExitCode.VERSION_GUARD
    assert [f["location"] for f in found] == ["when"]
    # Built JSON compared with built JSON: findings point at the JSON line of the item.
    assert repo.run("build", "--out", "now")[0] == 0
    built = repo.root / "now" / "Questionnaire-rejection-log.json"
    code, found = repo.guard_json(str(built), "--against", "published")
    assert code == ExitCode.VERSION_GUARD
    (f,) = found
    assert f["file"] == str(built)
    lines = built.read_text(encoding="utf-8").splitlines()
    assert '"linkId": "when"' in lines[f["line"] - 1]


def test_unknown_ref_is_a_usage_error_with_a_hint(repo):
    code, _, err = repo.run("validate", "--against", "origin/main")
    assert code == ExitCode.USAGE
    assert "no such git ref" in err and "fetch-depth: 0" in err


def test_env_var_names_the_ref(repo, monkeypatch):
    repo.edit(LOG, "text: When did it happen?", "text: When?")
    monkeypatch.setenv("RFHIR_AGAINST", "HEAD")
    code, found = repo.guard_json()
    assert code == ExitCode.VERSION_GUARD
    assert [f["location"] for f in found] == ["when"]


def test_ci_formats_carry_the_guard_findings(repo):
    repo.edit(LOG, "text: When did it happen?", "text: When?")
    repo.edit(LOG, "      - linkId: emotion.other\n", "      - linkId: emotion.other-name\n")
    repo.commit("edits")
    line = repo.line_of(LOG, "text: When?")

    code, out, _ = repo.run("validate", "--format", "github", "--against", "HEAD~1")
    assert code == ExitCode.VERSION_GUARD
    commands = parse_github(out)
    when = next(c for c in commands if c["message"].startswith("item 'when'"))
    assert when["level"] == "error"
    assert (when["file"], when["line"], when["title"]) == (
        "questionnaires/rejection-log.yaml",
        str(line),
        "version-unchanged",
    )
    assert when["message"].endswith("set version: 2.0.0 [when]")
    renamed = next(c for c in commands if "emotion.other" in c["message"])
    assert "linkId changed to 'emotion.other-name'" in renamed["message"]

    code, out, _ = repo.run("validate", "--format", "junit", "--against", "HEAD~1")
    assert code == ExitCode.VERSION_GUARD
    root = ET.fromstring(out)
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "questionnaires/rejection-log.yaml"
    failures = suite.findall("testcase/failure")
    assert int(root.get("failures") or 0) == len(failures) == 2
    assert {f.get("type") for f in failures} == {"version-unchanged"}
    assert any("item 'when': text reworded" in (f.get("message") or "") for f in failures)


def test_the_console_script_runs_as_pre_commit_and_ci_call_it(repo):
    repo.edit(LOG, "text: When did it happen?", "text: When?")
    script = Path(sys.executable).with_name("rejection-fhir")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rejection_fhir"]
    result = subprocess.run(
        [*command, "validate", "--against", "HEAD"],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == ExitCode.VERSION_GUARD
    assert "questionnaires/rejection-log.yaml:" in result.stdout
    assert "item 'when': text reworded" in result.stdout


# --- A server as REF (HTTP mocked; the live-server case is in tests/integration) -----------


@responses.activate
def test_against_a_server_takes_the_highest_version_it_holds(built, tmp_path, monkeypatch):
    q = next(q for q in built.questionnaires if q["id"] == "future-focus")
    url = q["url"]
    held = []
    for version in ("1.0.0", "1.2.0", "1.10.0", "draft"):
        held.append({**q, "id": f"s{len(held)}", "version": version})
    responses.get(
        "http://127.0.0.1:9/fhir/Questionnaire",
        match=[responses.matchers.query_param_matcher({"url": url})],
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in held],
        },
    )
    current = guard.Current({**q, "version": "1.10.0"}, "future-focus.yaml")
    baseline = guard.load_server("http://127.0.0.1:9/fhir", [url])
    assert not baseline.complete
    assert [h[0]["version"] for h in baseline.held] == ["1.10.0"]
    assert guard.guard([current], baseline) == []
    older = guard.Current({**q, "version": "1.9.0"}, "future-focus.yaml")
    (f,) = guard.guard([older], baseline)
    assert f.rule == "version-backwards"


def test_validate_api_without_a_ref_runs_no_guard(repo):
    repo.edit(LOG, "text: When did it happen?", "text: When?")
    assert validate([repo.root / "questionnaires"]) == []


def test_a_generated_narrative_is_not_a_content_change(repo):
    """Questionnaires published before they carried a narrative need no new version now."""
    assert repo.run("build", "--out", "published")[0] == 0
    for path in (repo.root / "published").glob("*.json"):
        value = json.loads(path.read_text(encoding="utf-8"))
        resources = [e["resource"] for e in value.get("entry", [])] or [value]
        had = [r.pop("text", None) for r in resources if r["resourceType"] == "Questionnaire"]
        if path.name.startswith("Questionnaire-"):
            assert had and had[0]["status"] == "generated"
        path.write_text(json.dumps(value, indent=2), encoding="utf-8")
    code, found = repo.guard_json("--against", "published")
    assert code == 0 and [f["rule"] for f in found if f["rule"] in guard.GUARD_RULES] == []
