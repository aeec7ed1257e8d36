"""The root group imports a command's module only when that command is resolved; its
``--help`` lists the commands from ``rejection_fhir.cli.COMMANDS``, which must not drift
from the commands themselves."""

from __future__ import annotations

import importlib

import click
import pytest

from rejection_fhir.cli import COMMANDS, cli

LIMITS = [20, 45, 60, 72, 10_000]


def _resolve(name: str) -> click.Command:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, name
    return command


def test_list_commands_is_the_table():
    assert cli.list_commands(click.Context(cli)) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_entry_resolves_to_its_command_in_its_module(name):
    module_name, _ = COMMANDS[name]
    command = _resolve(name)
    assert command.name == name
    module = importlib.import_module(f"rejection_fhir.cli.{module_name}")
    assert command in vars(module).values()
    assert not command.hidden


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_short_help_in_the_table_is_the_commands_own(name):
    _, short_help = COMMANDS[name]
    command = _resolve(name)
    assert short_help == command.get_short_help_str(10_000)
    # The root help shortens the table's text to fit; the same as the command's own, at
    # any width.
    for limit in LIMITS:
        stand_in = click.Command(name, help=short_help)
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), limit


def test_no_command_module_is_left_out_of_the_table(repo):
    folder = repo / "src" / "rejection_fhir" / "cli"
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "options"}
    assert modules == {module for module, _ in COMMANDS.values()}


def test_unknown_command_is_a_usage_error():
    assert cli.get_command(click.Context(cli), "nope") is None


@pytest.mark.parametrize("width", [50, 80, 120])
def test_root_help_reads_as_click_would_write_it(width):
    """The listing from the table is the one click writes from the loaded commands."""
    lazy = click.HelpFormatter(width=width)
    eager = click.HelpFormatter(width=width)
    ctx = click.Context(cli)
    cli.format_commands(ctx, lazy)
    click.Group.format_commands(cli, ctx, eager)  # click's own: loads every command
    assert lazy.getvalue() == eager.getvalue()
    assert "Commands:" in lazy.getvalue() and "smart-keygen" in lazy.getvalue()
