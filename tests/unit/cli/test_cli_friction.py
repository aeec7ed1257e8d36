"""A newcomer's first hour (issue 18): disk and path problems, stdin, names and flags.

Each test here failed before the fix it names.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rejection_fhir.errors import ExitCode
from tests.unit.cli.running import run

DATA = Path(__file__).parents[2] / "data"


def run_process(*args: str, stdout=subprocess.PIPE, stdin=None, input=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "rejection_fhir", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=stdin,
        input=input,
        text=True,
        cwd=cwd,
        check=False,
    )


# --- Disk and path problems are the user's to fix, not our bug -----------------------------


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_build_into_an_unwritable_folder_names_it(capsys, repo):
    code, _, err = run(
        capsys, "build", "--worksheets", str(repo / "questionnaires"), "--out", "/proc/nope"
    )
    assert code == ExitCode.OUTPUT
    assert "/proc/nope" in err and "internal error" not in err and "Traceback" not in err


def test_build_under_a_file_names_it_and_writes_nothing(capsys, repo, tmp_path):
    blocker = tmp_path / "FILE"
    blocker.write_text("keep me\n")
    code, _, err = run(
        capsys, "build", "--worksheets", str(repo / "questionnaires"), "--out", str(blocker / "sub")
    )
    assert code == ExitCode.OUTPUT
    assert str(blocker) in err and "not a directory" in err.lower()
    assert blocker.read_text() == "keep me\n" and sorted(tmp_path.iterdir()) == [blocker]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [
        ("summarize", str(DATA / "qr-rejection-log.json")),
        ("list",),
        ("show", "rejection-log"),
    ],
)
def test_a_full_disk_on_stdout_is_reported_as_such(args, repo):
    with open("/dev/full", "w") as full:
        done = run_process(*args, "--worksheets", str(repo / "questionnaires"), stdout=full)
    assert done.returncode == ExitCode.OUTPUT, done.stderr
    assert "standard output" in done.stderr and "No space left" in done.stderr
    assert "internal error" not in done.stderr


# --- summarize - reads NDJSON, and a pretty-printed document too ---------------------------


def test_summarize_stdin_accepts_a_pretty_printed_json_document(capsys, monkeypatch, repo):
    pretty = json.dumps(json.loads((DATA / "qr-rejection-log.json").read_text()), indent=2)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pretty.encode())))
    code, out, err = run(capsys, "summarize", "--worksheets", str(repo / "questionnaires"), "-")
    assert code == 0, err
    assert "not valid JSON" not in err and "summarised 1 response(s)" in err and out.strip()


def test_summarize_stdin_that_is_neither_gives_one_message_with_the_hint(capsys, monkeypatch, repo):
    broken = "{\n" + '  "resourceType": "QuestionnaireResponse",\n' * 5 + "  oops\n}\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(broken.encode())))
    code, _, err = run(capsys, "summarize", "--worksheets", str(repo / "questionnaires"), "-")
    assert code == ExitCode.INPUT
    assert err.count("not valid JSON") == 1 and "NDJSON" in err


def test_build_says_what_it_built_on_stderr_and_keeps_stdout_for_data(capsys, repo, tmp_path):
    code, out, err = run(
        capsys,
        "build",
        "--worksheets",
        str(repo / "questionnaires"),
        "--out",
        str(tmp_path / "out"),
    )
    sources = len(list((repo / "questionnaires").glob("[!_]*.*")))  # worksheets and forms
    assert code == 0 and out == "" and f"built {sources} Questionnaires" in err


# --- Names and flags ------------------------------------------------------------------------


def test_show_suggests_the_closest_worksheet_name_and_takes_the_fhir_name(capsys, repo):
    source = str(repo / "questionnaires")
    code, _, err = run(capsys, "show", "rejection-lgo", "--worksheets", source)
    assert code == ExitCode.USAGE and "did you mean 'rejection-log'" in err
    code, out, _ = run(capsys, "show", "RejectionLog", "--worksheets", source)
    assert code == 0 and "(rejection-log " in out


@pytest.mark.parametrize("flag", ["-v", "--verbose", "-q", "--quiet"])
@pytest.mark.parametrize("command", ["validate", "list", "build", "show", "summarize", "sync"])
def test_verbosity_flags_are_taken_after_the_subcommand_too(capsys, command, flag):
    code, out, err = run(capsys, command, flag, "--help")
    assert code == 0 and "No such option" not in err and "--quiet" in out


def test_validate_verbose_says_which_folder_it_validates(capsys, repo):
    code, _, err = run(capsys, "validate", "-v", str(repo / "questionnaires"))
    assert code == 0 and f"validating {repo / 'questionnaires'}" in err


def test_quiet_keeps_stderr_for_problems_only(capsys, repo, tmp_path):
    code, out, err = run(capsys, "validate", "-q", str(repo / "questionnaires"))
    assert code == 0 and out == "" and err == ""
    code, _, err = run(
        capsys, "-q", "build", "--worksheets", str(repo / "questionnaires"), "--out", str(tmp_path)
    )
    assert code == 0 and err == ""


def test_outside_a_content_repository_the_bundled_worksheets_are_announced(tmp_path):
    done = run_process("validate", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no ./questionnaires here" in done.stderr and "bundled" in done.stderr
    done = run_process("list", cwd=tmp_path)
    assert done.returncode == 0 and "bundled" in done.stderr


def test_list_takes_format_json_and_json_still_works_with_a_warning(capsys, repo):
    source = str(repo / "questionnaires")
    code, out, err = run(capsys, "list", "--format", "json", "--worksheets", source)
    sources = len(list((repo / "questionnaires").glob("[!_]*.*")))  # worksheets and forms
    assert code == 0 and len(json.loads(out)) == sources and "deprecated" not in err
    code, old_out, err = run(capsys, "list", "--json", "--worksheets", source)
    assert code == 0 and json.loads(old_out) == json.loads(out)
    assert "--json is deprecated" in err and "--format json" in err


@pytest.mark.parametrize(
    "args",
    [
        ("sync", "--dry-run"),
        ("publish", "--dry-run"),
        ("report", "--patient", "p1"),
    ],
)
def test_no_server_configured_is_one_configuration_exit_code(capsys, monkeypatch, tmp_path, args):
    for name in ("RFHIR_SERVER", "RFHIR_CONFIG", "RFHIR_TARGET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *args)
    assert code == ExitCode.CONFIG == 4, err
    assert "no FHIR server configured" in err


# --- Every command's help ends with an example (issue 18, point 5) --------------------------


def test_every_commands_help_shows_an_example(capsys):
    import re

    from rejection_fhir.cli import COMMANDS

    code, out, _ = run(capsys, "--help")
    assert code == 0 and re.search(r"Example:\n +rejection-fhir \w", out)
    for name in COMMANDS:
        code, out, _ = run(capsys, name, "--help")
        assert code == 0, name
        assert re.search(rf"Example:\n +rejection-fhir {name} ", out), f"{name} --help: no example"


def test_smart_keygen_under_a_file_is_an_output_error(capsys, tmp_path):
    blocker = tmp_path / "FILE"
    blocker.write_text("")
    code, _, err = run(capsys, "smart-keygen", "--out", str(blocker / "keys"))
    assert code == ExitCode.OUTPUT and f"{blocker} is a file, not a directory" in err
