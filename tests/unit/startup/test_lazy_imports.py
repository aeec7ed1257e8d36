"""Start-up stays lean: `--help` and each command's help import no heavy library.

Authors run `validate` from pre-commit hooks and editors; every command that does not need
requests, jsonschema, fhir.resources/pydantic, PyYAML or fhirpathpy must not pay for
importing them (see benchmarks/startup.py for the timing itself).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "requests",
    "urllib3",
    "jsonschema",
    "fhir.resources",
    "pydantic",
    "yaml",
    "fhirpathpy",
    "antlr4",
    "jwt",
    "cryptography",
    "orjson",
    "sqlite3",
)

PROBE = """
import json, sys
from rejection_fhir.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules)), file=sys.stderr)
"""


def imported_by(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("--version",),
        ("validate", "--help"),
        ("build", "--help"),
        ("summarize", "--help"),
        ("sync", "--help"),
        ("publish", "--help"),
    ],
)
def test_help_imports_no_heavy_library(args):
    modules = imported_by(*args)
    assert "click" in modules and "rejection_fhir.cli" in modules  # the probe did run
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY) == []


def test_the_probe_sees_what_a_command_imports(tmp_path):
    # A command that needs the validators does import them: the probe is not blind.
    modules = imported_by("build", "--out", str(tmp_path / "out"))
    assert "yaml" in modules and "jsonschema" in modules


def _command_modules(modules: set[str]) -> set[str]:
    from rejection_fhir.cli import COMMANDS

    shims = {f"rejection_fhir.cli.{module}" for module, _ in COMMANDS.values()}
    return modules & shims


def test_root_help_imports_no_command_module():
    modules = imported_by("--help")
    assert "rejection_fhir.cli" in modules
    assert _command_modules(modules) == set()
    assert "rejection_fhir.cli.sync" not in modules


def test_a_command_imports_only_its_own_module():
    assert _command_modules(imported_by("validate", "--help")) == {"rejection_fhir.cli.validate"}
    assert _command_modules(imported_by("smart-keygen", "--help")) == {
        "rejection_fhir.cli.smart_keygen"
    }
