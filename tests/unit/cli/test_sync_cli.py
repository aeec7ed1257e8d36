"""The sync command as an integration engineer runs it: progress on a terminal, a tally,
and exit codes that say what happened."""

from __future__ import annotations

import json
import sys

import pytest
import responses

from rejection_fhir.cli import main
from tests.unit.sync.test_run import BASE, DATA, FakeServer, _copy


@pytest.fixture
def qr():
    return json.loads((DATA / "qr-rejection-log.json").read_text())


def _sync(capsys, tmp_path, repo, *extra):
    with pytest.raises(SystemExit) as caught:
        main(
            [
                "sync",
                "--source",
                BASE,
                "--state",
                str(tmp_path / "s.sqlite3"),
                "--worksheets",
                str(repo / "questionnaires"),
                *extra,
            ]
        )
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


@responses.activate
def test_progress_bar_on_a_terminal_and_the_tally(capsys, monkeypatch, tmp_path, repo, qr):
    FakeServer(responses.mock, [_copy(qr, f"r{i}", f"2026-11-20T10:0{i}:00Z") for i in range(3)])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    code, out, err = _sync(capsys, tmp_path, repo)
    assert code == 0
    assert "syncing" in err and "100%" in err
    assert "fetched 3, written 3" in out and "rejected 0, failed 0" in out


@responses.activate
def test_no_progress_bar_when_not_a_terminal_and_rejections_exit_1(capsys, tmp_path, repo, qr):
    bad = _copy(qr, "bad", "2026-11-20T10:00:00Z")
    bad["item"] = [i for i in bad["item"] if i["linkId"] != "kind"]
    FakeServer(responses.mock, [bad, _copy(qr, "good", "2026-11-20T11:00:00Z")])
    code, out, err = _sync(capsys, tmp_path, repo)
    assert code == 1
    assert "syncing" not in err
    assert "rejected QuestionnaireResponse/bad/_history/1:" in err
    assert "written 1" in out and "rejected 1" in out
