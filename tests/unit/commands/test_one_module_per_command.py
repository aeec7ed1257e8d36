"""Every CLI command has its ``rejection_fhir.commands`` module: an importable, typed
function with no click in it, which the command's shim in ``rejection_fhir.cli`` calls.

A command added to the CLI without one fails here."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import click
import pytest

import rejection_fhir.commands
from rejection_fhir.cli import COMMANDS, cli

#: The module a command's work lives in is named as its shim (``list`` -> ``listing``, so no
#: module shadows a builtin; ``smart-keygen`` -> ``smart_keygen``).
REGISTERED = sorted(cli.list_commands(click.Context(cli)))


def _shim_module(name: str) -> str:
    if name in COMMANDS:
        return COMMANDS[name][0]
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.callback is not None, name
    return command.callback.__module__.rsplit(".", 1)[-1]


def _imports(module_file: str) -> set[str]:
    tree = ast.parse(Path(module_file).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_every_registered_command_is_in_the_table():
    assert sorted(COMMANDS) == REGISTERED


@pytest.mark.parametrize("name", REGISTERED)
def test_each_command_has_a_commands_module_with_a_typed_function(name):
    module_name = f"rejection_fhir.commands.{_shim_module(name)}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        pytest.fail(f"command {name!r} has no module {module_name}")
    functions = [
        f
        for n, f in inspect.getmembers(module, inspect.isfunction)
        if f.__module__ == module.__name__ and not n.startswith("_")
    ]
    assert functions, f"{module_name} defines no public function"
    for function in functions:
        annotations = function.__annotations__
        assert "return" in annotations, f"{function.__qualname__} has no return annotation"
        params = inspect.signature(function).parameters
        assert all(p in annotations for p in params), f"{function.__qualname__} is not typed"
    assert module.__file__ is not None
    assert not any(i == "click" or i.startswith("click.") for i in _imports(module.__file__)), (
        f"{module_name} imports click: the click part belongs in rejection_fhir.cli"
    )


@pytest.mark.parametrize("name", REGISTERED)
def test_each_shim_calls_its_commands_module(name):
    shim = importlib.import_module(f"rejection_fhir.cli.{_shim_module(name)}")
    assert shim.__file__ is not None
    wanted = f"rejection_fhir.commands.{_shim_module(name)}"
    imports = _imports(shim.__file__)
    assert any(i == wanted or i.startswith(wanted + ".") for i in imports), (
        f"the shim of {name!r} does not call {wanted}"
    )


def test_commands_holds_only_commands():
    """A module in commands/ that no command owns is a helper that belongs elsewhere."""
    owners = {_shim_module(name) for name in REGISTERED}
    modules = {m.name for m in pkgutil.iter_modules(rejection_fhir.commands.__path__)}
    assert modules - owners == set()
