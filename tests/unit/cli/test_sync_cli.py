"""The sync command as an integration engineer runs it: progress on a terminal, a tally,
and exit codes that say what happened."""

from __future__ import annotations

import contextlib
import sqlite3
import sys

import pytest

from rejection_fhir.cli import main
from tests.fakefhir import BASE, request_to


def _sync(capsys, tmp_path, repo, *extra):
    with pytest.raises(SystemExit) as caught:
        main(
            [
                "sync",
                "--source-server",
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


def test_progress_bar_on_a_terminal_and_the_tally(
    capsys, monkeypatch, tmp_path, repo, qr_at, fake_fhir
):
    fake_fhir.add(*(qr_at(f"r{i}", f"2026-11-20T10:0{i}:00Z") for i in range(3)))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    code, out, err = _sync(capsys, tmp_path, repo)
    assert code == 0
    assert "syncing" in err and "100%" in err
    assert "fetched 3, written 3" in out and "rejected 0, failed 0" in out


def test_no_progress_bar_when_not_a_terminal_and_rejections_exit_1(
    capsys, tmp_path, repo, qr_at, fake_fhir
):
    bad = qr_at("bad", "2026-11-20T10:00:00Z")
    bad["item"] = [i for i in bad["item"] if i["linkId"] != "kind"]
    fake_fhir.add(bad, qr_at("good", "2026-11-20T11:00:00Z"))
    code, out, err = _sync(capsys, tmp_path, repo)
    assert code == 1
    assert "syncing" not in err
    assert "rejected QuestionnaireResponse/bad/_history/1:" in err
    assert "written 1" in out and "rejected 1" in out


def test_a_plain_sync_writes_the_state_where_help_says(
    capsys, monkeypatch, tmp_path, repo, qr_at, fake_fhir
):
    """One default: what --help promises is the SQLite file a plain `sync` writes."""
    from rejection_fhir.settings import DEFAULT_STATE_PATH

    fake_fhir.add(qr_at("a", "2026-11-20T10:00:00Z"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RFHIR_STATE", raising=False)
    try:
        main(["sync", "--source-server", BASE, "--worksheets", str(repo / "questionnaires")])
    except SystemExit as exc:
        assert exc.code in (0, None)
    written = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert DEFAULT_STATE_PATH in written
    with sqlite3.connect(tmp_path / DEFAULT_STATE_PATH) as db:
        assert db.execute("SELECT count(*) FROM ledger").fetchone()[0] == 1
    capsys.readouterr()
    with contextlib.suppress(SystemExit):
        main(["sync", "--help"])
    assert f"(default: {DEFAULT_STATE_PATH})" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--since", "yesterday"], "--since"),
        (["--since", "2026-13-01"], "--since"),
        (["--since", "2026-11-01T10:00"], "--since"),  # an instant needs seconds and a zone
        (["--until", "tomorrow"], "--until"),
        (["--since", "2026-11-02", "--until", "2026-11-01"], "--until"),
    ],
)
def test_since_and_until_must_be_fhir_instants(capsys, tmp_path, repo, args, flag):
    code, _out, err = _sync(capsys, tmp_path, repo, *args)
    assert code == 2
    assert flag in err and "2026-11-01" in err  # names the option and shows an example
    assert not (tmp_path / "s.sqlite3").exists()  # nothing was sent or written


def test_ledger_only_lost_answer_exits_13_and_reconcile_settles_it(
    capsys, tmp_path, repo, qr_at, fake_fhir
):
    fake_fhir.add(qr_at("r1", "2026-11-20T10:00:00Z"))
    # Every note is made, but its answer is lost on the way back.
    fake_fhir.lose_answers(None, when=request_to("POST", "DocumentReference"))
    code, out, err = _sync(capsys, tmp_path, repo, "--write-mode", "ledger-only")
    assert code == 13
    assert "uncertain QuestionnaireResponse/r1" in err and "uncertain 1" in out
    assert "note: ledger-only" in err
    code, out, err = _sync(capsys, tmp_path, repo, "--write-mode", "ledger-only")
    # never retried, and said again (exit 13) until reconcile settles it
    assert code == 13 and "written 0" in out and "uncertain 1" in out
    assert "uncertain QuestionnaireResponse/r1" in err and "settle with sync --reconcile" in err

    assert len(fake_fhir.writes("POST")) == 1, "ledger-only: the note alone, once"
    code, out, err = _sync(capsys, tmp_path, repo, "--reconcile")
    assert code == 0, err
    assert "found    QuestionnaireResponse/r1" in out and "still uncertain 0" in out
    with contextlib.closing(sqlite3.connect(tmp_path / "s.sqlite3")) as db:
        assert db.execute("SELECT outcome FROM ledger").fetchall() == [("written",)]
    code, out, err = _sync(capsys, tmp_path, repo, "--write-mode", "ledger-only")
    assert code == 0 and "uncertain QuestionnaireResponse" not in err  # settled: quiet now
    assert "uncertain 1" not in out


def test_an_unknown_write_mode_is_a_usage_error(capsys, tmp_path, repo):
    code, _out, err = _sync(capsys, tmp_path, repo, "--write-mode", "sometimes")
    assert code == 2 and "sometimes" in err


@pytest.mark.parametrize("extra", [("--bulk",), ()], ids=["bulk", "auto"])
def test_a_group_only_export_without_a_group_exits_4_before_reading(
    capsys, tmp_path, repo, fake_fhir, extra
):
    from tests.unit.sync.test_bulk import _statement

    fake_fhir.statement = _statement(("Group",), "_id", "patient")
    code, _out, err = _sync(capsys, tmp_path, repo, *extra)
    assert code == 4
    assert "only for a Group" in err and "--patients-group GROUP_ID" in err
    assert not [seen for seen in fake_fhir.requests if "QuestionnaireResponse" in seen.path]
    assert not [seen for seen in fake_fhir.requests if seen.path.endswith("$export")]
