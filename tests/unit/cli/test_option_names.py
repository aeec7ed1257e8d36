"""Options named for what they mean: ``--worksheets DIR`` is the worksheet folder and
``sync --source-server URL`` the FHIR server holding the responses.  The old spelling
``--source`` (and ``RFHIR_SOURCE``) still works for one release: hidden from --help, the
same behaviour, and one warning on stderr naming the new name."""

from __future__ import annotations

import click
import pytest

from rejection_fhir.cli import cli
from tests.fakefhir import BASE
from tests.unit.cli.running import run
from tests.unit.cli.test_sync_cli import _sync

#: Every command that reads the worksheet folder.
FOLDER_COMMANDS = [
    "build",
    "list",
    "preview",
    "publish",
    "report",
    "seed",
    "show",
    "summarize",
    "sync",
]
#: ... and those where ``--source`` meant the folder (in ``sync`` it meant the server).
FOLDER_WAS_SOURCE = [c for c in FOLDER_COMMANDS if c != "sync"]

WARN_FOLDER = (
    "warning: --source is deprecated and will be removed in the next release; use --worksheets"
)
WARN_SERVER = (
    "warning: --source is deprecated and will be removed in the next release; use --source-server"
)
WARN_ENV = (
    "warning: RFHIR_SOURCE is deprecated and will be removed in the next release; "
    "use RFHIR_WORKSHEETS"
)


def _options(name: str) -> dict[str, click.Option]:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    return {
        opt: param
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
    }


def _help(name: str) -> str:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    with click.Context(command, info_name=name) as ctx:
        return command.get_help(ctx)


@pytest.mark.parametrize("name", FOLDER_COMMANDS)
def test_the_worksheet_folder_is_worksheets_everywhere(name):
    option = _options(name)["--worksheets"]
    assert option.name == "source_dir" and not option.hidden
    assert option.envvar == ["RFHIR_WORKSHEETS", "RFHIR_SOURCE"]
    assert "--worksheets DIRECTORY" in _help(name)


@pytest.mark.parametrize("name", FOLDER_WAS_SOURCE)
def test_source_is_a_hidden_deprecated_alias_of_worksheets(name):
    alias = _options(name)["--source"]
    assert alias.hidden and not alias.expose_value
    text = _help(name)
    assert not [line for line in text.splitlines() if line.lstrip().startswith("--source")]
    assert "(formerly --source, deprecated)" in " ".join(text.split())


def test_sync_names_its_server_source_server():
    options = _options("sync")
    assert options["--source-server"].name == "source_server"
    assert not options["--source-server"].hidden
    assert options["--source"].hidden and not options["--source"].expose_value
    assert "--source-server TEXT" in _help("sync")


def test_old_folder_flag_does_the_same_and_warns_once(capsys, repo):
    folder = str(repo / "questionnaires")
    code, new_out, new_err = run(capsys, "list", "--worksheets", folder)
    assert code == 0 and new_out and "deprecated" not in new_err
    code, old_out, old_err = run(capsys, "list", "--source", folder, "--source", folder)
    assert code == 0
    assert old_out == new_out
    assert old_err.splitlines().count(WARN_FOLDER) == 1


@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_the_new_folder_flag_wins_over_the_old(capsys, repo, tmp_path, order):
    good, missing = str(repo / "questionnaires"), str(tmp_path / "nope")
    pairs = [["--source", missing], ["--worksheets", good]]
    args = [*pairs[0], *pairs[1]] if order == "old-first" else [*pairs[1], *pairs[0]]
    code, out, err = run(capsys, "list", *args)
    assert code == 0 and "core-beliefs" in out
    assert WARN_FOLDER in err


def test_a_flag_wins_over_the_environment(capsys, repo, monkeypatch, tmp_path):
    monkeypatch.setenv("RFHIR_WORKSHEETS", str(tmp_path / "nope"))
    code, out, _ = run(capsys, "list", "--source", str(repo / "questionnaires"))
    assert code == 0 and "core-beliefs" in out


def test_old_environment_variable_still_works_and_warns(capsys, repo, monkeypatch):
    folder = str(repo / "questionnaires")
    monkeypatch.delenv("RFHIR_SOURCE", raising=False)
    monkeypatch.setenv("RFHIR_WORKSHEETS", folder)
    code, new_out, new_err = run(capsys, "list")
    assert code == 0 and "deprecated" not in new_err
    monkeypatch.delenv("RFHIR_WORKSHEETS")
    monkeypatch.setenv("RFHIR_SOURCE", folder)
    code, old_out, old_err = run(capsys, "list")
    assert code == 0 and old_out == new_out
    assert old_err.splitlines().count(WARN_ENV) == 1


def test_sync_source_still_names_the_server_and_warns(capsys, tmp_path, repo, qr_at, fake_fhir):
    fake_fhir.add(qr_at("r0", "2026-11-20T10:00:00Z"))
    (tmp_path / "new").mkdir()
    (tmp_path / "old").mkdir()
    code, new_out, new_err = _sync(capsys, tmp_path / "new", repo)
    assert code == 0 and "fetched 1, written 1" in new_out
    assert "deprecated" not in new_err
    # _sync passes --source-server; an old-style command line passes --source instead.
    with pytest.raises(SystemExit) as caught:
        from rejection_fhir.cli import main

        main(
            [
                "sync",
                "--source",
                BASE,
                "--state",
                str(tmp_path / "old" / "s.sqlite3"),
                "--worksheets",
                str(repo / "questionnaires"),
            ]
        )
        raise SystemExit(0)
    old_out, old_err = capsys.readouterr()
    assert int(caught.value.code or 0) == 0
    assert old_out == new_out
    assert old_err.splitlines().count(WARN_SERVER) == 1


def test_sync_without_a_server_names_the_new_flag(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("RFHIR_SERVER", "RFHIR_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = run(capsys, "sync", "--dry-run")
    assert code == 4
    assert "--source-server" in err
