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

from rejection_fhir.cli import main
from rejection_fhir.errors import ExitCode

DATA = Path(__file__).parents[2] / "data"


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


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
        capsys, "build", "--source", str(repo / "questionnaires"), "--out", "/proc/nope"
    )
    assert code == ExitCode.OUTPUT
    assert "/proc/nope" in err and "internal error" not in err and "Traceback" not in err


def test_build_under_a_file_names_it_and_writes_nothing(capsys, repo, tmp_path):
    blocker = tmp_path / "FILE"
    blocker.write_text("keep me\n")
    code, _, err = run(
        capsys, "build", "--source", str(repo / "questionnaires"), "--out", str(blocker / "sub")
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
        done = run_process(*args, "--source", str(repo / "questionnaires"), stdout=full)
    assert done.returncode == ExitCode.OUTPUT, done.stderr
    assert "standard output" in done.stderr and "No space left" in done.stderr
    assert "internal error" not in done.stderr


# --- summarize - reads NDJSON, and a pretty-printed document too ---------------------------


def test_summarize_stdin_accepts_a_pretty_printed_json_document(capsys, monkeypatch, repo):
    pretty = json.dumps(json.loads((DATA / "qr-rejection-log.json").read_text()), indent=2)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pretty.encode())))
    code, out, err = run(capsys, "summarize", "--source", str(repo / "questionnaires"), "-")
    assert code == 0, err
    assert "not valid JSON" not in err and "summarised 1 response(s)" in err and out.strip()


def test_summarize_stdin_that_is_neither_gives_one_message_with_the_hint(capsys, monkeypatch, repo):
    broken = "{\n" + '  "resourceType": "QuestionnaireResponse",\n' * 5 + "  oops\n}\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(broken.encode())))
    code, _, err = run(capsys, "summarize", "--source", str(repo / "questionnaires"), "-")
    assert code == ExitCode.INPUT
    assert err.count("not valid JSON") == 1 and "NDJSON" in err


def test_build_says_what_it_built_on_stderr_and_keeps_stdout_for_data(capsys, repo, tmp_path):
    code, out, err = run(
        capsys, "build", "--source", str(repo / "questionnaires"), "--out", str(tmp_path / "out")
    )
    assert code == 0 and out == "" and "built 8 Questionnaires" in err
