"""The exit-code registry: one meaning per number, and the README says each one."""

from __future__ import annotations

import re
from pathlib import Path

from rejection_fhir.errors import ExitCode

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_exit_code_has_its_own_number():
    # An IntEnum member given a number already taken silently becomes an alias of the
    # first: two meanings behind one code, which a scheduler cannot tell apart.
    assert len(ExitCode.__members__) == len(
        {member.value for member in ExitCode.__members__.values()}
    )


def test_the_readme_table_lists_every_exit_code():
    rows = {int(m) for m in re.findall(r"^\| (\d+) \|", README.read_text(encoding="utf-8"), re.M)}
    assert rows == {member.value for member in ExitCode}
